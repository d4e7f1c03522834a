package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// User is an admin of one organization: a person with a role who signs in to the console
// and owns API tokens. Credentials never leave the store in JSON.
type User struct {
	ID    string      `json:"id"`
	OrgID string      `json:"org_id"`
	Email string      `json:"email"`
	Name  string      `json:"name"`
	Role  domain.Role `json:"role" enum:"owner,admin,it,viewer"`
	// Status: invited (no password yet), active, locked (too many failed sign-ins),
	// disabled or removed.
	Status       string     `json:"status" enum:"invited,active,locked,disabled,removed"`
	TOTPEnabled  bool       `json:"totp_enabled"`
	LockedUntil  *time.Time `json:"locked_until,omitempty"`
	LastSignInAt *time.Time `json:"last_sign_in_at,omitempty"`
	DisabledAt   *time.Time `json:"disabled_at,omitempty"`
	RemovedAt    *time.Time `json:"removed_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`

	PasswordHash       string   `json:"-"`
	TOTPSecretSealed   string   `json:"-"`
	TOTPLastStep       int64    `json:"-"`
	RecoveryCodeHashes []string `json:"-"`
	FailedCount        int      `json:"-"`
}

// Active reports whether the user still belongs to the organization (their tokens and
// sessions work).
func (u User) Active() bool { return u.RemovedAt == nil && u.DisabledAt == nil }

// Locked reports whether sign-in is refused at now because of failed attempts.
func (u User) Locked(now time.Time) bool { return u.LockedUntil != nil && u.LockedUntil.After(now) }

// MigratedUserID is the placeholder owner migration 00600 gives an org's existing tokens.
func MigratedUserID(orgID string) string { return "mig-" + orgID }

// NormalizeEmail is the one form emails are stored and compared in.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Errors of the user store; the API maps ErrConflict to 409 with the message as detail.
var (
	ErrLastOwner      = fmt.Errorf("%w: this is the organization's last owner; make another user an owner first", ErrConflict)
	ErrLastOwnerToken = fmt.Errorf("%w: this is the organization's last owner token and no owner can sign in yet "+
		"(no owner user has set a password); invite an owner and let them finish signing in, then revoke it", ErrConflict)
	ErrUserExists = fmt.Errorf("%w: a user with this email already exists in the organization", ErrConflict)
)

const userCols = `id, org_id, email, name, role, password_hash, totp_secret, totp_enabled, totp_last_step, recovery_codes,
	failed_count, locked_until, disabled_at, removed_at, last_sign_in_at, created_at, updated_at`

func scanUser(s rowScanner) (User, error) {
	var u User
	var role, codes string
	err := s.Scan(&u.ID, &u.OrgID, &u.Email, &u.Name, &role, &u.PasswordHash, &u.TOTPSecretSealed, &u.TOTPEnabled, &u.TOTPLastStep,
		&codes, &u.FailedCount, &u.LockedUntil, &u.DisabledAt, &u.RemovedAt, &u.LastSignInAt, &u.CreatedAt, &u.UpdatedAt)
	if err != nil {
		return u, err
	}
	u.Role = domain.Role(role)
	if err := json.Unmarshal([]byte(codes), &u.RecoveryCodeHashes); err != nil {
		return u, fmt.Errorf("user %s recovery codes: %w", u.ID, err)
	}
	u.Status = userStatus(u, domain.Now())
	return u, nil
}

func userStatus(u User, now time.Time) string {
	switch {
	case u.RemovedAt != nil:
		return "removed"
	case u.DisabledAt != nil:
		return "disabled"
	case u.Locked(now):
		return "locked"
	case u.PasswordHash == "" && u.LastSignInAt == nil:
		return "invited"
	}
	return "active"
}

// CreateUser inserts a user (email lower-cased) and audits user.created.
func CreateUser(ctx context.Context, q Querier, u *User) error {
	if u.ID == "" {
		u.ID = domain.NewID()
	}
	u.Email = NormalizeEmail(u.Email)
	if !u.Role.Valid() {
		return fmt.Errorf("%w: role %q is not one of owner, admin, it, viewer", ErrInvalidInput, u.Role)
	}
	now := domain.Now()
	u.CreatedAt, u.UpdatedAt = now, now
	if u.RecoveryCodeHashes == nil {
		u.RecoveryCodeHashes = []string{}
	}
	codes, _ := json.Marshal(u.RecoveryCodeHashes)
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, org_id, email, name, role, password_hash, totp_secret, totp_enabled, totp_last_step,
		recovery_codes, failed_count, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, 0, $10, $10)`,
		u.ID, u.OrgID, u.Email, u.Name, string(u.Role), u.PasswordHash, u.TOTPSecretSealed, u.TOTPEnabled, string(codes), now)
	if IsUniqueViolation(err) {
		return fmt.Errorf("user %s: %w", u.Email, ErrUserExists)
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Email, err)
	}
	u.Status = userStatus(*u, now)
	return WriteAudit(ctx, q, AuditFor(ctx, u.OrgID, "user.created", "user", u.ID, nil, u))
}

// CreateUser is the DB method form.
func (db *DB) CreateUser(ctx context.Context, u *User) error {
	return db.InTx(ctx, func(tx *sql.Tx) error { return CreateUser(ctx, tx, u) })
}

// GetUser returns one user of an org (removed users too).
func (db *DB) GetUser(ctx context.Context, orgID, id string) (User, error) {
	return getUser(ctx, db.SQL, orgID, id)
}

func getUser(ctx context.Context, q Querier, orgID, id string) (User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}

// FindUsersByEmail returns the users (not removed) with this email: in orgID, or in every
// org when orgID is "" (one person can administer several).
func (db *DB) FindUsersByEmail(ctx context.Context, orgID, email string) ([]User, error) {
	email = NormalizeEmail(email)
	if email == "" {
		return nil, nil
	}
	q := `SELECT ` + userCols + ` FROM users WHERE email = $1 AND removed_at IS NULL`
	args := []any{email}
	if orgID != "" {
		q += ` AND org_id = $2`
		args = append(args, orgID)
	}
	return queryAll(ctx, db.SQL, "find users by email", scanUser, q+` ORDER BY org_id, id`, args...)
}

// ListUsers returns one page of an org's users; removed users only when withRemoved.
func (db *DB) ListUsers(ctx context.Context, orgID string, withRemoved bool, p Page) ([]User, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	if !withRemoved {
		w.conds = append(w.conds, "removed_at IS NULL")
	}
	return listPage(ctx, db.SQL, "list users", scanUser, func(u User) string { return u.ID }, p, `SELECT `+userCols+` FROM users`, w)
}

// UserPatch changes a user's profile; nil fields stay.
type UserPatch struct {
	Name  *string
	Email *string
	Role  *domain.Role
}

// lockOrg serializes changes that count an org's owners: on Postgres the row lock holds
// until commit, so two admins demoting the last two owners at once cannot both pass; on
// SQLite the transaction already holds the write lock.
func lockOrg(ctx context.Context, tx *sql.Tx, orgID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE orgs SET updated_at = updated_at WHERE id = $1`, orgID); err != nil {
		return fmt.Errorf("lock org %s: %w", orgID, err)
	}
	return nil
}

func countActiveOwners(ctx context.Context, q Querier, orgID, exceptUserID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner' AND removed_at IS NULL
		AND disabled_at IS NULL AND id <> $2`, orgID, exceptUserID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count owners: %w", err)
	}
	return n, nil
}

// CountActiveOwners counts the owners still in the organization.
func (db *DB) CountActiveOwners(ctx context.Context, orgID string) (int, error) {
	return countActiveOwners(ctx, db.SQL, orgID, "")
}

// PatchUser edits a user. Demoting the last active owner is ErrLastOwner; the email can
// change only before the user has signed in (claiming the migrated-tokens placeholder, or
// fixing a typo in an invitation). Audits user.role_changed or user.updated.
func (db *DB) PatchUser(ctx context.Context, orgID, id string, p UserPatch) (User, error) {
	var out User
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		before, err := getUser(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		if before.RemovedAt != nil {
			return fmt.Errorf("user %s: %w", id, ErrNotFound)
		}
		after := before
		if p.Name != nil {
			after.Name = strings.TrimSpace(*p.Name)
		}
		if p.Email != nil {
			e := NormalizeEmail(*p.Email)
			if e != before.Email && (before.PasswordHash != "" || before.LastSignInAt != nil) {
				return fmt.Errorf("%w: the email of a user who has signed in cannot change; invite the new address instead", ErrConflict)
			}
			after.Email = e
		}
		if p.Role != nil {
			if !p.Role.Valid() {
				return fmt.Errorf("%w: role %q is not one of owner, admin, it, viewer", ErrInvalidInput, *p.Role)
			}
			if before.Role == domain.RoleOwner && *p.Role != domain.RoleOwner {
				n, err := countActiveOwners(ctx, tx, orgID, id)
				if err != nil {
					return err
				}
				if n == 0 {
					return ErrLastOwner
				}
			}
			after.Role = *p.Role
		}
		now := domain.Now()
		after.UpdatedAt = now
		_, err = tx.ExecContext(ctx, `UPDATE users SET name = $1, email = $2, role = $3, updated_at = $4 WHERE id = $5`,
			after.Name, after.Email, string(after.Role), now, id)
		if IsUniqueViolation(err) {
			return fmt.Errorf("user %s: %w", after.Email, ErrUserExists)
		}
		if err != nil {
			return fmt.Errorf("update user %s: %w", id, err)
		}
		action := "user.updated"
		if after.Role != before.Role {
			action = "user.role_changed"
		}
		out = after
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, action, "user", id, before, after))
	})
	return out, err
}

// RemoveUser takes a person out of the organization: their API tokens and sessions are
// revoked in the same transaction. Removing the last active owner is ErrLastOwner.
func (db *DB) RemoveUser(ctx context.Context, orgID, id string) (User, error) {
	var out User
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		u, err := getUser(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		if u.RemovedAt != nil {
			out = u
			return nil
		}
		if u.Role == domain.RoleOwner {
			n, err := countActiveOwners(ctx, tx, orgID, id)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLastOwner
			}
		}
		now := domain.Now()
		if _, err := tx.ExecContext(ctx, `UPDATE users SET removed_at = $1, updated_at = $1 WHERE id = $2`, now, id); err != nil {
			return fmt.Errorf("remove user %s: %w", id, err)
		}
		toks, err := QueryStrings(ctx, tx, `SELECT id FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL`, id)
		if err != nil {
			return fmt.Errorf("tokens of user %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL`, now, id); err != nil {
			return fmt.Errorf("revoke tokens of user %s: %w", id, err)
		}
		for _, t := range toks {
			if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "token.revoked", "token", t, nil, map[string]string{"reason": "user removed", "user_id": id})); err != nil {
				return err
			}
		}
		if _, err := revokeUserSessions(ctx, tx, orgID, id, now, "user removed"); err != nil {
			return err
		}
		before := u
		u.RemovedAt, u.UpdatedAt, u.Status = &now, now, "removed"
		out = u
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "user.removed", "user", id, before, map[string]any{"revoked_tokens": toks}))
	})
	return out, err
}

// SetUserPassword stores a new password hash (and clears the failure count).
func (db *DB) SetUserPassword(ctx context.Context, orgID, id, hash string) error {
	now := domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = $1, failed_count = 0, locked_until = NULL, updated_at = $2
			WHERE org_id = $3 AND id = $4 AND removed_at IS NULL`, hash, now, orgID, id)
		if err := oneRow(res, err, "set password of user "+id); err != nil {
			return err
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "user.password_set", "user", id, nil, nil))
	})
}

// EnableUserTOTP stores the sealed TOTP secret and the recovery code hashes; acceptedStep
// is the step of the code that proved the setup, so it cannot be used again.
func (db *DB) EnableUserTOTP(ctx context.Context, orgID, id, sealed string, acceptedStep int64, recoveryHashes []string) error {
	codes, _ := json.Marshal(recoveryHashes)
	now := domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET totp_secret = $1, totp_enabled = $2, totp_last_step = $3, recovery_codes = $4,
			updated_at = $5 WHERE org_id = $6 AND id = $7 AND removed_at IS NULL`, sealed, true, acceptedStep, string(codes), now, orgID, id)
		if err := oneRow(res, err, "enable totp of user "+id); err != nil {
			return err
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "user.totp_enabled", "user", id, nil, map[string]int{"recovery_codes": len(recoveryHashes)}))
	})
}

// UseTOTPStep records that a code for step was accepted; false means a code of that step
// (or a later one) was already used: a replay.
func (db *DB) UseTOTPStep(ctx context.Context, id string, step int64) (bool, error) {
	res, err := db.SQL.ExecContext(ctx, `UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1`, step, id)
	if err != nil {
		return false, fmt.Errorf("use totp step: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// UseRecoveryCode removes one recovery code hash; false when the user has no such unused
// code. The read and the write share a transaction, so a code works once.
func (db *DB) UseRecoveryCode(ctx context.Context, orgID, id, hash string) (bool, error) {
	ok := false
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		u, err := getUser(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		left := make([]string, 0, len(u.RecoveryCodeHashes))
		for _, h := range u.RecoveryCodeHashes {
			if h == hash && !ok {
				ok = true
				continue
			}
			left = append(left, h)
		}
		if !ok {
			return nil
		}
		b, _ := json.Marshal(left)
		if _, err := tx.ExecContext(ctx, `UPDATE users SET recovery_codes = $1, updated_at = $2 WHERE id = $3`, string(b), domain.Now(), id); err != nil {
			return fmt.Errorf("use recovery code: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "user.recovery_code_used", "user", id, nil, map[string]int{"recovery_codes_left": len(left)}))
	})
	return ok, err
}

// RecordSignInFailure counts a failed sign-in; at maxFailures the user is locked until
// now+lockFor (and the count starts again). It returns the lock's end when this failure
// locked the account.
func (db *DB) RecordSignInFailure(ctx context.Context, orgID, id string, now time.Time, maxFailures int, lockFor time.Duration) (*time.Time, error) {
	var locked *time.Time
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `UPDATE users SET failed_count = failed_count + 1 WHERE org_id = $1 AND id = $2
			RETURNING failed_count`, orgID, id).Scan(&n); err != nil {
			return fmt.Errorf("record sign-in failure: %w", err)
		}
		if n < maxFailures {
			return nil
		}
		until := now.Add(lockFor).UTC()
		if _, err := tx.ExecContext(ctx, `UPDATE users SET failed_count = 0, locked_until = $1, updated_at = $2 WHERE id = $3`, until, now.UTC(), id); err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		locked = &until
		return nil
	})
	return locked, err
}

// RecordSignIn resets the failure count and stamps the sign-in.
func (db *DB) RecordSignIn(ctx context.Context, id string, now time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE users SET failed_count = 0, locked_until = NULL, last_sign_in_at = $1 WHERE id = $2`, now.UTC(), id)
	if err != nil {
		return fmt.Errorf("record sign-in: %w", err)
	}
	return nil
}

func oneRow(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
