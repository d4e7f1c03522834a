package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// UserSession is a console session. Only the hash of its cookie value is stored.
type UserSession struct {
	ID         string     `json:"id"`
	TokenHash  string     `json:"-"`
	UserID     string     `json:"user_id"`
	OrgID      string     `json:"org_id"`
	CSRF       string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	ReauthAt   time.Time  `json:"reauth_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
	// Current marks the caller's own session in a listing.
	Current bool `json:"current"`
}

const sessionCols = `id, token_hash, user_id, org_id, csrf, created_at, last_seen_at, expires_at, reauth_at, revoked_at, ip, user_agent`

func scanSession(s rowScanner) (UserSession, error) {
	var x UserSession
	err := s.Scan(&x.ID, &x.TokenHash, &x.UserID, &x.OrgID, &x.CSRF, &x.CreatedAt, &x.LastSeenAt, &x.ExpiresAt, &x.ReauthAt, &x.RevokedAt,
		&x.IP, &x.UserAgent)
	return x, err
}

// CreateSession stores a new session.
func (db *DB) CreateSession(ctx context.Context, s *UserSession) error {
	if s.ID == "" {
		s.ID = domain.NewID()
	}
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO user_sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11)`,
		s.ID, s.TokenHash, s.UserID, s.OrgID, s.CSRF, s.CreatedAt.UTC(), s.LastSeenAt.UTC(), s.ExpiresAt.UTC(), s.ReauthAt.UTC(), s.IP, s.UserAgent)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// SessionByHash finds a session by the hash of its cookie value (revoked ones too: the
// caller decides).
func (db *DB) SessionByHash(ctx context.Context, hash string) (UserSession, error) {
	s, err := scanSession(db.SQL.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM user_sessions WHERE token_hash = $1`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// TouchSession moves a session's idle clock.
func (db *DB) TouchSession(ctx context.Context, id string, now time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE user_sessions SET last_seen_at = $1 WHERE id = $2`, now.UTC(), id)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// RevokeSession ends one session; false when it was already revoked or unknown.
func (db *DB) RevokeSession(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := db.SQL.ExecContext(ctx, `UPDATE user_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, now.UTC(), id)
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func revokeUserSessions(ctx context.Context, q Querier, orgID, userID string, now time.Time, reason string) (int, error) {
	res, err := q.ExecContext(ctx, `UPDATE user_sessions SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL`,
		now.UTC(), orgID, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of user %s: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if n > 0 {
		err = WriteAudit(ctx, q, AuditFor(ctx, orgID, "session.revoked", "user", userID, nil, map[string]any{"sessions": n, "reason": reason}))
	}
	return int(n), err
}

// RevokeUserSessions ends every session of a user and audits session.revoked.
func (db *DB) RevokeUserSessions(ctx context.Context, orgID, userID, reason string) (int, error) {
	var n int
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := getUser(ctx, tx, orgID, userID); err != nil {
			return err
		}
		var err error
		n, err = revokeUserSessions(ctx, tx, orgID, userID, domain.Now(), reason)
		return err
	})
	return n, err
}

// ListUserSessions returns a user's live sessions (not revoked, not past their absolute
// expiry), newest first.
func (db *DB) ListUserSessions(ctx context.Context, orgID, userID string, now time.Time) ([]UserSession, error) {
	return queryAll(ctx, db.SQL, "list sessions", scanSession, `SELECT `+sessionCols+` FROM user_sessions
		WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 ORDER BY id DESC`, orgID, userID, now.UTC())
}

// One-time token kinds.
const (
	OneTimeInvitation = "invitation"
	OneTimeSignInLink = "sign_in_link"
	OneTimeChallenge  = "challenge"
)

// OneTimeToken is a sign-in link, an invitation or a challenge between sign-in steps.
// Only its hash is stored; it works once, before ExpiresAt.
type OneTimeToken struct {
	TokenHash string
	Kind      string
	UserID    string
	OrgID     string
	Need      string
	// Data is kind-specific (a totp_setup challenge: the pending secret, sealed).
	Data      string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// CreateOneTimeToken stores a one-time token.
func (db *DB) CreateOneTimeToken(ctx context.Context, t OneTimeToken) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO auth_tokens (token_hash, kind, user_id, org_id, need, data, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, t.TokenHash, t.Kind, t.UserID, t.OrgID, t.Need, t.Data, t.CreatedAt.UTC(), t.ExpiresAt.UTC())
	if err != nil {
		return fmt.Errorf("create %s: %w", t.Kind, err)
	}
	return nil
}

// ErrOneTimeUsed means a one-time token is unknown, used or expired (a caller learns no more).
var ErrOneTimeUsed = errors.New("one-time token unknown, used or expired")

// UseOneTimeToken marks a live token of one of kinds used and returns it. Marking and
// checking are one statement, so two concurrent uses cannot both succeed.
func (db *DB) UseOneTimeToken(ctx context.Context, hash string, now time.Time, kinds ...string) (OneTimeToken, error) {
	var t OneTimeToken
	args := []any{now.UTC(), hash}
	in := ""
	for i, k := range kinds {
		if i > 0 {
			in += ", "
		}
		args = append(args, k)
		in += fmt.Sprintf("$%d", len(args))
	}
	if in == "" {
		return t, ErrOneTimeUsed
	}
	err := db.SQL.QueryRowContext(ctx, `UPDATE auth_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
		AND kind IN (`+in+`) RETURNING token_hash, kind, user_id, org_id, need, data, created_at, expires_at`, args...).
		Scan(&t.TokenHash, &t.Kind, &t.UserID, &t.OrgID, &t.Need, &t.Data, &t.CreatedAt, &t.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrOneTimeUsed
	}
	if err != nil {
		return t, fmt.Errorf("use one-time token: %w", err)
	}
	t.UsedAt = &now
	return t, nil
}

// MigrateTo applies migrations up to and including version (tests of a migration insert
// rows in the schema before it, then call Migrate).
func (db *DB) MigrateTo(ctx context.Context, version int64) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return fmt.Errorf("migrate %s to %d: %w", db.Dialect, version, err)
	}
	return nil
}

// PeekOneTimeToken returns a live (unused, unexpired) token of one of kinds without using
// it: a sign-in challenge survives a mistyped code, and is used only by the step that
// succeeds.
func (db *DB) PeekOneTimeToken(ctx context.Context, hash string, now time.Time, kinds ...string) (OneTimeToken, error) {
	var t OneTimeToken
	err := db.SQL.QueryRowContext(ctx, `SELECT token_hash, kind, user_id, org_id, need, data, created_at, expires_at FROM auth_tokens
		WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2`, hash, now.UTC()).
		Scan(&t.TokenHash, &t.Kind, &t.UserID, &t.OrgID, &t.Need, &t.Data, &t.CreatedAt, &t.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrOneTimeUsed
	}
	if err != nil {
		return t, fmt.Errorf("get one-time token: %w", err)
	}
	for _, k := range kinds {
		if k == t.Kind {
			return t, nil
		}
	}
	return OneTimeToken{}, ErrOneTimeUsed
}
