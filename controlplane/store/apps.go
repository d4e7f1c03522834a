package store

import (
	"context"
	"database/sql"

	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// AppConnector is an org's configuration for one application (SCIM first). The bearer
// token is stored sealed by secrets.Keyring; the store never sees it in clear.
type AppConnector struct {
	ID      string `json:"id"`
	OrgID   string `json:"org_id"`
	App     string `json:"app"`
	Kind    string `json:"kind"`
	BaseURL string `json:"base_url"`
	// Settings is the kind's own JSON settings (never a secret).
	Settings string `json:"settings,omitempty"`
	// AuthKind is bearer, basic or oauth: what the sealed secret is.
	AuthKind    string    `json:"auth_kind,omitempty"`
	TokenSealed string    `json:"-"`
	RevokeMode  string    `json:"revoke_mode"`
	CreatedAt   time.Time `json:"created_at"`
}

// AppRule is a stored apps.Rule; Apps is the JSON list of grants.
type AppRule struct {
	ID         string    `json:"id"`
	OrgID      string    `json:"org_id"`
	Department string    `json:"department,omitempty"`
	Role       string    `json:"role,omitempty"`
	MemberType string    `json:"member_type,omitempty"`
	Apps       string    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
}

// UpsertAppConnector creates or replaces the connector of (org, app).
func (db *DB) UpsertAppConnector(ctx context.Context, c *AppConnector) error {
	if c.ID == "" {
		c.ID = domain.NewID()
	}
	c.CreatedAt = domain.Now()
	if c.Settings == "" {
		c.Settings = "{}"
	}
	if c.AuthKind == "" {
		c.AuthKind = "bearer"
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM app_connectors WHERE org_id = $1 AND app = $2`, c.OrgID, c.App); err != nil {
			return fmt.Errorf("replace connector %s: %w", c.App, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO app_connectors (id, org_id, app, kind, base_url, token_sealed, revoke_mode, created_at, settings, auth_kind)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, c.ID, c.OrgID, c.App, c.Kind, c.BaseURL, c.TokenSealed, c.RevokeMode, c.CreatedAt,
			c.Settings, c.AuthKind); err != nil {
			return fmt.Errorf("insert connector %s: %w", c.App, err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "app.connector.saved", "app_connector", c.ID, nil, c))
	})
}

// ListAppConnectors returns every connector of an org.
func (db *DB) ListAppConnectors(ctx context.Context, orgID string) ([]AppConnector, error) {
	return queryAll(ctx, db.SQL, "list connectors", func(s rowScanner) (AppConnector, error) {
		var c AppConnector
		err := s.Scan(&c.ID, &c.OrgID, &c.App, &c.Kind, &c.BaseURL, &c.TokenSealed, &c.RevokeMode, &c.CreatedAt, &c.Settings, &c.AuthKind)
		return c, err
	}, `SELECT id, org_id, app, kind, base_url, token_sealed, revoke_mode, created_at, settings, auth_kind
		FROM app_connectors WHERE org_id = $1 ORDER BY app`, orgID)
}

// DeleteAppConnector removes a connector.
func (db *DB) DeleteAppConnector(ctx context.Context, orgID, app string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM app_connectors WHERE org_id = $1 AND app = $2`, orgID, app)
		if err != nil {
			return fmt.Errorf("delete connector %s: %w", app, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("connector %s: %w", app, ErrNotFound)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "app.connector.deleted", "app_connector", app, nil, nil))
	})
}

// InsertAppRule stores a rule.
func (db *DB) InsertAppRule(ctx context.Context, r *AppRule) error {
	if r.ID == "" {
		r.ID = domain.NewID()
	}
	r.CreatedAt = domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO app_rules (id, org_id, department, role, member_type, apps, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.ID, r.OrgID, r.Department, r.Role, r.MemberType, r.Apps, r.CreatedAt); err != nil {
			return fmt.Errorf("insert app rule: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, r.OrgID, "app.rule.created", "app_rule", r.ID, nil, map[string]string{
			"department": r.Department, "role": r.Role, "member_type": r.MemberType, "apps": r.Apps}))
	})
}

// ListAppRules returns an org's rules, oldest first.
func (db *DB) ListAppRules(ctx context.Context, orgID string) ([]AppRule, error) {
	return queryAll(ctx, db.SQL, "list app rules", func(s rowScanner) (AppRule, error) {
		var r AppRule
		err := s.Scan(&r.ID, &r.OrgID, &r.Department, &r.Role, &r.MemberType, &r.Apps, &r.CreatedAt)
		return r, err
	}, `SELECT id, org_id, department, role, member_type, apps, created_at FROM app_rules
		WHERE org_id = $1 ORDER BY id`, orgID)
}

// DeleteAppRule removes a rule.
func (db *DB) DeleteAppRule(ctx context.Context, orgID, id string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM app_rules WHERE org_id = $1 AND id = $2`, orgID, id)
		if err != nil {
			return fmt.Errorf("delete app rule: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("app rule %s: %w", id, ErrNotFound)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "app.rule.deleted", "app_rule", id, nil, nil))
	})
}
