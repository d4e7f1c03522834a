package store

// SQL of the Apple MDM capability (controlplane/mdm/apple); tables from migration 00301.

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

// MDMLoadIdentity reads the MDM CA and server identity (keys sealed by the caller).
func (db *DB) MDMLoadIdentity(ctx context.Context) (certsPEM, keysSealed string, err error) {
	err = db.SQL.QueryRowContext(ctx, `SELECT certs_pem, keys_sealed FROM mdm_identity WHERE id = 'default'`).Scan(&certsPEM, &keysSealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("mdm identity: %w", ErrNotFound)
	}
	return certsPEM, keysSealed, err
}

// MDMSaveIdentity stores the identity once; a concurrent first start loses with ErrConflict
// and must load the winner's.
func (db *DB) MDMSaveIdentity(ctx context.Context, certsPEM, keysSealed string) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO mdm_identity (id, certs_pem, keys_sealed, created_at) VALUES ('default', $1, $2, $3)`,
		certsPEM, keysSealed, domain.Now())
	if IsUniqueViolation(err) {
		return fmt.Errorf("mdm identity: %w", ErrConflict)
	}
	return err
}

// MDMEnrollLink is a per-employee (or anonymous) enrollment URL; only its hash is stored.
type MDMEnrollLink struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	EmployeeID string     `json:"employee_id,omitempty"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// MDMCreateEnrollLink inserts a link and audits it.
func (db *DB) MDMCreateEnrollLink(ctx context.Context, l *MDMEnrollLink, tokenHash string) error {
	if l.ID == "" {
		l.ID = domain.NewID()
	}
	l.CreatedAt = domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO mdm_enroll_links (id, org_id, employee_id, token_hash, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, l.ID, l.OrgID, nullString(l.EmployeeID), tokenHash, l.CreatedBy, l.CreatedAt, l.ExpiresAt.UTC())
		if err != nil {
			return fmt.Errorf("create enrollment link: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, l.OrgID, "mdm.enroll_link.created", "employee", l.EmployeeID, nil, l))
	})
}

// MDMGetEnrollLinkByHash finds a live link by token hash.
func (db *DB) MDMGetEnrollLinkByHash(ctx context.Context, tokenHash string, now time.Time) (MDMEnrollLink, error) {
	var l MDMEnrollLink
	var emp sql.NullString
	err := db.SQL.QueryRowContext(ctx, `SELECT id, org_id, employee_id, created_by, created_at, expires_at FROM mdm_enroll_links
		WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2`, tokenHash, now.UTC()).
		Scan(&l.ID, &l.OrgID, &emp, &l.CreatedBy, &l.CreatedAt, &l.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("enrollment link: %w", ErrNotFound)
	}
	l.EmployeeID = emp.String
	return l, err
}

// MDMCreateChallenge stores a one-time SCEP challenge (hash only).
func (db *DB) MDMCreateChallenge(ctx context.Context, challengeHash, orgID, linkID, employeeID string, expiresAt time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO mdm_scep_challenges (challenge_hash, org_id, link_id, employee_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, challengeHash, orgID, linkID, employeeID, domain.Now(), expiresAt.UTC())
	if err != nil {
		return fmt.Errorf("create scep challenge: %w", err)
	}
	return nil
}

// MDMConsumeChallenge marks a challenge used, once. A used, expired or unknown challenge is
// ErrNotFound.
func (db *DB) MDMConsumeChallenge(ctx context.Context, challengeHash string, now time.Time) (orgID, employeeID string, err error) {
	err = db.SQL.QueryRowContext(ctx, `UPDATE mdm_scep_challenges SET used_at = $2
		WHERE challenge_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING org_id, employee_id`,
		challengeHash, now.UTC()).Scan(&orgID, &employeeID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("scep challenge unknown, used or expired: %w", ErrNotFound)
	}
	return orgID, employeeID, err
}

// MDMPutSCEPCert records an issued device identity certificate.
func (db *DB) MDMPutSCEPCert(ctx context.Context, serial, orgID, employeeID, subject string, notAfter time.Time, der []byte) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO mdm_scep_certs (serial, org_id, employee_id, subject, not_after, cert_der, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, serial, orgID, employeeID, subject, notAfter.UTC(), der, domain.Now())
	if err != nil {
		return fmt.Errorf("record scep cert: %w", err)
	}
	return nil
}

// MDMGetSCEPCert returns the org and employee an identity certificate was issued for.
func (db *DB) MDMGetSCEPCert(ctx context.Context, serial string) (orgID, employeeID string, err error) {
	err = db.SQL.QueryRowContext(ctx, `SELECT org_id, employee_id FROM mdm_scep_certs WHERE serial = $1`, serial).Scan(&orgID, &employeeID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("scep cert %s: %w", serial, ErrNotFound)
	}
	return orgID, employeeID, err
}

// MDMPushCert is an org's APNs push certificate.
type MDMPushCert struct {
	OrgID     string    `json:"org_id"`
	Topic     string    `json:"topic"`
	NotAfter  time.Time `json:"not_after"`
	CertPEM   string    `json:"-"`
	KeySealed string    `json:"-"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MDMPutPushCert stores (or renews) an org's push certificate and audits it.
func (db *DB) MDMPutPushCert(ctx context.Context, c MDMPushCert) error {
	c.UpdatedAt = domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO mdm_push_certs (org_id, topic, not_after, cert_pem, key_sealed, updated_by, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (org_id) DO UPDATE SET topic = excluded.topic, not_after = excluded.not_after, cert_pem = excluded.cert_pem,
			key_sealed = excluded.key_sealed, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
			c.OrgID, c.Topic, c.NotAfter.UTC(), c.CertPEM, c.KeySealed, c.UpdatedBy, c.UpdatedAt)
		if IsUniqueViolation(err) {
			return fmt.Errorf("push topic %s belongs to another organization: %w", c.Topic, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("store push cert: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, c.OrgID, "mdm.push_cert.uploaded", "org", c.OrgID, nil,
			map[string]any{"topic": c.Topic, "not_after": c.NotAfter}))
	})
}

// MDMGetPushCert reads an org's push certificate.
func (db *DB) MDMGetPushCert(ctx context.Context, orgID string) (MDMPushCert, error) {
	var c MDMPushCert
	err := db.SQL.QueryRowContext(ctx, `SELECT org_id, topic, not_after, cert_pem, key_sealed, updated_by, updated_at
		FROM mdm_push_certs WHERE org_id = $1`, orgID).Scan(&c.OrgID, &c.Topic, &c.NotAfter, &c.CertPEM, &c.KeySealed, &c.UpdatedBy, &c.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("push certificate: %w", ErrNotFound)
	}
	return c, err
}

// MDMListPushCerts lists every org's push certificate (without keys), soonest expiry first.
func (db *DB) MDMListPushCerts(ctx context.Context) ([]MDMPushCert, error) {
	return queryAll(ctx, db.SQL, "list push certs", func(s rowScanner) (MDMPushCert, error) {
		var c MDMPushCert
		err := s.Scan(&c.OrgID, &c.Topic, &c.NotAfter, &c.UpdatedBy, &c.UpdatedAt)
		return c, err
	}, `SELECT org_id, topic, not_after, updated_by, updated_at FROM mdm_push_certs ORDER BY not_after`)
}

// MDMEnrollment is one Mac's MDM channel, joined to the device record by serial.
type MDMEnrollment struct {
	UDID          string     `json:"udid"`
	OrgID         string     `json:"org_id"`
	DeviceID      string     `json:"device_id,omitempty"`
	EmployeeID    string     `json:"employee_id,omitempty"`
	SerialNumber  string     `json:"serial_number"`
	Model         string     `json:"model,omitempty"`
	OSVersion     string     `json:"os_version,omitempty"`
	DeviceName    string     `json:"device_name,omitempty"`
	Topic         string     `json:"topic"`
	Status        string     `json:"status"` // authenticated, enrolled, checked_out
	Posture       string     `json:"posture"`
	Drift         string     `json:"drift"`
	PushFailures  int        `json:"push_failures"`
	LastPushError string     `json:"last_push_error,omitempty"`
	NextPushAt    *time.Time `json:"next_push_at,omitempty"`
	LastSeenAt    *time.Time `json:"last_seen_at,omitempty"`
	EnrolledAt    *time.Time `json:"enrolled_at,omitempty"`
	// IdentityNotAfter is the expiry of the Mac's SCEP identity; RenewalAt is when
	// Lanyard last re-sent the enrollment profile to renew it.
	IdentityNotAfter *time.Time `json:"identity_not_after,omitempty"`
	RenewalAt        *time.Time `json:"renewal_at,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

const mdmEnrollmentCols = `udid, org_id, device_id, employee_id, serial_number, model, os_version, device_name, topic, status,
	posture, drift, push_failures, last_push_error, next_push_at, last_seen_at, enrolled_at, identity_not_after, renewal_at, created_at, updated_at`

func scanMDMEnrollment(s interface{ Scan(...any) error }) (MDMEnrollment, error) {
	var e MDMEnrollment
	var next, seen, enr, idExp, ren sql.NullTime
	err := s.Scan(&e.UDID, &e.OrgID, &e.DeviceID, &e.EmployeeID, &e.SerialNumber, &e.Model, &e.OSVersion, &e.DeviceName,
		&e.Topic, &e.Status, &e.Posture, &e.Drift, &e.PushFailures, &e.LastPushError, &next, &seen, &enr, &idExp, &ren, &e.CreatedAt, &e.UpdatedAt)
	e.NextPushAt, e.LastSeenAt, e.EnrolledAt = nullTimePtr(next), nullTimePtr(seen), nullTimePtr(enr)
	e.IdentityNotAfter, e.RenewalAt = nullTimePtr(idExp), nullTimePtr(ren)
	return e, err
}

func nullTimePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// MDMGetEnrollment reads an enrollment by UDID.
func (db *DB) MDMGetEnrollment(ctx context.Context, udid string) (MDMEnrollment, error) {
	e, err := scanMDMEnrollment(db.SQL.QueryRowContext(ctx, `SELECT `+mdmEnrollmentCols+` FROM mdm_enrollments WHERE udid = $1`, udid))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("mdm enrollment %s: %w", udid, ErrNotFound)
	}
	return e, err
}

// MDMGetEnrollmentByDevice reads the (latest) enrollment of a device of an org.
func (db *DB) MDMGetEnrollmentByDevice(ctx context.Context, orgID, deviceID string) (MDMEnrollment, error) {
	e, err := scanMDMEnrollment(db.SQL.QueryRowContext(ctx, `SELECT `+mdmEnrollmentCols+` FROM mdm_enrollments
		WHERE org_id = $1 AND device_id = $2 AND status <> 'checked_out' ORDER BY updated_at DESC LIMIT 1`, orgID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("device %s has no MDM enrollment: %w", deviceID, ErrNotFound)
	}
	return e, err
}

// MDMListEnrollments lists an org's enrollments.
func (db *DB) MDMListEnrollments(ctx context.Context, orgID string, p Page) ([]MDMEnrollment, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	tail, err := w.pageBy("udid", p)
	if err != nil {
		return nil, "", err
	}
	return queryPage(ctx, db.SQL, "list mdm enrollments", scanMDMEnrollment, func(e MDMEnrollment) string { return e.UDID }, p,
		`SELECT `+mdmEnrollmentCols+` FROM mdm_enrollments `+tail, w.args...)
}

// MDMAuthenticate records an Authenticate: the enrollment row is (re)created in state
// "authenticated" and joined to the org's device with that serial, creating an
// unassigned device when none exists; employeeID (from the enrollment link) assigns an
// unassigned device to that employee.
func (db *DB) MDMAuthenticate(ctx context.Context, e MDMEnrollment) (MDMEnrollment, error) {
	now := domain.Now()
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		dev, err := joinDeviceBySerial(ctx, tx, e.OrgID, e.UDID, e.SerialNumber, e.Model, e.EmployeeID, now)
		if err != nil {
			return err
		}
		e.DeviceID = dev.ID
		if e.EmployeeID == "" {
			e.EmployeeID = dev.AssignedEmployeeID
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO mdm_enrollments (udid, org_id, device_id, employee_id, serial_number, model, os_version,
			device_name, topic, status, last_seen_at, identity_not_after, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'authenticated', $10, $11, $10, $10)
			ON CONFLICT (udid) DO UPDATE SET org_id = excluded.org_id, device_id = excluded.device_id, employee_id = excluded.employee_id,
			serial_number = excluded.serial_number, model = excluded.model, os_version = excluded.os_version,
			device_name = excluded.device_name, topic = excluded.topic, status = 'authenticated', push_failures = 0,
			last_push_error = '', next_push_at = NULL, last_seen_at = excluded.last_seen_at,
			identity_not_after = excluded.identity_not_after, renewal_at = NULL, updated_at = excluded.updated_at`,
			e.UDID, e.OrgID, e.DeviceID, e.EmployeeID, e.SerialNumber, e.Model, e.OSVersion, e.DeviceName, e.Topic, now, timeArg(e.IdentityNotAfter))
		if err != nil {
			return fmt.Errorf("record mdm authenticate: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, e.OrgID, "mdm.authenticated", "device", e.DeviceID, nil,
			map[string]any{"udid": e.UDID, "serial_number": e.SerialNumber}))
	})
	if err != nil {
		return e, err
	}
	return db.MDMGetEnrollment(ctx, e.UDID)
}

// joinDeviceBySerial finds the org's device with this serial (one device, two channels:
// the agent report and MDM land on the same row) or creates an Apple macOS device,
// flagged for review like a device an agent first reports (FlagDeviceForReview): a Mac
// the org never recorded enrolled itself (through an enrollment link, or ADE).
func joinDeviceBySerial(ctx context.Context, q Querier, orgID, udid, serial, model, employeeID string, now time.Time) (domain.Device, error) {
	if serial == "" {
		return domain.Device{}, errors.New("mdm enrollment without serial number")
	}
	devs, err := FindDevicesBySerial(ctx, q, orgID, serial)
	if err != nil {
		return domain.Device{}, err
	}
	var dev domain.Device
	if len(devs) > 0 {
		dev = devs[0]
		for _, d := range devs {
			if strings.EqualFold(d.Vendor, "apple") {
				dev = d
			}
		}
	} else {
		dev = domain.Device{OrgID: orgID, SerialNumber: serial, Vendor: "apple", Model: model,
			Platform: domain.PlatformMacOS, EquipmentType: "laptop", Notes: "created from an MDM enrollment; needs review"}
		if err := CreateDevice(ctx, q, &dev); err != nil {
			return dev, err
		}
		if err := FlagDeviceForReview(ctx, q, orgID, dev.ID, UnknownSerialReason("MDM enrollment "+udid), now); err != nil {
			return dev, err
		}
	}
	if employeeID != "" && dev.AssignedEmployeeID == "" && domain.Assignable(dev.State) {
		if dev, err = AssignDevice(ctx, q, orgID, dev.ID, employeeID); err != nil {
			return dev, fmt.Errorf("assign enrolled mac to employee: %w", err)
		}
	}
	return dev, nil
}

// MDMSetEnrolled marks an enrollment active after its first TokenUpdate and writes the
// device.enrolled event; it reports whether this was the first activation.
func (db *DB) MDMSetEnrolled(ctx context.Context, udid string) (MDMEnrollment, bool, error) {
	now := domain.Now()
	var first bool
	var e MDMEnrollment
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = scanMDMEnrollment(tx.QueryRowContext(ctx, `SELECT `+mdmEnrollmentCols+` FROM mdm_enrollments WHERE udid = $1`, udid))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mdm enrollment %s: %w", udid, ErrNotFound)
		}
		if err != nil {
			return err
		}
		first = e.Status != "enrolled"
		if !first {
			_, err = tx.ExecContext(ctx, `UPDATE mdm_enrollments SET last_seen_at = $2, push_failures = 0, last_push_error = '', next_push_at = NULL WHERE udid = $1`, udid, now)
			return err
		}
		if _, err = tx.ExecContext(ctx, `UPDATE mdm_enrollments SET status = 'enrolled', enrolled_at = $2, last_seen_at = $2,
			push_failures = 0, last_push_error = '', next_push_at = NULL, updated_at = $2 WHERE udid = $1`, udid, now); err != nil {
			return err
		}
		e.Status, e.EnrolledAt = "enrolled", &now
		if err := WriteAudit(ctx, tx, AuditFor(ctx, e.OrgID, "mdm.enrolled", "device", e.DeviceID, nil,
			map[string]any{"udid": udid})); err != nil {
			return err
		}
		return WriteEvent(ctx, tx, domain.Event{OrgID: e.OrgID, Type: domain.EventDeviceEnrolled, SubjectType: "device",
			SubjectID: e.DeviceID, Payload: mustJSON(map[string]any{"channel": "mdm", "udid": udid, "employee_id": e.EmployeeID})})
	})
	return e, first, err
}

// MDMCheckOut marks an enrollment removed.
func (db *DB) MDMCheckOut(ctx context.Context, udid string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		var orgID, deviceID string
		err := tx.QueryRowContext(ctx, `UPDATE mdm_enrollments SET status = 'checked_out', updated_at = $2 WHERE udid = $1
			RETURNING org_id, device_id`, udid, domain.Now()).Scan(&orgID, &deviceID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "mdm.checked_out", "device", deviceID, nil, map[string]any{"udid": udid}))
	})
}

// MDMInventory is what DeviceInformation reports.
type MDMInventory struct {
	SerialNumber string
	Model        string
	OSVersion    string
	DeviceName   string
}

// MDMUpdateInventory stores DeviceInformation on the enrollment and the device model on
// the shared device record.
func (db *DB) MDMUpdateInventory(ctx context.Context, udid string, inv MDMInventory) error {
	now := domain.Now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		var orgID, deviceID string
		err := tx.QueryRowContext(ctx, `UPDATE mdm_enrollments SET model = $2, os_version = $3, device_name = $4, last_seen_at = $5, updated_at = $5
			WHERE udid = $1 RETURNING org_id, device_id`, udid, inv.Model, inv.OSVersion, inv.DeviceName, now).Scan(&orgID, &deviceID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mdm enrollment %s: %w", udid, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if deviceID == "" || inv.Model == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE devices SET model = $3, platform = 'macos', version = version + 1, updated_at = $4
			WHERE org_id = $1 AND id = $2 AND model <> $3`, orgID, deviceID, inv.Model, now)
		return err
	})
}

// MDMSetPosture stores the SecurityInfo posture (JSON) and audits a change.
func (db *DB) MDMSetPosture(ctx context.Context, udid, postureJSON string) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_enrollments SET posture = $2, updated_at = $3 WHERE udid = $1`, udid, postureJSON, domain.Now())
	return err
}

// MDMSetDrift stores the last drift report (JSON list); when it changed, it is audited.
func (db *DB) MDMSetDrift(ctx context.Context, udid, driftJSON string) (changed bool, err error) {
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		var orgID, deviceID, old string
		if err := tx.QueryRowContext(ctx, `SELECT org_id, device_id, drift FROM mdm_enrollments WHERE udid = $1`, udid).Scan(&orgID, &deviceID, &old); err != nil {
			return err
		}
		if old == driftJSON {
			return nil
		}
		changed = true
		if _, err := tx.ExecContext(ctx, `UPDATE mdm_enrollments SET drift = $2, updated_at = $3 WHERE udid = $1`, udid, driftJSON, domain.Now()); err != nil {
			return err
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "mdm.policy_drift", "device", deviceID, rawJSON(old), rawJSON(driftJSON)))
	})
	return changed, err
}

func rawJSON(s string) any {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// MDMTouch records that the Mac talked to us, which resets the push backoff; the next
// re-push (for commands still open, e.g. NotNow) is due at nextPush.
func (db *DB) MDMTouch(ctx context.Context, udid string, now, nextPush time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_enrollments SET last_seen_at = $2, push_failures = 0, next_push_at = $3, last_push_error = ''
		WHERE udid = $1`, udid, now.UTC(), nextPush.UTC())
	return err
}

// MDMRecordPush records a push (or a failed one) to a Mac: push_failures counts pushes
// the Mac has not answered yet (MDMTouch resets it) and drives the re-push backoff.
func (db *DB) MDMRecordPush(ctx context.Context, udid string, pushErr string, nextPushAt *time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_enrollments SET push_failures = push_failures + 1, last_push_error = $2, next_push_at = $3
		WHERE udid = $1`, udid, pushErr, timeArg(nextPushAt))
	return err
}

func timeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

// MDMEnrollmentsToRepush lists enrolled Macs with open (queued or sent) commands whose
// next push is due.
func (db *DB) MDMEnrollmentsToRepush(ctx context.Context, now time.Time, limit int) ([]MDMEnrollment, error) {
	return queryAll(ctx, db.SQL, "enrollments to repush", scanMDMEnrollment, `SELECT `+mdmEnrollmentCols+` FROM mdm_enrollments e
		WHERE e.status = 'enrolled' AND (e.next_push_at IS NULL OR e.next_push_at <= $1)
		AND EXISTS (SELECT 1 FROM mdm_commands c WHERE c.udid = e.udid AND c.state IN ('queued', 'sent'))
		ORDER BY e.udid LIMIT $2`, now.UTC(), limit)
}

// MDMGetPushCertByTopic reads the push certificate for a topic (nanomdm looks certs up by
// topic).
func (db *DB) MDMGetPushCertByTopic(ctx context.Context, topic string) (MDMPushCert, error) {
	var c MDMPushCert
	err := db.SQL.QueryRowContext(ctx, `SELECT org_id, topic, not_after, cert_pem, key_sealed, updated_by, updated_at
		FROM mdm_push_certs WHERE topic = $1`, topic).Scan(&c.OrgID, &c.Topic, &c.NotAfter, &c.CertPEM, &c.KeySealed, &c.UpdatedBy, &c.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("push certificate for topic %s: %w", topic, ErrNotFound)
	}
	return c, err
}

// MDMCountEnrollments counts an org's live enrollments.
func (db *DB) MDMCountEnrollments(ctx context.Context, orgID string) (int, error) {
	var n int
	err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM mdm_enrollments WHERE org_id = $1 AND status <> 'checked_out'`, orgID).Scan(&n)
	return n, err
}

// MDMEnrollmentsToRenew lists enrolled Macs whose identity expires before `before` and
// that were not sent a renewal in the last day.
func (db *DB) MDMEnrollmentsToRenew(ctx context.Context, now, before time.Time, limit int) ([]MDMEnrollment, error) {
	return queryAll(ctx, db.SQL, "enrollments to renew", scanMDMEnrollment, `SELECT `+mdmEnrollmentCols+` FROM mdm_enrollments
		WHERE status = 'enrolled' AND identity_not_after IS NOT NULL AND identity_not_after < $1
		AND (renewal_at IS NULL OR renewal_at < $2) ORDER BY identity_not_after LIMIT $3`, before.UTC(), now.Add(-24*time.Hour).UTC(), limit)
}

// MDMMarkRenewal records that the enrollment profile was re-sent to renew the identity.
func (db *DB) MDMMarkRenewal(ctx context.Context, udid string, at time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `UPDATE mdm_enrollments SET renewal_at = $2 WHERE udid = $1`, udid, at.UTC())
	return err
}
