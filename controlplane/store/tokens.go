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
	// UserID is the person who owns the token ("" for a token minted outside the API with
	// no owner: the break-glass CLI before any user exists, tests).
	UserID string `json:"user_id,omitempty"`
	// Kind: personal (the owner's own) or service (for a script, owned by a person).
	Kind string `json:"kind" enum:"personal,service"`
	// Owner is the owning user's state, loaded by AuthenticateToken.
	Owner *TokenOwner `json:"-"`
}

// TokenOwner is what authentication needs to know about a token's owner.
type TokenOwner struct {
	Email  string
	Role   domain.Role
	Active bool
}

// Token kinds.
const (
	TokenPersonal = "personal"
	TokenService  = "service"
)

// NewToken describes a token to mint.
type NewToken struct {
	OrgID     string
	Name      string
	Role      domain.Role
	ExpiresAt *time.Time
	// UserID owns the token; "" takes the person behind ctx's actor (may be none).
	UserID string
	Kind   string // personal when ""
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

// CreateToken mints a token owned by the person behind ctx's actor (if any) and returns
// its plaintext once.
func CreateToken(ctx context.Context, q Querier, orgID, name string, role domain.Role, expiresAt *time.Time) (Token, string, error) {
	return CreateTokenFor(ctx, q, NewToken{OrgID: orgID, Name: name, Role: role, ExpiresAt: expiresAt})
}

// CreateTokenFor mints a token as nt describes and returns its plaintext once.
func CreateTokenFor(ctx context.Context, q Querier, nt NewToken) (Token, string, error) {
	secret := newTokenSecret()
	if nt.UserID == "" {
		nt.UserID = domain.ActorFrom(ctx).UserID
	}
	if nt.Kind == "" {
		nt.Kind = TokenPersonal
	}
	t := Token{
		ID: domain.NewID(), OrgID: nt.OrgID, Name: nt.Name, Role: nt.Role, Prefix: secret[:len(TokenPrefix)+6],
		CreatedBy: domain.ActorFrom(ctx).ID, CreatedAt: domain.Now(), ExpiresAt: nt.ExpiresAt, UserID: nt.UserID, Kind: nt.Kind,
	}
	var owner any
	if t.UserID != "" {
		owner = t.UserID
	}
	_, err := q.ExecContext(ctx, `INSERT INTO api_tokens (id, org_id, name, role, token_hash, prefix, created_by, created_at, expires_at, user_id, kind)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		t.ID, t.OrgID, t.Name, string(t.Role), HashToken(secret), t.Prefix, t.CreatedBy, t.CreatedAt, utcPtr(nt.ExpiresAt), owner, t.Kind)
	if err != nil {
		return Token{}, "", fmt.Errorf("create token %q: %w", nt.Name, err)
	}
	if err := WriteAudit(ctx, q, AuditFor(ctx, nt.OrgID, "token.created", "token", t.ID, nil, t)); err != nil {
		return Token{}, "", err
	}
	return t, secret, nil
}

// CreateTokenFor is the DB method form.
func (db *DB) CreateTokenFor(ctx context.Context, nt NewToken) (Token, string, error) {
	var t Token
	var secret string
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, secret, err = CreateTokenFor(ctx, tx, nt)
		return err
	})
	return t, secret, err
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

const tokenCols = `id, org_id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at, COALESCE(user_id, ''), kind`

func scanToken(s interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var role string
	err := s.Scan(&t.ID, &t.OrgID, &t.Name, &role, &t.Prefix, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt, &t.UserID, &t.Kind)
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
	if t.UserID != "" {
		u, err := getUser(ctx, db.SQL, t.OrgID, t.UserID)
		if err != nil {
			return Token{}, fmt.Errorf("authenticate token: owner: %w", err)
		}
		t.Owner = &TokenOwner{Email: u.Email, Role: u.Role, Active: u.Active()}
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
		if t.Role == domain.RoleOwner {
			if err := lockOrg(ctx, tx, orgID); err != nil {
				return err
			}
			if err := guardLastOwnerToken(ctx, tx, orgID, id); err != nil {
				return err
			}
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

// guardLastOwnerToken refuses to revoke the org's last live owner token while no owner
// user can sign in (an active owner with a password): without it nobody could administer
// the organization. Once an owner can sign in, their session is the way back in, so the
// token may go (the break-glass path is `lanyard admin create-token`).
func guardLastOwnerToken(ctx context.Context, q Querier, orgID, tokenID string) error {
	var owners int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner' AND removed_at IS NULL
		AND disabled_at IS NULL AND password_hash <> ''`, orgID).Scan(&owners); err != nil {
		return fmt.Errorf("count owners who can sign in: %w", err)
	}
	if owners > 0 {
		return nil
	}
	var tokens int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id
		WHERE t.org_id = $1 AND t.id <> $2 AND t.role = 'owner' AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $3)
		AND (t.user_id IS NULL OR (u.role = 'owner' AND u.removed_at IS NULL AND u.disabled_at IS NULL))`,
		orgID, tokenID, domain.Now()).Scan(&tokens); err != nil {
		return fmt.Errorf("count owner tokens: %w", err)
	}
	if tokens == 0 {
		return ErrLastOwnerToken
	}
	return nil
}

// TokenUserID returns the owner of a token ("" when it has none or does not exist), to
// name the person behind an audit actor "token:<id>".
func (db *DB) TokenUserID(ctx context.Context, orgID, tokenID string) (string, error) {
	var uid sql.NullString
	err := db.SQL.QueryRowContext(ctx, `SELECT user_id FROM api_tokens WHERE org_id = $1 AND id = $2`, orgID, tokenID).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("token owner: %w", err)
	}
	return uid.String, nil
}
