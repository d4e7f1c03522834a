package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// MDMDEP is an org's Apple Business Manager (ADE/DEP) connection.
type MDMDEP struct {
	OrgID             string     `json:"org_id"`
	Name              string     `json:"dep_name"`
	TokenPKICertPEM   string     `json:"tokenpki_cert_pem,omitempty"`
	TokenPKIKeySealed string     `json:"-"`
	TokensSealed      string     `json:"-"`
	TokenExpiresAt    *time.Time `json:"token_expires_at,omitempty"`
	BaseURL           string     `json:"base_url,omitempty"`
	Cursor            string     `json:"-"`
	ProfileUUID       string     `json:"profile_uuid,omitempty"`
	ProfileModAt      *time.Time `json:"profile_mod_at,omitempty"`
	LastSyncAt        *time.Time `json:"last_sync_at,omitempty"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

const mdmDEPCols = `org_id, dep_name, tokenpki_cert_pem, tokenpki_key_sealed, tokens_sealed, token_expires_at, base_url, cursor,
	profile_uuid, profile_mod_at, last_sync_at, updated_at`

func scanMDMDEP(s interface{ Scan(...any) error }) (MDMDEP, error) {
	var d MDMDEP
	var key, toks sql.NullString
	var exp, mod, sync sql.NullTime
	err := s.Scan(&d.OrgID, &d.Name, &d.TokenPKICertPEM, &key, &toks, &exp, &d.BaseURL, &d.Cursor, &d.ProfileUUID, &mod, &sync, &d.UpdatedAt)
	d.TokenPKIKeySealed, d.TokensSealed = key.String, toks.String
	d.TokenExpiresAt, d.ProfileModAt, d.LastSyncAt = nullTimePtr(exp), nullTimePtr(mod), nullTimePtr(sync)
	return d, err
}

// MDMGetDEP reads an org's ABM connection.
func (db *DB) MDMGetDEP(ctx context.Context, orgID string) (MDMDEP, error) {
	d, err := scanMDMDEP(db.SQL.QueryRowContext(ctx, `SELECT `+mdmDEPCols+` FROM mdm_dep WHERE org_id = $1`, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("apple business manager connection: %w", ErrNotFound)
	}
	return d, err
}

// MDMGetDEPByName reads an ABM connection by its DEP name (nanodep's key).
func (db *DB) MDMGetDEPByName(ctx context.Context, name string) (MDMDEP, error) {
	d, err := scanMDMDEP(db.SQL.QueryRowContext(ctx, `SELECT `+mdmDEPCols+` FROM mdm_dep WHERE dep_name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("dep name %s: %w", name, ErrNotFound)
	}
	return d, err
}

// MDMPutDEPKeypair starts (or restarts) an org's ABM connection with a new token keypair.
func (db *DB) MDMPutDEPKeypair(ctx context.Context, orgID, name, certPEM, keySealed string) error {
	now := domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO mdm_dep (org_id, dep_name, tokenpki_cert_pem, tokenpki_key_sealed, updated_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET tokenpki_cert_pem = excluded.tokenpki_cert_pem,
			tokenpki_key_sealed = excluded.tokenpki_key_sealed, updated_at = excluded.updated_at`, orgID, name, certPEM, keySealed, now)
		if err != nil {
			return fmt.Errorf("store abm keypair: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "mdm.ade.keypair_created", "org", orgID, nil, nil))
	})
}

// MDMPutDEPTokens stores the decrypted (then sealed) ABM server token.
func (db *DB) MDMPutDEPTokens(ctx context.Context, orgID, tokensSealed string, expiresAt time.Time) error {
	now := domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE mdm_dep SET tokens_sealed = $2, token_expires_at = $3, cursor = '', updated_at = $4 WHERE org_id = $1`,
			orgID, tokensSealed, expiresAt.UTC(), now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("create the ABM keypair first: %w", ErrNotFound)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "mdm.ade.token_uploaded", "org", orgID, nil, map[string]any{"expires_at": expiresAt}))
	})
}

// MDMSetDEPBaseURL points an ABM connection at another API host (tests, proxies).
func (db *DB) MDMSetDEPBaseURL(ctx context.Context, orgID, baseURL string) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_dep SET base_url = $2, updated_at = $3 WHERE org_id = $1`, orgID, baseURL, domain.Now())
	return err
}

// MDMSetDEPCursor persists the device sync cursor.
func (db *DB) MDMSetDEPCursor(ctx context.Context, name, cursor string) error {
	now := domain.Now()
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_dep SET cursor = $2, last_sync_at = $3, updated_at = $3 WHERE dep_name = $1`, name, cursor, now)
	return err
}

// MDMSetDEPProfile records the defined ADE profile.
func (db *DB) MDMSetDEPProfile(ctx context.Context, orgID, profileUUID string) error {
	now := domain.Now()
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_dep SET profile_uuid = $2, profile_mod_at = $3, updated_at = $3 WHERE org_id = $1`, orgID, profileUUID, now)
	return err
}

// MDMDEPDevice is a Mac in the org's ABM account.
type MDMDEPDevice struct {
	OrgID         string     `json:"org_id"`
	SerialNumber  string     `json:"serial_number"`
	Model         string     `json:"model,omitempty"`
	Description   string     `json:"description,omitempty"`
	OpType        string     `json:"op_type,omitempty"`
	ProfileStatus string     `json:"profile_status,omitempty"`
	ProfileUUID   string     `json:"profile_uuid,omitempty"`
	EmployeeID    string     `json:"employee_id,omitempty"`
	AssignedAt    *time.Time `json:"assigned_at,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// MDMUpsertDEPDevice records a device seen in an ABM sync (employee and assignment are
// kept).
func (db *DB) MDMUpsertDEPDevice(ctx context.Context, d MDMDEPDevice) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO mdm_dep_devices (org_id, serial_number, model, description, op_type, profile_status, profile_uuid, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, serial_number) DO UPDATE SET model = excluded.model,
		description = excluded.description, op_type = excluded.op_type, profile_status = excluded.profile_status,
		profile_uuid = CASE WHEN excluded.profile_uuid = '' THEN mdm_dep_devices.profile_uuid ELSE excluded.profile_uuid END,
		updated_at = excluded.updated_at`,
		d.OrgID, d.SerialNumber, d.Model, d.Description, d.OpType, d.ProfileStatus, d.ProfileUUID, domain.Now())
	return err
}

// MDMAssignDEPDevice records that serial got the ADE profile for an employee.
func (db *DB) MDMAssignDEPDevice(ctx context.Context, orgID, serial, employeeID, profileUUID string) error {
	now := domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO mdm_dep_devices (org_id, serial_number, employee_id, profile_uuid, profile_status, assigned_at, updated_at)
			VALUES ($1, $2, $3, $4, 'assigned', $5, $5) ON CONFLICT (org_id, serial_number) DO UPDATE SET employee_id = excluded.employee_id,
			profile_uuid = excluded.profile_uuid, profile_status = 'assigned', assigned_at = excluded.assigned_at, updated_at = excluded.updated_at`,
			orgID, serial, employeeID, profileUUID, now)
		if err != nil {
			return err
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "mdm.ade.profile_assigned", "employee", employeeID, nil,
			map[string]any{"serial_number": serial, "profile_uuid": profileUUID}))
	})
}

// MDMGetDEPDevice reads one ABM device of an org.
func (db *DB) MDMGetDEPDevice(ctx context.Context, orgID, serial string) (MDMDEPDevice, error) {
	var d MDMDEPDevice
	var at sql.NullTime
	err := db.SQL.QueryRowContext(ctx, `SELECT org_id, serial_number, model, description, op_type, profile_status, profile_uuid, employee_id,
		assigned_at, updated_at FROM mdm_dep_devices WHERE org_id = $1 AND serial_number = $2`, orgID, serial).
		Scan(&d.OrgID, &d.SerialNumber, &d.Model, &d.Description, &d.OpType, &d.ProfileStatus, &d.ProfileUUID, &d.EmployeeID, &at, &d.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("abm device %s: %w", serial, ErrNotFound)
	}
	d.AssignedAt = nullTimePtr(at)
	return d, err
}

// MDMFindDEPDeviceOrg returns the org whose ABM account holds serial.
func (db *DB) MDMFindDEPDeviceOrg(ctx context.Context, serial string) (string, error) {
	var org string
	err := db.SQL.QueryRowContext(ctx, `SELECT org_id FROM mdm_dep_devices WHERE serial_number = $1 ORDER BY updated_at DESC LIMIT 1`, serial).Scan(&org)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("serial %s is in no ABM account: %w", serial, ErrNotFound)
	}
	return org, err
}

// MDMListDEPOrgs lists the orgs with an uploaded ABM server token.
func (db *DB) MDMListDEPOrgs(ctx context.Context) ([]string, error) {
	return queryAll(ctx, db.SQL, "list dep orgs", scanString, `SELECT org_id FROM mdm_dep WHERE tokens_sealed IS NOT NULL ORDER BY org_id`)
}
