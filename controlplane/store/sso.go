package store

// SQL of single sign-on (controlplane/auth/oidc): per-org provider configuration and the
// one-use sign-in states. Tables: migration 00610_sso.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// SSOConfig is an organization's OpenID Connect provider.
type SSOConfig struct {
	OrgID    string `json:"-"`
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// ClientSecretSealed is sealed with the keyring (never serialized).
	ClientSecretSealed string    `json:"-"`
	AllowedDomains     []string  `json:"allowed_domains"`
	Enabled            bool      `json:"enabled"`
	UpdatedBy          string    `json:"updated_by,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// SSOClientSecretAAD binds a sealed client secret to its organization.
func SSOClientSecretAAD(orgID string) string { return "org:" + orgID + ":sso_client_secret" }

const ssoConfigCols = `org_id, issuer, client_id, client_secret_sealed, allowed_domains, enabled, updated_by, created_at, updated_at`

func scanSSOConfig(s rowScanner) (SSOConfig, error) {
	var c SSOConfig
	var domains string
	if err := s.Scan(&c.OrgID, &c.Issuer, &c.ClientID, &c.ClientSecretSealed, &domains, &c.Enabled, &c.UpdatedBy,
		&c.CreatedAt, &c.UpdatedAt); err != nil {
		return c, err
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if err := json.Unmarshal([]byte(domains), &c.AllowedDomains); err != nil {
		return c, fmt.Errorf("sso config %s allowed_domains: %w", c.OrgID, err)
	}
	if c.AllowedDomains == nil {
		c.AllowedDomains = []string{}
	}
	return c, nil
}

// GetSSOConfig returns the org's SSO configuration (ErrNotFound when there is none).
func (db *DB) GetSSOConfig(ctx context.Context, orgID string) (SSOConfig, error) {
	return getSSOConfig(ctx, db.SQL, orgID)
}

func getSSOConfig(ctx context.Context, q Querier, orgID string) (SSOConfig, error) {
	c, err := scanSSOConfig(q.QueryRowContext(ctx, `SELECT `+ssoConfigCols+` FROM sso_configs WHERE org_id = $1`, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("sso config: %w", ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("get sso config: %w", err)
	}
	return c, nil
}

// ssoAudit is what the audit log keeps of a configuration: never the secret, only whether
// this change replaced it.
type ssoAudit struct {
	SSOConfig
	SecretChanged bool `json:"secret_changed"`
}

// PutSSOConfig creates or replaces the org's configuration and audits sso.configured in
// the same transaction. c.ClientSecretSealed must be set (keep the stored value to leave
// the secret unchanged).
func (db *DB) PutSSOConfig(ctx context.Context, c *SSOConfig) error {
	if c.OrgID == "" || c.Issuer == "" || c.ClientID == "" || c.ClientSecretSealed == "" {
		return fmt.Errorf("sso config needs org, issuer, client id and a sealed secret: %w", ErrInvalidInput)
	}
	if c.AllowedDomains == nil {
		c.AllowedDomains = []string{}
	}
	domains, err := json.Marshal(c.AllowedDomains)
	if err != nil {
		return err
	}
	c.UpdatedBy = domain.ActorFrom(ctx).ID
	return db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := getSSOConfig(ctx, tx, c.OrgID)
		var prev any
		switch {
		case errors.Is(err, ErrNotFound):
			c.CreatedAt = domain.Now()
		case err != nil:
			return err
		default:
			c.CreatedAt = before.CreatedAt
			prev = before
		}
		c.UpdatedAt = domain.Now()
		_, err = tx.ExecContext(ctx, `INSERT INTO sso_configs (`+ssoConfigCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id,
			client_secret_sealed = excluded.client_secret_sealed, allowed_domains = excluded.allowed_domains,
			enabled = excluded.enabled, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
			c.OrgID, c.Issuer, c.ClientID, c.ClientSecretSealed, string(domains), c.Enabled, c.UpdatedBy, c.CreatedAt, c.UpdatedAt)
		if err != nil {
			return fmt.Errorf("put sso config: %w", err)
		}
		after := ssoAudit{SSOConfig: *c, SecretChanged: before.ClientSecretSealed != c.ClientSecretSealed}
		return WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "sso.configured", "sso_config", c.OrgID, prev, after))
	})
}

// DeleteSSOConfig removes the org's configuration and its sign-ins in flight, auditing
// sso.deleted; ErrNotFound when there was none.
func (db *DB) DeleteSSOConfig(ctx context.Context, orgID string) (SSOConfig, error) {
	var before SSOConfig
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if before, err = getSSOConfig(ctx, tx, orgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sso_states WHERE org_id = $1`, orgID); err != nil {
			return fmt.Errorf("delete sso states: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sso_configs WHERE org_id = $1`, orgID); err != nil {
			return fmt.Errorf("delete sso config: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "sso.deleted", "sso_config", orgID, before, nil))
	})
	return before, err
}

// SSOState is one sign-in in flight.
type SSOState struct {
	StateHash      string
	OrgID          string
	BindingHash    string
	Issuer         string
	ClientID       string
	Nonce          string
	VerifierSealed string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	// Next is the local path to return to after the sign-in ("" for home).
	Next string
}

// SSOVerifierAAD binds a sealed PKCE verifier to its state row.
func SSOVerifierAAD(stateHash string) string { return "sso_state:" + stateHash + ":verifier" }

// InsertSSOState stores a new sign-in after removing expired ones (so abandoned sign-ins
// do not pile up), and refuses with ErrConflict when the org already has max in flight:
// the start endpoint is unauthenticated and must not grow the table without bound.
func (db *DB) InsertSSOState(ctx context.Context, s SSOState, now time.Time, max int) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sso_states WHERE expires_at <= $1`, now.UTC()); err != nil {
			return fmt.Errorf("expire sso states: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sso_states WHERE org_id = $1`, s.OrgID).Scan(&n); err != nil {
			return fmt.Errorf("count sso states: %w", err)
		}
		if n >= max {
			return fmt.Errorf("org %s has %d single sign-ins in flight: %w", s.OrgID, n, ErrConflict)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sso_states (state_hash, org_id, binding_hash, issuer, client_id, nonce,
			verifier_sealed, created_at, expires_at, next_path) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			s.StateHash, s.OrgID, s.BindingHash, s.Issuer, s.ClientID, s.Nonce, s.VerifierSealed, s.CreatedAt.UTC(), s.ExpiresAt.UTC(), s.Next)
		if err != nil {
			return fmt.Errorf("insert sso state: %w", err)
		}
		return nil
	})
}

// ConsumeSSOState deletes and returns the state row with stateHash, expired or not (the
// caller checks ExpiresAt), so a callback can use it exactly once. ErrNotFound when there
// is no such row (never issued, or already used).
func (db *DB) ConsumeSSOState(ctx context.Context, stateHash string) (SSOState, error) {
	s := SSOState{StateHash: stateHash}
	err := db.SQL.QueryRowContext(ctx, `DELETE FROM sso_states WHERE state_hash = $1
		RETURNING org_id, binding_hash, issuer, client_id, nonce, verifier_sealed, created_at, expires_at, next_path`, stateHash).
		Scan(&s.OrgID, &s.BindingHash, &s.Issuer, &s.ClientID, &s.Nonce, &s.VerifierSealed, &s.CreatedAt, &s.ExpiresAt, &s.Next)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("sso state: %w", ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("consume sso state: %w", err)
	}
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	return s, nil
}

// SSOFailure is what the audit log keeps of a refused single sign-on: the reason code and
// who the provider said it was, never a code, state or token.
type SSOFailure struct {
	Method  string `json:"method"`
	Reason  string `json:"reason"`
	Email   string `json:"email,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// RecordSSOFailure audits user.sign_in_failed (method sso) for orgID.
func (db *DB) RecordSSOFailure(ctx context.Context, orgID string, f SSOFailure) error {
	f.Method = "sso"
	return WriteAudit(ctx, db.SQL, AuditFor(ctx, orgID, "user.sign_in_failed", "user", "", nil, f))
}
