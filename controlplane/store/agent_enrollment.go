package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// EnrollmentSecret is a per-org secret an agent exchanges for a one-time enrollment token.
// Only its hash is stored.
type EnrollmentSecret struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	MaxUses    int        `json:"max_uses"`
	Uses       int        `json:"uses"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Agent is one enrolled (or enrolling) agent installation; its id is the identity in its
// client certificate.
type Agent struct {
	ID             string     `json:"id"`
	OrgID          string     `json:"org_id"`
	SecretID       string     `json:"secret_id"`
	DeviceID       string     `json:"device_id,omitempty"`
	Hostname       string     `json:"hostname"`
	SerialNumber   string     `json:"serial_number"`
	HardwareUUID   string     `json:"hardware_uuid"`
	Platform       string     `json:"platform"`
	AgentVersion   string     `json:"agent_version"`
	EnrolledAt     *time.Time `json:"enrolled_at,omitempty"`
	LastSeenAt     *time.Time `json:"last_seen_at,omitempty"`
	Online         bool       `json:"online"`
	SerialConflict bool       `json:"serial_conflict"`
	InventoryHash  string     `json:"inventory_hash,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	RevokeReason   string     `json:"revoke_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	// Mode is the test knobs the agent last announced (Hello, inventory reports).
	Mode AgentMode `json:"agent_mode"`
	// LockedByCommandID is the lock the agent says it holds (Hello).
	LockedByCommandID string `json:"locked_by_command_id,omitempty"`
}

// ErrSecretRejected means an enrollment secret is unknown, revoked, expired or used up.
var ErrSecretRejected = errors.New("enrollment secret rejected")

const secretCols = `id, org_id, name, prefix, created_by, created_at, expires_at, max_uses, uses, last_used_at, revoked_at`

func scanSecret(s interface{ Scan(...any) error }) (EnrollmentSecret, error) {
	var e EnrollmentSecret
	err := s.Scan(&e.ID, &e.OrgID, &e.Name, &e.Prefix, &e.CreatedBy, &e.CreatedAt, &e.ExpiresAt, &e.MaxUses, &e.Uses, &e.LastUsedAt, &e.RevokedAt)
	return e, err
}

func timePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

// CreateEnrollmentSecret stores a new secret by its hash.
func CreateEnrollmentSecret(ctx context.Context, q Querier, s *EnrollmentSecret, hash string) error {
	if s.ID == "" {
		s.ID = domain.NewID()
	}
	s.CreatedAt = domain.Now()
	if s.CreatedBy == "" {
		s.CreatedBy = domain.ActorFrom(ctx).ID
	}
	_, err := q.ExecContext(ctx, `INSERT INTO enrollment_secrets (id, org_id, name, secret_hash, prefix, created_by, created_at, expires_at, max_uses, uses)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)`, s.ID, s.OrgID, s.Name, hash, s.Prefix, s.CreatedBy, s.CreatedAt, timePtr(s.ExpiresAt), s.MaxUses)
	if err != nil {
		return fmt.Errorf("create enrollment secret: %w", err)
	}
	return WriteAudit(ctx, q, AuditFor(ctx, s.OrgID, "enrollment_secret.created", "enrollment_secret", s.ID, nil, s))
}

// CreateEnrollmentSecret is the DB method form.
func (db *DB) CreateEnrollmentSecret(ctx context.Context, s *EnrollmentSecret, hash string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error { return CreateEnrollmentSecret(ctx, tx, s, hash) })
}

// GetEnrollmentSecret reads one secret of an org.
func GetEnrollmentSecret(ctx context.Context, q Querier, orgID, id string) (EnrollmentSecret, error) {
	s, err := scanSecret(q.QueryRowContext(ctx, `SELECT `+secretCols+` FROM enrollment_secrets WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("enrollment secret %s: %w", id, ErrNotFound)
	}
	return s, err
}

// GetEnrollmentSecret is the DB method form.
func (db *DB) GetEnrollmentSecret(ctx context.Context, orgID, id string) (EnrollmentSecret, error) {
	return GetEnrollmentSecret(ctx, db.SQL, orgID, id)
}

// ListEnrollmentSecrets returns one page of an org's secrets.
func (db *DB) ListEnrollmentSecrets(ctx context.Context, orgID string, p Page) ([]EnrollmentSecret, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	return listPage(ctx, db.SQL, "list enrollment secrets", scanSecret, func(s EnrollmentSecret) string { return s.ID }, p,
		`SELECT `+secretCols+` FROM enrollment_secrets`, w)
}

// RevokeEnrollmentSecret revokes a secret inside q. With revokeAgents, every agent that
// enrolled with it is revoked too (certificates included); their ids are returned.
func RevokeEnrollmentSecret(ctx context.Context, q Querier, orgID, id string, revokeAgents bool) (EnrollmentSecret, []string, error) {
	before, err := GetEnrollmentSecret(ctx, q, orgID, id)
	if err != nil {
		return before, nil, err
	}
	now := domain.Now()
	after := before
	if before.RevokedAt == nil {
		after.RevokedAt = &now
		if _, err := q.ExecContext(ctx, `UPDATE enrollment_secrets SET revoked_at = $1 WHERE org_id = $2 AND id = $3`, now, orgID, id); err != nil {
			return before, nil, fmt.Errorf("revoke enrollment secret %s: %w", id, err)
		}
		if err := WriteAudit(ctx, q, AuditFor(ctx, orgID, "enrollment_secret.revoked", "enrollment_secret", id, before, after)); err != nil {
			return before, nil, err
		}
	}
	var ids []string
	if revokeAgents {
		var err error
		ids, err = QueryStrings(ctx, q, `SELECT id FROM agents WHERE org_id = $1 AND secret_id = $2 AND revoked_at IS NULL`, orgID, id)
		if err != nil {
			return before, nil, fmt.Errorf("list agents of secret %s: %w", id, err)
		}
		for _, a := range ids {
			if err := RevokeAgent(ctx, q, orgID, a, "enrollment secret "+id+" revoked"); err != nil {
				return before, nil, err
			}
		}
	}
	return after, ids, nil
}

// RevokeEnrollmentSecret is the DB method form.
func (db *DB) RevokeEnrollmentSecret(ctx context.Context, orgID, id string, revokeAgents bool) (EnrollmentSecret, error) {
	s, _, err := db.RevokeEnrollmentSecretAgents(ctx, orgID, id, revokeAgents)
	return s, err
}

// RevokeEnrollmentSecretAgents is RevokeEnrollmentSecret returning the revoked agent ids
// (so the agent API can cut their streams).
func (db *DB) RevokeEnrollmentSecretAgents(ctx context.Context, orgID, id string, revokeAgents bool) (EnrollmentSecret, []string, error) {
	var s EnrollmentSecret
	var ids []string
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		s, ids, err = RevokeEnrollmentSecret(ctx, tx, orgID, id, revokeAgents)
		return err
	})
	return s, ids, err
}

// ExchangeEnrollmentSecret checks a secret by hash and, when it is usable, counts one use
// and creates the agent that will enroll with it, all in one transaction. It returns
// ErrSecretRejected (wrapped) for an unknown, revoked, expired or used-up secret.
func (db *DB) ExchangeEnrollmentSecret(ctx context.Context, hash string, a *Agent) (EnrollmentSecret, error) {
	var s EnrollmentSecret
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		s, err = scanSecret(tx.QueryRowContext(ctx, `SELECT `+secretCols+` FROM enrollment_secrets WHERE secret_hash = $1`, hash))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("unknown secret: %w", ErrSecretRejected)
		}
		if err != nil {
			return fmt.Errorf("look up enrollment secret: %w", err)
		}
		now := domain.Now()
		switch {
		case s.RevokedAt != nil:
			return fmt.Errorf("secret %s is revoked: %w", s.ID, ErrSecretRejected)
		case s.ExpiresAt != nil && !now.Before(*s.ExpiresAt):
			return fmt.Errorf("secret %s expired: %w", s.ID, ErrSecretRejected)
		case s.MaxUses > 0 && s.Uses >= s.MaxUses:
			return fmt.Errorf("secret %s is used up: %w", s.ID, ErrSecretRejected)
		}
		// The conditional update makes concurrent exchanges respect max_uses.
		res, err := tx.ExecContext(ctx, `UPDATE enrollment_secrets SET uses = uses + 1, last_used_at = $1
			WHERE id = $2 AND revoked_at IS NULL AND (max_uses = 0 OR uses < max_uses)`, now, s.ID)
		if err != nil {
			return fmt.Errorf("count secret use: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("secret %s is used up: %w", s.ID, ErrSecretRejected)
		}
		s.Uses++
		s.LastUsedAt = &now
		a.OrgID, a.SecretID = s.OrgID, s.ID
		if a.ID == "" {
			a.ID = domain.NewID()
		}
		a.CreatedAt = now
		// The machine is known by its serial, or by its hardware UUID when the firmware has
		// no usable serial, normalized the way every inventory report is.
		a.HardwareUUID = domain.CleanHardwareUUID(a.HardwareUUID)
		a.SerialNumber, _ = domain.IdentifyDevice(a.SerialNumber, a.HardwareUUID)
		if _, err := tx.ExecContext(ctx, `INSERT INTO agents (id, org_id, secret_id, hostname, serial_number, hardware_uuid, platform, agent_version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, a.ID, a.OrgID, a.SecretID, a.Hostname, a.SerialNumber, a.HardwareUUID, a.Platform, a.AgentVersion, now, now); err != nil {
			return fmt.Errorf("create agent: %w", err)
		}
		ctx := domain.WithActor(ctx, domain.Actor{ID: "agent:" + a.ID})
		return WriteAudit(ctx, tx, AuditFor(ctx, s.OrgID, "enrollment_secret.used", "agent", a.ID, nil, map[string]string{"secret_id": s.ID, "hostname": a.Hostname, "serial_number": a.SerialNumber}))
	})
	return s, err
}

const agentCols = `id, org_id, secret_id, device_id, hostname, serial_number, hardware_uuid, platform, agent_version, enrolled_at, last_seen_at,
	online, serial_conflict, inventory_hash, revoked_at, revoke_reason, created_at, agent_mode, locked_by_command_id`

func scanAgent(s interface{ Scan(...any) error }) (Agent, error) {
	var a Agent
	var dev *string
	var mode string
	err := s.Scan(&a.ID, &a.OrgID, &a.SecretID, &dev, &a.Hostname, &a.SerialNumber, &a.HardwareUUID, &a.Platform, &a.AgentVersion,
		&a.EnrolledAt, &a.LastSeenAt, &a.Online, &a.SerialConflict, &a.InventoryHash, &a.RevokedAt, &a.RevokeReason, &a.CreatedAt,
		&mode, &a.LockedByCommandID)
	a.Mode = ParseAgentMode(mode)
	if dev != nil {
		a.DeviceID = *dev
	}
	return a, err
}

// GetAgent reads one agent of an org.
func GetAgent(ctx context.Context, q Querier, orgID, id string) (Agent, error) {
	a, err := scanAgent(q.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return a, err
}

// GetAgent is the DB method form.
func (db *DB) GetAgent(ctx context.Context, orgID, id string) (Agent, error) {
	return GetAgent(ctx, db.SQL, orgID, id)
}

// ListAgentsForDevice returns the agents linked to a device.
func (db *DB) ListAgentsForDevice(ctx context.Context, orgID, deviceID string) ([]Agent, error) {
	return queryAll(ctx, db.SQL, "list agents of device "+deviceID, scanAgent,
		`SELECT `+agentCols+` FROM agents WHERE org_id = $1 AND device_id = $2 ORDER BY id`, orgID, deviceID)
}

// MarkAgentEnrolled records the first certificate's issue.
func (db *DB) MarkAgentEnrolled(ctx context.Context, orgID, agentID string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		now := domain.Now()
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET enrolled_at = $1, updated_at = $1 WHERE org_id = $2 AND id = $3`, now, orgID, agentID); err != nil {
			return fmt.Errorf("mark agent %s enrolled: %w", agentID, err)
		}
		ctx := domain.WithActor(ctx, domain.Actor{ID: "agent:" + agentID})
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "agent.enrolled", "agent", agentID, nil, nil))
	})
}

// RevokeAgent revokes an agent and every certificate it holds, inside q.
func RevokeAgent(ctx context.Context, q Querier, orgID, agentID, reason string) error {
	before, err := GetAgent(ctx, q, orgID, agentID)
	if err != nil {
		return err
	}
	if before.RevokedAt != nil {
		return nil
	}
	now := domain.Now()
	if _, err := q.ExecContext(ctx, `UPDATE agents SET revoked_at = $1, revoke_reason = $2, online = $3, updated_at = $1 WHERE id = $4`,
		now, reason, false, agentID); err != nil {
		return fmt.Errorf("revoke agent %s: %w", agentID, err)
	}
	if err := revokeAgentCerts(ctx, q, agentID, reason, now); err != nil {
		return err
	}
	after := before
	after.RevokedAt, after.RevokeReason = &now, reason
	return WriteAudit(ctx, q, AuditFor(ctx, orgID, "agent.revoked", "agent", agentID, before, after))
}

// RevokeAgent is the DB method form.
func (db *DB) RevokeAgent(ctx context.Context, orgID, agentID, reason string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error { return RevokeAgent(ctx, tx, orgID, agentID, reason) })
}

// RevokeDeviceAgents revokes every agent linked to a device.
func (db *DB) RevokeDeviceAgents(ctx context.Context, orgID, deviceID, reason string) ([]string, error) {
	var ids []string
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		ids, err = QueryStrings(ctx, tx, `SELECT id FROM agents WHERE org_id = $1 AND device_id = $2 AND revoked_at IS NULL`, orgID, deviceID)
		if err != nil {
			return fmt.Errorf("list agents of device %s: %w", deviceID, err)
		}
		for _, id := range ids {
			if err := RevokeAgent(ctx, tx, orgID, id, reason); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}

// GetAgentByID reads an agent without an org (the enrollment endpoint knows only the id).
func (db *DB) GetAgentByID(ctx context.Context, id string) (Agent, error) {
	a, err := scanAgent(db.SQL.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return a, err
}
