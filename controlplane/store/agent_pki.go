package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// PKIAuthority is the embedded CA's persisted material; keys are sealed by the caller.
type PKIAuthority struct {
	RootDER               []byte
	RootKeySealed         string
	IntermediateDER       []byte
	IntermediateKeySealed string
	JWKSealed             string
	CreatedAt             time.Time
}

// AgentCert is one certificate issued to an agent.
type AgentCert struct {
	Serial       string
	OrgID        string
	AgentID      string
	Provisioner  string
	DER          []byte
	NotBefore    time.Time
	NotAfter     time.Time
	RevokedAt    *time.Time
	RevokeReason string
}

const pkiAuthorityID = "default"

// LoadPKIAuthority returns the CA material, or ErrNotFound before the first start.
func (db *DB) LoadPKIAuthority(ctx context.Context) (PKIAuthority, error) {
	var a PKIAuthority
	err := db.SQL.QueryRowContext(ctx, `SELECT root_der, root_key_sealed, intermediate_der, intermediate_key_sealed, jwk_sealed, created_at
		FROM pki_authority WHERE id = $1`, pkiAuthorityID).Scan(&a.RootDER, &a.RootKeySealed, &a.IntermediateDER, &a.IntermediateKeySealed, &a.JWKSealed, &a.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("pki authority: %w", ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("load pki authority: %w", err)
	}
	return a, nil
}

// InsertPKIAuthority stores the CA material created at first start. A concurrent first
// start on another replica makes this ErrConflict; the caller then loads the winner's.
func (db *DB) InsertPKIAuthority(ctx context.Context, a PKIAuthority) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO pki_authority (id, root_der, root_key_sealed, intermediate_der, intermediate_key_sealed, jwk_sealed, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, pkiAuthorityID, a.RootDER, a.RootKeySealed, a.IntermediateDER, a.IntermediateKeySealed, a.JWKSealed, a.CreatedAt.UTC())
	if IsUniqueViolation(err) {
		return fmt.Errorf("pki authority exists: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert pki authority: %w", err)
	}
	return nil
}

// UsePKIToken records a one-time token id; it returns false when it was used before.
func (db *DB) UsePKIToken(ctx context.Context, jti string, at time.Time) (bool, error) {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO pki_used_tokens (jti, used_at) VALUES ($1, $2)`, jti, at.UTC())
	if IsUniqueViolation(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("use token: %w", err)
	}
	return true, nil
}

// InsertAgentCert records an issued certificate.
func (db *DB) InsertAgentCert(ctx context.Context, c AgentCert) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO pki_certs (serial, org_id, agent_id, provisioner, der, not_before, not_after, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, c.Serial, c.OrgID, c.AgentID, c.Provisioner, c.DER, c.NotBefore.UTC(), c.NotAfter.UTC(), domain.Now())
	if err != nil {
		return fmt.Errorf("record certificate %s: %w", c.Serial, err)
	}
	return nil
}

// GetAgentCert reads one certificate by serial.
func (db *DB) GetAgentCert(ctx context.Context, serial string) (AgentCert, error) {
	var c AgentCert
	err := db.SQL.QueryRowContext(ctx, `SELECT serial, org_id, agent_id, provisioner, der, not_before, not_after, revoked_at, revoke_reason
		FROM pki_certs WHERE serial = $1`, serial).Scan(&c.Serial, &c.OrgID, &c.AgentID, &c.Provisioner, &c.DER, &c.NotBefore, &c.NotAfter, &c.RevokedAt, &c.RevokeReason)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("certificate %s: %w", serial, ErrNotFound)
	}
	return c, err
}

// IsAgentCertRevoked reports whether a serial is revoked (an unknown serial is not).
func (db *DB) IsAgentCertRevoked(ctx context.Context, serial string) (bool, error) {
	var n int
	err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM pki_certs WHERE serial = $1 AND revoked_at IS NOT NULL`, serial).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check revocation of %s: %w", serial, err)
	}
	return n > 0, nil
}

// RevokeAgentCert revokes one serial; revoking twice keeps the first time.
func (db *DB) RevokeAgentCert(ctx context.Context, serial, reason string, at time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE pki_certs SET revoked_at = $1, revoke_reason = $2 WHERE serial = $3 AND revoked_at IS NULL`,
		at.UTC(), reason, serial)
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	return nil
}

// revokeAgentCerts revokes every live serial of an agent inside q.
func revokeAgentCerts(ctx context.Context, q Querier, agentID, reason string, at time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE pki_certs SET revoked_at = $1, revoke_reason = $2 WHERE agent_id = $3 AND revoked_at IS NULL`,
		at.UTC(), reason, agentID)
	if err != nil {
		return fmt.Errorf("revoke certificates of agent %s: %w", agentID, err)
	}
	return nil
}

// RevokedSince returns the ids of agents revoked at or after since (all when zero), with the
// time of the latest revocation seen, for the in-memory revocation set.
func (db *DB) RevokedAgentsSince(ctx context.Context, since time.Time) ([]string, time.Time, error) {
	rows, err := db.SQL.QueryContext(ctx, `SELECT id, revoked_at FROM agents WHERE revoked_at IS NOT NULL AND revoked_at >= $1`, since.UTC())
	if err != nil {
		return nil, since, fmt.Errorf("list revoked agents: %w", err)
	}
	defer rows.Close()
	var ids []string
	latest := since
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, since, err
		}
		ids = append(ids, id)
		if at.After(latest) {
			latest = at
		}
	}
	return ids, latest, rows.Err()
}
