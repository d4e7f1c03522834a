package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// AppOrphan is an app account reconciliation could not square with Lanyard's people.
type AppOrphan struct {
	ID          string     `json:"id"`
	OrgID       string     `json:"org_id"`
	App         string     `json:"app"`
	AccountID   string     `json:"account_id"`
	UserName    string     `json:"user_name,omitempty"`
	EmployeeID  string     `json:"employee_id,omitempty"`
	Reason      string     `json:"reason"` // terminated, no_person
	Action      string     `json:"action"` // resuspended, reported, resuspend_failed
	Detail      string     `json:"detail,omitempty"`
	FirstSeenAt time.Time  `json:"first_seen_at"`
	LastSeenAt  time.Time  `json:"last_seen_at"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
}

// SaveAppOrphans records one reconciliation pass over app: the orphans found are
// inserted or refreshed (first_seen kept), and the app's open orphans not found this
// pass are resolved. A newly seen orphan is audited. It returns how many were new.
func (db *DB) SaveAppOrphans(ctx context.Context, orgID, app string, found []AppOrphan, now time.Time) (int, error) {
	fresh := 0
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		seen := map[string]bool{}
		for i := range found {
			o := &found[i]
			o.OrgID, o.App, o.LastSeenAt = orgID, app, now
			seen[o.AccountID] = true
			var id string
			var first time.Time
			err := tx.QueryRowContext(ctx, `SELECT id, first_seen_at FROM app_orphans WHERE org_id = $1 AND app = $2 AND account_id = $3`,
				orgID, app, o.AccountID).Scan(&id, &first)
			switch {
			case err == sql.ErrNoRows:
				o.ID, o.FirstSeenAt = domain.NewID(), now
				if _, err := tx.ExecContext(ctx, `INSERT INTO app_orphans (id, org_id, app, account_id, user_name, employee_id, reason, action, detail, first_seen_at, last_seen_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, o.ID, orgID, app, o.AccountID, o.UserName, o.EmployeeID, o.Reason, o.Action, o.Detail,
					now.UTC(), now.UTC()); err != nil {
					return fmt.Errorf("insert orphan %s/%s: %w", app, o.AccountID, err)
				}
				fresh++
				if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "app.orphan.found", "app_orphan", o.ID, nil, o)); err != nil {
					return err
				}
			case err != nil:
				return fmt.Errorf("read orphan %s/%s: %w", app, o.AccountID, err)
			default:
				o.ID, o.FirstSeenAt = id, first
				if _, err := tx.ExecContext(ctx, `UPDATE app_orphans SET user_name = $1, employee_id = $2, reason = $3, action = $4, detail = $5,
					last_seen_at = $6, resolved_at = NULL WHERE id = $7`, o.UserName, o.EmployeeID, o.Reason, o.Action, o.Detail, now.UTC(), id); err != nil {
					return fmt.Errorf("update orphan %s: %w", id, err)
				}
			}
			if o.Action == "resuspended" {
				if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "app.account.resuspended", "app_orphan", o.ID, nil, o)); err != nil {
					return err
				}
			}
		}
		open, err := queryAll(ctx, tx, "open orphans", func(s rowScanner) (string, error) {
			var id, acct string
			err := s.Scan(&id, &acct)
			if seen[acct] {
				return "", err
			}
			return id, err
		}, `SELECT id, account_id FROM app_orphans WHERE org_id = $1 AND app = $2 AND resolved_at IS NULL`, orgID, app)
		if err != nil {
			return err
		}
		for _, id := range open {
			if id == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE app_orphans SET resolved_at = $1 WHERE id = $2`, now.UTC(), id); err != nil {
				return fmt.Errorf("resolve orphan %s: %w", id, err)
			}
			if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "app.orphan.resolved", "app_orphan", id, nil, nil)); err != nil {
				return err
			}
		}
		return nil
	})
	return fresh, err
}

// ListAppOrphans returns an org's orphans, open ones only unless all.
func (db *DB) ListAppOrphans(ctx context.Context, orgID string, all bool) ([]AppOrphan, error) {
	q := `SELECT id, org_id, app, account_id, user_name, employee_id, reason, action, detail, first_seen_at, last_seen_at, resolved_at
		FROM app_orphans WHERE org_id = $1`
	if !all {
		q += ` AND resolved_at IS NULL`
	}
	return queryAll(ctx, db.SQL, "list orphans", func(s rowScanner) (AppOrphan, error) {
		var o AppOrphan
		var resolved sql.NullTime
		err := s.Scan(&o.ID, &o.OrgID, &o.App, &o.AccountID, &o.UserName, &o.EmployeeID, &o.Reason, &o.Action, &o.Detail, &o.FirstSeenAt, &o.LastSeenAt, &resolved)
		if resolved.Valid {
			t := resolved.Time
			o.ResolvedAt = &t
		}
		return o, err
	}, q+` ORDER BY app, user_name, account_id`, orgID)
}
