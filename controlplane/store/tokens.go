package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Token is an API token's record; the secret itself is never stored.
type Token struct {
	ID         string      `json:"id"`
	OrgID      string      `json:"org_id"`
	Name       string      `json:"name"`
	Role       domain.Role `json:"role"`
	Prefix     string      `json:"prefix"`
	CreatedBy  string      `json:"created_by"`
	CreatedAt  time.Time   `json:"created_at"`
	ExpiresAt  *time.Time  `json:"expires_at,omitempty"`
	RevokedAt  *time.Time  `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time  `json:"last_used_at,omitempty"`
}

// TokenPrefix marks Lanyard admin tokens so secret scanners can find leaked ones.
const TokenPrefix = "lyd_"

// HashToken is SHA-256: tokens carry 160 random bits, so a slow hash adds nothing.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func newTokenSecret() string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return TokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// CreateToken mints a token and returns its plaintext once.
func CreateToken(ctx context.Context, q Querier, orgID, name string, role domain.Role, expiresAt *time.Time) (Token, string, error) {
	secret := newTokenSecret()
	t := Token{
		ID: domain.NewID(), OrgID: orgID, Name: name, Role: role, Prefix: secret[:len(TokenPrefix)+6],
		CreatedBy: domain.ActorFrom(ctx).ID, CreatedAt: domain.Now(), ExpiresAt: expiresAt,
	}
	_, err := q.ExecContext(ctx, `INSERT INTO api_tokens (id, org_id, name, role, token_hash, prefix, created_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, t.OrgID, t.Name, string(t.Role), HashToken(secret), t.Prefix, t.CreatedBy, t.CreatedAt, utcPtr(expiresAt))
	if err != nil {
		return Token{}, "", fmt.Errorf("create token %q: %w", name, err)
	}
	if err := WriteAudit(ctx, q, AuditFor(ctx, orgID, "token.created", "token", t.ID, nil, t)); err != nil {
		return Token{}, "", err
	}
	return t, secret, nil
}

// CreateToken is the DB method form.
func (db *DB) CreateToken(ctx context.Context, orgID, name string, role domain.Role, expiresAt *time.Time) (Token, string, error) {
	var t Token
	var secret string
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, secret, err = CreateToken(ctx, tx, orgID, name, role, expiresAt)
		return err
	})
	return t, secret, err
}

func utcPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

const tokenCols = `id, org_id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at`

func scanToken(s interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var role string
	err := s.Scan(&t.ID, &t.OrgID, &t.Name, &role, &t.Prefix, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt)
	t.Role = domain.Role(role)
	return t, err
}

// ErrTokenInvalid covers unknown, expired and revoked tokens alike, so a caller learns
// nothing about which.
var ErrTokenInvalid = errors.New("invalid or expired token")

// AuthenticateToken finds the live token for a presented secret.
func (db *DB) AuthenticateToken(ctx context.Context, secret string) (Token, error) {
	row := db.SQL.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE token_hash = $1`, HashToken(secret))
	t, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrTokenInvalid
	}
	if err != nil {
		return Token{}, fmt.Errorf("authenticate token: %w", err)
	}
	now := domain.Now()
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !t.ExpiresAt.After(now)) {
		return Token{}, ErrTokenInvalid
	}
	return t, nil
}

// ListTokens returns one page of an org's tokens.
func (db *DB) ListTokens(ctx context.Context, orgID string, p Page) ([]Token, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	return listPage(ctx, db.SQL, "list tokens", scanToken, func(t Token) string { return t.ID }, p,
		`SELECT `+tokenCols+` FROM api_tokens`, w)
}

// RevokeToken marks a token revoked; revoking twice is a no-op.
func (db *DB) RevokeToken(ctx context.Context, orgID, id string) (Token, error) {
	var t Token
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE org_id = $1 AND id = $2`, orgID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token %s: %w", id, ErrNotFound)
		}
		if err != nil || t.RevokedAt != nil {
			return err
		}
		now := domain.Now()
		t.RevokedAt = &now
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2`, now, id); err != nil {
			return fmt.Errorf("revoke token %s: %w", id, err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "token.revoked", "token", id, nil, t))
	})
	return t, err
}
