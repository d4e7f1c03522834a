package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// InventoryReport is an agent's inventory report in store terms: each section is the JSON
// of one part of the inventory (protojson of the proto message), keyed by section name.
type InventoryReport struct {
	Full     bool
	Sections map[string]json.RawMessage
	Hash     string
	// Identity fields pulled from the sections by the caller.
	Serial       string
	Vendor       string
	Model        string
	HardwareUUID string
	Hostname     string
	Platform     domain.Platform
	OSName       string
	OSVersion    string
	OSBuild      string
	At           time.Time
	// Mode is the test knobs the report announced (recorded on the agent).
	Mode AgentMode
}

// InventoryOutcome is what tracking concluded from a report.
type InventoryOutcome struct {
	DeviceID       string
	Created        bool
	Linked         bool
	NeedsReview    bool
	SerialConflict bool
	NeedFull       bool
	Changed        []string
}

// DeviceTracking is what the agent channel knows about a device; the API shows it beside
// the device record.
type DeviceTracking struct {
	DeviceID           string          `json:"device_id"`
	AgentID            string          `json:"agent_id,omitempty"`
	LastSeenAt         *time.Time      `json:"last_seen_at,omitempty"`
	Online             bool            `json:"online"`
	NeedsReview        bool            `json:"needs_review"`
	ReviewReason       string          `json:"review_reason,omitempty"`
	SerialConflict     bool            `json:"serial_conflict"`
	ConflictAgentIDs   []string        `json:"conflict_agent_ids,omitempty"`
	Hostname           string          `json:"hostname,omitempty"`
	OSName             string          `json:"os_name,omitempty"`
	OSVersion          string          `json:"os_version,omitempty"`
	OSBuild            string          `json:"os_build,omitempty"`
	Posture            json.RawMessage `json:"posture,omitempty"`
	Inventory          json.RawMessage `json:"inventory,omitempty"`
	InventoryHash      string          `json:"inventory_hash,omitempty"`
	InventoryUpdatedAt *time.Time      `json:"inventory_updated_at,omitempty"`
	// AgentMode is the test knobs the agent last announced; LockedByCommandID the lock
	// it holds (re-asserted at every start until an unlock).
	AgentMode         AgentMode `json:"agent_mode"`
	LockedByCommandID string    `json:"locked_by_command_id,omitempty"`
	// IdentitySource says what the device's serial_number holds: "serial" (the firmware
	// serial) or "hardware_uuid" (a machine without a usable firmware serial).
	IdentitySource string `json:"identity_source"`
}

// InventoryChange is one entry of a device's inventory history.
type InventoryChange struct {
	ID       string                   `json:"id"`
	DeviceID string                   `json:"device_id"`
	AgentID  string                   `json:"agent_id,omitempty"`
	At       time.Time                `json:"at"`
	Changes  map[string]SectionChange `json:"changes"`
}

// SectionChange is the before and after of one inventory section.
type SectionChange struct {
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// OnlineWindow is how recent last_seen must be for a device to count as online.
const OnlineWindow = 3 * time.Minute

type trackingRow struct {
	exists    bool
	agentID   string
	inventory map[string]json.RawMessage
	hash      string
	conflicts []string
}

func loadTracking(ctx context.Context, q Querier, orgID, deviceID string) (trackingRow, error) {
	var r trackingRow
	var inv, conflicts string
	err := q.QueryRowContext(ctx, `SELECT agent_id, inventory, inventory_hash, conflict_agent_ids FROM device_tracking WHERE org_id = $1 AND device_id = $2`,
		orgID, deviceID).Scan(&r.agentID, &inv, &r.hash, &conflicts)
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("load tracking of %s: %w", deviceID, err)
	}
	r.exists = true
	if inv != "" {
		if r.inventory, err = decodeSections([]byte(inv)); err != nil {
			return r, fmt.Errorf("decode inventory of %s: %w", deviceID, err)
		}
	}
	if conflicts != "" {
		r.conflicts = strings.Split(conflicts, ",")
	}
	return r, nil
}

func ensureTracking(ctx context.Context, q Querier, orgID, deviceID string, now time.Time) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM device_tracking WHERE device_id = $1`, deviceID).Scan(&n); err != nil {
		return fmt.Errorf("check tracking of %s: %w", deviceID, err)
	}
	if n > 0 {
		return nil
	}
	_, err := q.ExecContext(ctx, `INSERT INTO device_tracking (device_id, org_id, updated_at) VALUES ($1, $2, $3)`, deviceID, orgID, now)
	if err != nil && !IsUniqueViolation(err) {
		return fmt.Errorf("create tracking of %s: %w", deviceID, err)
	}
	return nil
}

// ApplyInventory records an agent's report: it links the agent to the device with the
// reported serial (creating an unassigned device flagged for review when none exists),
// flags a serial reported by two different machines as a conflict instead of taking the
// device over, moves an assigned device to in_use, and keeps the inventory and its history.
func (db *DB) ApplyInventory(ctx context.Context, orgID, agentID string, r InventoryReport) (InventoryOutcome, error) {
	out, err := db.ApplyInventoryBatch(ctx, []InventoryItem{{OrgID: orgID, AgentID: agentID, Report: r}})
	if err != nil {
		return InventoryOutcome{}, err
	}
	return out[0], nil
}

// InventoryItem is one agent's report in a batch.
type InventoryItem struct {
	OrgID, AgentID string
	Report         InventoryReport
}

// ApplyInventoryBatch applies several reports in one transaction (one commit for many
// reports is what makes thousands of reports per second possible). Any failing report fails
// the whole batch; callers retry its reports one by one. On Postgres the commit does not
// wait for the WAL flush: a report lost in a crash is re-sent by the agent, whose inventory
// hash then differs from the stored one.
func (db *DB) ApplyInventoryBatch(ctx context.Context, items []InventoryItem) ([]InventoryOutcome, error) {
	outs := make([]InventoryOutcome, len(items))
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		todo := make([]int, len(items))
		for i := range todo {
			todo[i] = i
		}
		if db.Dialect == Postgres {
			if err := hotPathTx(ctx, tx); err != nil {
				return err
			}
			var err error
			if todo, err = db.applyInventoryBulkPG(ctx, tx, items, outs); err != nil {
				return err
			}
		}
		for _, i := range todo {
			it := items[i]
			actx := domain.WithActor(ctx, domain.Actor{ID: "agent:" + it.AgentID})
			o, err := db.applyInventoryTx(actx, tx, it.OrgID, it.AgentID, it.Report)
			if err != nil {
				return err
			}
			outs[i] = o
		}
		return nil
	})
	return outs, err
}

func (db *DB) applyInventoryTx(ctx context.Context, tx *sql.Tx, orgID, agentID string, r InventoryReport) (InventoryOutcome, error) {
	out, err := db.applyInventoryReport(ctx, tx, orgID, agentID, r)
	if err != nil {
		return out, err
	}
	return out, recordReportedMode(ctx, db.hot(tx), orgID, agentID, out.DeviceID, r.Mode, out.Linked)
}

func (db *DB) applyInventoryReport(ctx context.Context, tx *sql.Tx, orgID, agentID string, r InventoryReport) (InventoryOutcome, error) {
	var out InventoryOutcome
	if r.At.IsZero() {
		r.At = domain.Now()
	}
	if done, err := db.applyInventoryFast(ctx, db.hot(tx), orgID, agentID, r, &out); done || err != nil {
		return out, err
	}
	ag, err := GetAgent(ctx, tx, orgID, agentID)
	if err != nil {
		return out, err
	}
	if ag.RevokedAt != nil {
		return out, fmt.Errorf("agent %s is revoked: %w", agentID, ErrConflict)
	}
	serial, source := reportIdentity(r, ag.SerialNumber, ag.HardwareUUID)
	if serial == "" {
		// Neither a usable serial nor a hardware UUID: nothing can be linked; the agent
		// record still tracks it.
		_, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen_at = $1, hostname = $2, inventory_hash = $3, updated_at = $1 WHERE id = $4`,
			r.At, r.Hostname, r.Hash, agentID)
		if err != nil {
			return out, fmt.Errorf("update agent %s: %w", agentID, err)
		}
		out.NeedsReview = true
		return out, nil
	}
	deviceID := ""
	if ag.DeviceID != "" {
		if deviceID, serial, err = db.followLinkedDevice(ctx, tx, orgID, ag, serial, source, r, &out); err != nil {
			return out, err
		}
	}
	if deviceID == "" {
		deviceID, serial, err = db.linkBySerial(ctx, tx, orgID, ag, serial, source, r, &out)
		if err != nil {
			return out, err
		}
		if deviceID == "" { // conflict: not linked
			_, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen_at = $1, serial_number = $2, serial_conflict = $3, updated_at = $1 WHERE id = $4`,
				r.At, serial, true, agentID)
			if err != nil {
				return out, fmt.Errorf("update agent %s: %w", agentID, err)
			}
			return out, nil
		}
		if err := db.promoteToInUse(ctx, tx, orgID, deviceID); err != nil {
			return out, err
		}
	}
	out.DeviceID = deviceID
	return out, applyInventorySections(ctx, db.Dialect, tx, orgID, deviceID, agentID, serial, r, &out, nil)
}

// applyInventoryFast handles the common report with one read: an agent already linked to
// a device in use with the same serial. It returns false (and writes nothing) for anything
// else, which takes the full path.
func (db *DB) applyInventoryFast(ctx context.Context, tx Querier, orgID, agentID string, r InventoryReport, out *InventoryOutcome) (bool, error) {
	var revoked *time.Time
	var agentSerial, deviceID, devSerial, state, trAgent, inv, conflicts, mode, trSource string
	var emp *string
	err := tx.QueryRowContext(ctx, `SELECT a.revoked_at, a.serial_number, COALESCE(a.device_id, ''), COALESCE(d.serial_number, ''),
		COALESCE(d.state, ''), d.assigned_employee_id, COALESCE(t.agent_id, ''), COALESCE(t.inventory, ''), COALESCE(t.conflict_agent_ids, ''), a.agent_mode,
		COALESCE(t.identity_source, '')
		FROM agents a LEFT JOIN devices d ON d.id = a.device_id LEFT JOIN device_tracking t ON t.device_id = a.device_id
		WHERE a.org_id = $1 AND a.id = $2`, orgID, agentID).Scan(&revoked, &agentSerial, &deviceID, &devSerial, &state, &emp, &trAgent, &inv,
		&conflicts, &mode, &trSource)
	if err != nil || revoked != nil || deviceID == "" || trAgent != agentID || devSerial == "" || mode != r.Mode.String() {
		return false, nil // the full path reports errors and handles every other case (a changed mode too)
	}
	if s, src := reportIdentity(r, agentSerial, ""); s != devSerial || (src != "" && src != trSource) {
		return false, nil
	}
	if domain.DeviceState(state) == domain.StateAssigned && emp != nil {
		return false, nil // needs the state transition
	}
	tr := &trackingRow{exists: true, agentID: trAgent}
	if inv != "" {
		var err error
		if tr.inventory, err = decodeSections([]byte(inv)); err != nil {
			return false, nil
		}
	}
	out.DeviceID = deviceID
	return true, applyInventorySections(ctx, db.Dialect, tx, orgID, deviceID, agentID, devSerial, r, out, tr)
}

// reportIdentity is what a report identifies its machine by (domain.IdentifyDevice):
// its serial when usable, else its hardware UUID (the report's, or the one the agent
// enrolled with). A delta without the hardware section carries neither and keeps the
// agent's identity (source "": unchanged).
func reportIdentity(r InventoryReport, agentSerial, agentUUID string) (key, source string) {
	if !r.Full && strings.TrimSpace(r.Serial) == "" && strings.TrimSpace(r.HardwareUUID) == "" {
		s, _ := domain.NormalizeSerial(agentSerial)
		return s, ""
	}
	return domain.IdentifyDevice(r.Serial, firstNonEmpty(r.HardwareUUID, agentUUID))
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// identitySource reads what a device's serial_number holds ("serial" for a device agent
// tracking has never seen).
func identitySource(ctx context.Context, q Querier, deviceID string) (string, error) {
	var src string
	err := q.QueryRowContext(ctx, `SELECT identity_source FROM device_tracking WHERE device_id = $1`, deviceID).Scan(&src)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.IdentitySerial, nil
	}
	if err != nil {
		return "", fmt.Errorf("identity of %s: %w", deviceID, err)
	}
	return src, nil
}

// setIdentitySource records what a device's serial_number holds, with its audit row.
func setIdentitySource(ctx context.Context, q Querier, orgID, deviceID, from, to string, at time.Time) error {
	if err := ensureTracking(ctx, q, orgID, deviceID, at); err != nil {
		return err
	}
	if _, err := q.ExecContext(ctx, `UPDATE device_tracking SET identity_source = $1, updated_at = $2 WHERE device_id = $3`, to, at, deviceID); err != nil {
		return fmt.Errorf("set identity of %s: %w", deviceID, err)
	}
	return WriteAudit(ctx, q, AuditFor(ctx, orgID, "device.identity_changed", "device", deviceID,
		map[string]string{"identity_source": from}, map[string]string{"identity_source": to}))
}

// adoptFirmwareSerial handles a machine known by its hardware UUID whose firmware now
// reports a serial (fixed, or the agent is newer): no second device is created. When no
// other device of the org has that serial, the device takes it (so commands, which
// target the serial the agent now reports, reach it) and is flagged for review; when one
// does, the device keeps its UUID and is flagged with both records for the admin to
// merge. It returns the identity the device is known by afterwards.
func adoptFirmwareSerial(ctx context.Context, q Querier, d domain.Device, serial string, at time.Time) (string, error) {
	uuid := d.SerialNumber
	others, err := FindDevicesBySerial(ctx, q, d.OrgID, serial)
	if err != nil {
		return uuid, err
	}
	if len(others) > 0 {
		reason := fmt.Sprintf("firmware now reports serial %s for this device (identified by hardware UUID %s), but device %s already has that serial: check which record is this machine and retire the other",
			serial, uuid, others[0].ID)
		return uuid, FlagDeviceForReview(ctx, q, d.OrgID, d.ID, reason, at)
	}
	after := d
	after.SerialNumber, after.Version, after.UpdatedAt = serial, d.Version+1, domain.Now()
	res, err := q.ExecContext(ctx, `UPDATE devices SET serial_number = $1, version = $2, updated_at = $3 WHERE org_id = $4 AND id = $5 AND version = $6`,
		serial, after.Version, after.UpdatedAt, d.OrgID, d.ID, d.Version)
	if err != nil {
		return uuid, fmt.Errorf("set serial of %s: %w", d.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return uuid, fmt.Errorf("device %s changed concurrently: %w", d.ID, ErrConflict)
	}
	if err := WriteAudit(ctx, q, AuditFor(ctx, d.OrgID, "device.serial_adopted", "device", d.ID, d, after)); err != nil {
		return uuid, err
	}
	if err := setIdentitySource(ctx, q, d.OrgID, d.ID, domain.IdentityHardwareUUID, domain.IdentitySerial, at); err != nil {
		return uuid, err
	}
	reason := fmt.Sprintf("firmware now reports serial %s for this device, identified until now by hardware UUID %s: its serial number is now %s; check that the label on the machine matches",
		serial, uuid, serial)
	return serial, FlagDeviceForReview(ctx, q, d.OrgID, d.ID, reason, at)
}

// FlagDeviceForReview sets a device's needs_review flag with a reason an admin can act
// on, in q's transaction, with its audit row (once per reason: flagging again with the
// same reason writes nothing). Agent tracking and MDM enrollment flag through it, so a
// device first seen on either channel is flagged the same way.
func FlagDeviceForReview(ctx context.Context, q Querier, orgID, deviceID, reason string, at time.Time) error {
	if err := ensureTracking(ctx, q, orgID, deviceID, at); err != nil {
		return err
	}
	var flagged bool
	var cur string
	if err := q.QueryRowContext(ctx, `SELECT needs_review, review_reason FROM device_tracking WHERE device_id = $1`, deviceID).Scan(&flagged, &cur); err != nil {
		return fmt.Errorf("read review flag of %s: %w", deviceID, err)
	}
	if flagged && cur == reason {
		return nil
	}
	if _, err := q.ExecContext(ctx, `UPDATE device_tracking SET needs_review = $1, review_reason = $2, updated_at = $3 WHERE device_id = $4`,
		true, reason, at, deviceID); err != nil {
		return fmt.Errorf("flag device %s: %w", deviceID, err)
	}
	return WriteAudit(ctx, q, AuditFor(ctx, orgID, "device.review_flagged", "device", deviceID, nil, map[string]string{"reason": reason}))
}

// ResolveDeviceReview records that an admin reviewed a flagged device: needs_review, the
// reason and any serial-conflict flag are cleared, with an audit row carrying the reason
// that was resolved and the admin's note. A device that is not flagged is left as it is
// (no audit). A condition that still holds (a second agent still reporting the serial, an
// agent still not reporting its firmware serial) flags the device again on its next report.
func (db *DB) ResolveDeviceReview(ctx context.Context, orgID, deviceID, note string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := GetDevice(ctx, tx, orgID, deviceID); err != nil {
			return err
		}
		var flagged, conflict bool
		var reason, agents string
		err := tx.QueryRowContext(ctx, `SELECT needs_review, serial_conflict, review_reason, conflict_agent_ids FROM device_tracking WHERE org_id = $1 AND device_id = $2`,
			orgID, deviceID).Scan(&flagged, &conflict, &reason, &agents)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !flagged && !conflict) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read review flag of %s: %w", deviceID, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE device_tracking SET needs_review = $1, serial_conflict = $1, review_reason = '', conflict_agent_ids = '',
			updated_at = $2 WHERE device_id = $3`, false, domain.Now(), deviceID); err != nil {
			return fmt.Errorf("resolve review of %s: %w", deviceID, err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device.review_resolved", "device", deviceID,
			map[string]any{"needs_review": flagged, "review_reason": reason, "serial_conflict": conflict, "conflict_agent_ids": agents},
			map[string]any{"needs_review": false, "note": note}))
	})
}

// UnknownSerialReason is the review reason of a device created because a channel
// reported a serial the org did not know (via: "agent <id>", "MDM enrollment <udid>").
func UnknownSerialReason(via string) string { return "unknown serial reported by " + via }

// followLinkedDevice keeps an agent on the device it is linked to when the report still
// identifies that device; it returns "" (and the key unchanged) when it does not, and
// the caller links by the reported identity. A machine whose identity source changed
// (firmware that now reports a serial for a device known by its hardware UUID, or one
// that stopped reporting its serial) stays on its device and is flagged for review
// instead of silently becoming a second device; the returned key is then the device's.
func (db *DB) followLinkedDevice(ctx context.Context, tx *sql.Tx, orgID string, ag Agent, key, source string, r InventoryReport, out *InventoryOutcome) (string, string, error) {
	d, err := GetDevice(ctx, tx, orgID, ag.DeviceID)
	if errors.Is(err, ErrNotFound) {
		return "", key, nil
	}
	if err != nil {
		return "", key, err
	}
	devSource, err := identitySource(ctx, tx, d.ID)
	if err != nil {
		return "", key, err
	}
	uuid := domain.CleanHardwareUUID(firstNonEmpty(r.HardwareUUID, ag.HardwareUUID))
	switch {
	case d.SerialNumber == key:
		if source != "" && source != devSource {
			if err := setIdentitySource(ctx, tx, orgID, d.ID, devSource, source, r.At); err != nil {
				return "", key, err
			}
		}
	case devSource == domain.IdentityHardwareUUID && source == domain.IdentitySerial && uuid != "" && d.SerialNumber == uuid:
		if key, err = adoptFirmwareSerial(ctx, tx, d, key, r.At); err != nil {
			return "", key, err
		}
		out.NeedsReview = true
		return d.ID, key, db.promoteToInUse(ctx, tx, orgID, d.ID)
	case devSource == domain.IdentitySerial && source == domain.IdentityHardwareUUID:
		// Its serial is the asset's record (procurement, retrieval): kept, and flagged.
		reason := fmt.Sprintf("agent reports no firmware serial (hardware UUID %s) for this device, known by serial %s: check the firmware (board replaced or reset?), or whether the agent moved to another machine; commands to it fail until the agent reports that serial again",
			key, d.SerialNumber)
		if err := FlagDeviceForReview(ctx, tx, orgID, d.ID, reason, r.At); err != nil {
			return "", key, err
		}
		out.NeedsReview = true
	default:
		return "", key, nil
	}
	return d.ID, d.SerialNumber, db.promoteToInUse(ctx, tx, orgID, d.ID)
}

// linkBySerial finds or creates the device for key (a serial, or a hardware UUID when
// source says so) and links the agent to it; it returns the device and the key the agent
// is now known by, or "" when the key is held by another live machine (a conflict).
func (db *DB) linkBySerial(ctx context.Context, tx *sql.Tx, orgID string, ag Agent, key, source string, r InventoryReport, out *InventoryOutcome) (string, string, error) {
	now := r.At
	devs, err := FindDevicesBySerial(ctx, tx, orgID, key)
	if err != nil {
		return "", key, err
	}
	if len(devs) == 0 && source == domain.IdentitySerial {
		// The machine may be known by its hardware UUID already (enrolled while its
		// firmware had no serial, and enrolled again since): that is its device.
		if uuid := domain.CleanHardwareUUID(firstNonEmpty(r.HardwareUUID, ag.HardwareUUID)); uuid != "" {
			byUUID, err := FindDevicesBySerial(ctx, tx, orgID, uuid)
			if err != nil {
				return "", key, err
			}
			for _, d := range byUUID {
				src, err := identitySource(ctx, tx, d.ID)
				if err != nil {
					return "", key, err
				}
				if src == domain.IdentityHardwareUUID {
					if key, err = adoptFirmwareSerial(ctx, tx, d, key, now); err != nil {
						return "", key, err
					}
					if d, err = GetDevice(ctx, tx, orgID, d.ID); err != nil {
						return "", key, err
					}
					out.NeedsReview = true
					devs = []domain.Device{d}
					break
				}
			}
		}
	}
	var d domain.Device
	if len(devs) == 0 {
		vendor := domain.NormalizeVendor(r.Vendor)
		if vendor == "" {
			vendor = "unknown"
		}
		d = domain.Device{OrgID: orgID, SerialNumber: key, Vendor: vendor, Model: r.Model, Platform: r.Platform, EquipmentType: "laptop",
			Notes: "created from an agent report; needs review"}
		if err := CreateDevice(ctx, tx, &d); err != nil {
			return "", key, err
		}
		reason := UnknownSerialReason("agent " + ag.ID)
		if source == domain.IdentityHardwareUUID {
			reason = domain.ReviewNoFirmwareSerial
			if err := ensureTracking(ctx, tx, orgID, d.ID, now); err != nil {
				return "", key, err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE device_tracking SET identity_source = $1 WHERE device_id = $2`, source, d.ID); err != nil {
				return "", key, fmt.Errorf("set identity of %s: %w", d.ID, err)
			}
		}
		if err := FlagDeviceForReview(ctx, tx, orgID, d.ID, reason, now); err != nil {
			return "", key, err
		}
		out.Created, out.NeedsReview = true, true
	} else {
		d = devs[0]
		if err := ensureTracking(ctx, tx, orgID, d.ID, now); err != nil {
			return "", key, err
		}
		tr, err := loadTracking(ctx, tx, orgID, d.ID)
		if err != nil {
			return "", key, err
		}
		if tr.agentID != "" && tr.agentID != ag.ID {
			holder, err := GetAgent(ctx, tx, orgID, tr.agentID)
			hw := domain.CleanHardwareUUID(ag.HardwareUUID)
			sameMachine := err == nil && hw != "" && domain.CleanHardwareUUID(holder.HardwareUUID) == hw
			if err == nil && holder.RevokedAt == nil && !sameMachine {
				conflicts := tr.conflicts
				if !slices.Contains(conflicts, ag.ID) {
					conflicts = append(conflicts, ag.ID)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE device_tracking SET serial_conflict = $1, needs_review = $1, review_reason = $2, conflict_agent_ids = $3, updated_at = $4 WHERE device_id = $5`,
					true, "serial "+key+" reported by two agents", strings.Join(conflicts, ","), now, d.ID); err != nil {
					return "", key, fmt.Errorf("flag conflict on %s: %w", d.ID, err)
				}
				if !slices.Contains(tr.conflicts, ag.ID) {
					if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device.serial_conflict", "device", d.ID, nil,
						map[string]string{"serial_number": key, "holder_agent_id": tr.agentID, "agent_id": ag.ID})); err != nil {
						return "", key, err
					}
				}
				out.SerialConflict, out.NeedsReview = true, true
				return "", key, nil
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET device_id = $1, serial_number = $2, serial_conflict = $3, updated_at = $4 WHERE id = $5`,
		d.ID, key, false, now, ag.ID); err != nil {
		return "", key, fmt.Errorf("link agent %s: %w", ag.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE device_tracking SET agent_id = $1, updated_at = $2 WHERE device_id = $3`, ag.ID, now, d.ID); err != nil {
		return "", key, fmt.Errorf("link device %s: %w", d.ID, err)
	}
	out.Linked = true
	if err := WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device.agent_linked", "device", d.ID, nil,
		map[string]string{"agent_id": ag.ID, "serial_number": key})); err != nil {
		return "", key, err
	}
	return d.ID, key, nil
}

// promoteToInUse moves an assigned device to in_use when its agent reports: the employee
// has the laptop in hand.
func (db *DB) promoteToInUse(ctx context.Context, tx *sql.Tx, orgID, deviceID string) error {
	d, err := GetDevice(ctx, tx, orgID, deviceID)
	if err != nil {
		return err
	}
	if d.State != domain.StateAssigned || d.AssignedEmployeeID == "" {
		return nil
	}
	_, err = TransitionDevice(ctx, tx, orgID, deviceID, domain.StateInUse)
	return err
}

func applyInventorySections(ctx context.Context, dialect Dialect, tx Querier, orgID, deviceID, agentID, serial string, r InventoryReport, out *InventoryOutcome, pre *trackingRow) error {
	var tr trackingRow
	if pre != nil {
		tr = *pre
	} else {
		var err error
		if tr, err = loadTracking(ctx, tx, orgID, deviceID); err != nil {
			return err
		}
	}
	w, err := computeReport(tr, orgID, deviceID, agentID, serial, r, out)
	if err != nil {
		return err
	}
	if err := writeReport(ctx, dialect, tx, w); err != nil {
		return err
	}
	return writeNoncompliant(ctx, tx, []reportWrite{w})
}

// reportWrite is everything one report writes.
type reportWrite struct {
	agentID, hostname, osName, osVersion, osBuild, posture, inv, hash, deviceID, serial, histID, orgID, hist string
	// The posture checks as the dashboard and the list filters read them (postureChecks).
	disk, firewall, screenLock string
	at                         time.Time
	// failed names the checks that just turned off, when this report moved the device
	// from compliant (or never reported) to non-compliant: the device.noncompliant event.
	failed []string
}

// failedChecks are the posture checks that are off: the one compliance rule (the
// dashboard counts and the list filters read the same "off" columns).
func failedChecks(disk, firewall, screenLock string) []string {
	var out []string
	for _, c := range []struct{ name, v string }{{"disk encryption", disk}, {"firewall", firewall}, {"screen lock", screenLock}} {
		if c.v == "off" {
			out = append(out, c.name+" off")
		}
	}
	return out
}

// writeNoncompliant records the transitions of ws in the report's transaction, so a
// prompt goes out once per transition and never for a report that was not stored.
func writeNoncompliant(ctx context.Context, tx Querier, ws []reportWrite) error {
	for _, w := range ws {
		if len(w.failed) == 0 {
			continue
		}
		b, err := json.Marshal(domain.DeviceNoncompliantPayload{DeviceID: w.deviceID, Serial: w.serial, Failed: strings.Join(w.failed, ", "), Checks: w.failed})
		if err != nil {
			return err
		}
		if err := WriteEvent(ctx, tx, domain.Event{OrgID: w.orgID, Type: domain.EventDeviceNoncompliant, SubjectType: "device",
			SubjectID: w.deviceID, Payload: b, At: w.at}); err != nil {
			return err
		}
	}
	return nil
}

// postureChecks reads the three compliance checks of a stored posture report as "on",
// "off", "unknown", or "" when the report leaves one out; they are written beside the JSON
// so that reads aggregate columns instead of parsing every device's report. It reads the
// JSON the way migration 00650 and the SQL it replaces did: a missing or null field is "",
// any value other than the two known states (another string, a number) is "unknown".
func postureChecks(raw []byte) (disk, firewall, screenLock string) {
	if d, f, sl, ok := postureChecksFast(raw); ok {
		return d, f, sl
	}
	return postureChecksJSON(raw)
}

// postureChecksFast reads the checks of a valid posture object without decoding it into a
// map (that decode was a tenth of a delta report's allocations, on every report). It
// gives up (ok false) on anything postureChecksJSON must decide: invalid JSON, a
// non-object, escaped keys or escaped string values. The last of duplicate keys wins, as
// in the map the slow path decodes.
func postureChecksFast(b []byte) (disk, firewall, screenLock string, ok bool) {
	if !json.Valid(b) {
		return "", "", "", false
	}
	simple := true
	ok = walkObject(b, func(key, val []byte) {
		var dst *string
		switch string(key) {
		case "disk_encryption":
			dst = &disk
		case "firewall":
			dst = &firewall
		case "screen_lock":
			dst = &screenLock
		default:
			return
		}
		w, plain := postureValueWord(val)
		simple = simple && plain
		*dst = w
	})
	if !ok || !simple {
		return "", "", "", false
	}
	return disk, firewall, screenLock, true
}

// postureValueWord is postureChecksJSON's word for one valid JSON value: null is "", a
// string its posture word, anything else "unknown". plain is false for a string with
// escapes, which the slow path decodes.
func postureValueWord(val []byte) (word string, plain bool) {
	switch {
	case string(val) == "null":
		return "", true
	case len(val) >= 2 && val[0] == '"':
		inner := val[1 : len(val)-1]
		if bytes.IndexByte(inner, '\\') >= 0 {
			return "", false
		}
		return postureWord(string(inner)), true
	}
	return "unknown", true
}

// postureChecksJSON is the reference reading of postureChecks through encoding/json.
func postureChecksJSON(raw []byte) (disk, firewall, screenLock string) {
	var p map[string]any
	if json.Unmarshal(raw, &p) != nil {
		return "", "", ""
	}
	word := func(field string) string {
		switch v := p[field].(type) {
		case nil:
			return ""
		case string:
			return postureWord(v)
		}
		return "unknown"
	}
	return word("disk_encryption"), word("firewall"), word("screen_lock")
}

// computeReport merges a report into the stored inventory and works out what changed.
func computeReport(tr trackingRow, orgID, deviceID, agentID, serial string, r InventoryReport, out *InventoryOutcome) (reportWrite, error) {
	if !r.Full && len(tr.inventory) == 0 {
		out.NeedFull = true
	}
	merged := make(map[string]json.RawMessage, len(tr.inventory)+len(r.Sections))
	if !r.Full {
		for k, v := range tr.inventory {
			merged[k] = v
		}
	}
	for k, v := range r.Sections {
		merged[k] = v
	}
	// Every section of the merged inventory and every stored one (a full report can drop
	// sections): each is compared once, without building the union of the keys.
	var changes map[string]SectionChange
	note := func(k string, before, after json.RawMessage) {
		if !bytes.Equal(before, after) && !bytes.Equal(compactJSON(before), compactJSON(after)) {
			if changes == nil {
				changes = make(map[string]SectionChange, len(r.Sections))
			}
			changes[k] = SectionChange{Before: before, After: after}
		}
	}
	for k, after := range merged {
		note(k, tr.inventory[k], after)
	}
	for k, before := range tr.inventory {
		if _, ok := merged[k]; !ok {
			note(k, before, nil)
		}
	}
	if len(changes) > 0 {
		out.Changed = make([]string, 0, len(changes))
	}
	for k := range changes {
		out.Changed = append(out.Changed, k)
	}
	sort.Strings(out.Changed)
	inv, err := encodeSections(merged)
	if err != nil {
		return reportWrite{}, fmt.Errorf("encode inventory: %w", err)
	}
	posture := string(merged["posture"])
	if posture == "" {
		posture = "{}"
	}
	hist := ""
	if len(changes) > 0 {
		b, err := json.Marshal(changes)
		if err != nil {
			return reportWrite{}, fmt.Errorf("encode changes: %w", err)
		}
		hist = string(b)
	}
	// An absent posture reads as "{}" would: no check reported.
	disk, fw, sl := postureChecks(merged["posture"])
	var failed []string
	// Only a report that changed the posture can be a transition (the common report
	// changes nothing and costs nothing more).
	if _, changed := changes["posture"]; changed {
		now := failedChecks(disk, fw, sl)
		if len(now) > 0 && len(failedChecks(postureChecks(tr.inventory["posture"]))) == 0 {
			failed = now
		}
	}
	return reportWrite{failed: failed, agentID: agentID, hostname: r.Hostname, osName: r.OSName, osVersion: r.OSVersion, osBuild: r.OSBuild, posture: posture,
		disk: disk, firewall: fw, screenLock: sl, inv: inv, hash: r.Hash, deviceID: deviceID, serial: serial, histID: domain.NewID(), orgID: orgID, hist: hist, at: r.At.UTC()}, nil
}

func writeReport(ctx context.Context, dialect Dialect, tx Querier, w reportWrite) error {
	if dialect == Postgres {
		return writeReportsPG(ctx, tx, []reportWrite{w})
	}
	// A delta leaves out unchanged sections: keep the identity columns it does not carry.
	if _, err := tx.ExecContext(ctx, `UPDATE device_tracking SET agent_id = $1, last_seen_at = $2, hostname = COALESCE(NULLIF($3, ''), hostname),
		os_name = COALESCE(NULLIF($4, ''), os_name), os_version = COALESCE(NULLIF($5, ''), os_version), os_build = COALESCE(NULLIF($6, ''), os_build),
		posture = $7, posture_reported = ($7 <> '{}'), disk_encryption = $11, firewall = $12, screen_lock = $13,
		inventory = $8, inventory_hash = $9, inventory_updated_at = $2, updated_at = $2 WHERE device_id = $10`,
		w.agentID, w.at, w.hostname, w.osName, w.osVersion, w.osBuild, w.posture, w.inv, w.hash, w.deviceID, w.disk, w.firewall, w.screenLock); err != nil {
		return fmt.Errorf("update tracking of %s: %w", w.deviceID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen_at = $1, hostname = COALESCE(NULLIF($2, ''), hostname), serial_number = $3, inventory_hash = $4, updated_at = $1 WHERE id = $5`,
		w.at, w.hostname, w.serial, w.hash, w.agentID); err != nil {
		return fmt.Errorf("update agent %s: %w", w.agentID, err)
	}
	if w.hist == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO device_inventory_history (id, org_id, device_id, agent_id, changes, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		w.histID, w.orgID, w.deviceID, w.agentID, w.hist, w.at); err != nil {
		return fmt.Errorf("record inventory history: %w", err)
	}
	return nil
}

// writeReportsPG writes many reports (of distinct agents and devices) in one statement:
// the per-statement overhead, not the rows, is what limits reports per second.
func writeReportsPG(ctx context.Context, tx Querier, ws []reportWrite) error {
	cols := make([][]string, 16)
	ats := make([]time.Time, len(ws))
	for i, w := range ws {
		for c, v := range []string{w.agentID, w.hostname, w.osName, w.osVersion, w.osBuild, w.posture, w.inv, w.hash, w.deviceID, w.serial, w.histID, w.orgID, w.hist,
			w.disk, w.firewall, w.screenLock} {
			cols[c] = append(cols[c], v)
		}
		ats[i] = w.at
	}
	args := []any{ats}
	for _, c := range cols {
		args = append(args, c)
	}
	_, err := tx.ExecContext(ctx, `WITH v AS (
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[])
			AS v(at, agent_id, hostname, os_name, os_version, os_build, posture, inventory, hash, device_id, serial, hist_id, org_id, hist,
				disk_encryption, firewall, screen_lock)),
	a AS (
		UPDATE agents SET last_seen_at = v.at, hostname = COALESCE(NULLIF(v.hostname, ''), agents.hostname), serial_number = v.serial,
			inventory_hash = v.hash, updated_at = v.at FROM v WHERE agents.id = v.agent_id),
	h AS (
		INSERT INTO device_inventory_history (id, org_id, device_id, agent_id, changes, at)
		SELECT hist_id, org_id, device_id, agent_id, hist, at FROM v WHERE hist <> '')
	UPDATE device_tracking t SET agent_id = v.agent_id, last_seen_at = v.at, hostname = COALESCE(NULLIF(v.hostname, ''), t.hostname),
		os_name = COALESCE(NULLIF(v.os_name, ''), t.os_name), os_version = COALESCE(NULLIF(v.os_version, ''), t.os_version),
		os_build = COALESCE(NULLIF(v.os_build, ''), t.os_build), posture = v.posture, posture_reported = (v.posture <> '{}'),
		disk_encryption = v.disk_encryption, firewall = v.firewall, screen_lock = v.screen_lock, inventory = v.inventory, inventory_hash = v.hash,
		inventory_updated_at = v.at, updated_at = v.at FROM v WHERE t.device_id = v.device_id`, args...)
	if err != nil {
		return fmt.Errorf("record %d reports: %w", len(ws), err)
	}
	return nil
}

// applyInventoryBulkPG handles the batch's fast-path reports (agent linked to a device in
// use with the same serial, one report per agent) with one read and one write; it returns
// the indexes of the other reports, which take the full path afterwards.
func (db *DB) applyInventoryBulkPG(ctx context.Context, tx *sql.Tx, items []InventoryItem, outs []InventoryOutcome) ([]int, error) {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.AgentID)
	}
	rows, err := tx.QueryContext(ctx, `SELECT a.id, a.org_id, a.revoked_at IS NOT NULL, a.serial_number, COALESCE(a.device_id, ''), COALESCE(d.serial_number, ''),
		COALESCE(d.state, ''), d.assigned_employee_id IS NOT NULL, COALESCE(t.agent_id, ''), COALESCE(t.inventory, ''), a.agent_mode,
		COALESCE(t.identity_source, '')
		FROM agents a LEFT JOIN devices d ON d.id = a.device_id LEFT JOIN device_tracking t ON t.device_id = a.device_id
		WHERE a.id = ANY($1) ORDER BY a.id FOR UPDATE OF a`, ids)
	if err != nil {
		return nil, fmt.Errorf("load agents: %w", err)
	}
	type row struct {
		org, agentSerial, deviceID, devSerial, state, trAgent, inv, mode, trSource string
		revoked, assigned                                                          bool
	}
	found := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.org, &r.revoked, &r.agentSerial, &r.deviceID, &r.devSerial, &r.state, &r.assigned, &r.trAgent, &r.inv,
			&r.mode, &r.trSource); err != nil {
			rows.Close()
			return nil, err
		}
		found[id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var rest []int
	var ws []reportWrite
	seenAgent, seenDevice := map[string]bool{}, map[string]bool{}
	for i, it := range items {
		r, ok := found[it.AgentID]
		fast := ok && r.org == it.OrgID && !r.revoked && r.deviceID != "" && r.trAgent == it.AgentID && r.devSerial != "" &&
			!seenAgent[it.AgentID] && !seenDevice[r.deviceID] && !(domain.DeviceState(r.state) == domain.StateAssigned && r.assigned) &&
			r.mode == it.Report.Mode.String()
		rep := it.Report
		if fast {
			s, src := reportIdentity(rep, r.agentSerial, "")
			fast = s == r.devSerial && (src == "" || src == r.trSource)
		}
		var tr trackingRow
		if fast {
			tr = trackingRow{exists: true, agentID: r.trAgent}
			if r.inv != "" {
				var err error
				if tr.inventory, err = decodeSections([]byte(r.inv)); err != nil {
					fast = false
				}
			}
		}
		if !fast {
			rest = append(rest, i)
			seenAgent[it.AgentID] = true
			continue
		}
		seenAgent[it.AgentID], seenDevice[r.deviceID] = true, true
		if rep.At.IsZero() {
			rep.At = domain.Now()
		}
		outs[i] = InventoryOutcome{DeviceID: r.deviceID}
		w, err := computeReport(tr, it.OrgID, r.deviceID, it.AgentID, r.devSerial, rep, &outs[i])
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	if len(ws) > 0 {
		if err := writeReportsPG(ctx, tx, ws); err != nil {
			return nil, err
		}
		if err := writeNoncompliant(ctx, tx, ws); err != nil {
			return nil, err
		}
	}
	return rest, nil
}

// encodeSections writes the section map as one JSON object with sorted keys. Sections are
// already valid JSON (protojson output or stored JSON), so they are copied as they are;
// json.Marshal would re-validate and re-compact every one on each report. It builds the
// string the statement binds directly (a []byte converted afterwards is a second copy of
// the whole inventory on every report).
func encodeSections(m map[string]json.RawMessage) (string, error) {
	keys := make([]string, 0, len(m))
	n := 2
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 4
	}
	sort.Strings(keys)
	var buf strings.Builder
	buf.Grow(n)
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		if plainKey(k) {
			buf.WriteByte('"')
			buf.WriteString(k)
			buf.WriteByte('"')
		} else {
			kb, err := json.Marshal(k)
			if err != nil {
				return "", err
			}
			buf.Write(kb)
		}
		buf.WriteByte(':')
		v := m[k]
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.String(), nil
}

// plainKey reports whether k needs no escaping in JSON (section names always do not).
func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func compactJSON(b json.RawMessage) []byte {
	if len(b) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// TouchAgents records that agents were seen at `at` (heartbeats, stream opens and closes)
// and marks them online or offline, in one statement on Postgres so a replica can batch
// thousands of streams. Only the agents table is written: the tracking view takes the
// later of the agent's and the last report's time.
func (db *DB) TouchAgents(ctx context.Context, at time.Time, online, offline []string) error {
	if len(online) == 0 && len(offline) == 0 {
		return nil
	}
	at = at.UTC()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if db.Dialect == Postgres {
			if err := hotPathTx(ctx, tx); err != nil {
				return err
			}
			// All rows in one statement, locked in id order as inventory batches lock them,
			// so the two never deadlock. Empty (not nil) arrays: NULL would make online NULL.
			if _, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen_at = $1, online = (id = ANY($2))
				WHERE id IN (SELECT id FROM agents WHERE id = ANY($2) OR id = ANY($3) ORDER BY id FOR UPDATE)`,
				at, append([]string{}, online...), append([]string{}, offline...)); err != nil {
				return fmt.Errorf("touch %d agents: %w", len(online)+len(offline), err)
			}
			return nil
		}
		for _, set := range []struct {
			ids    []string
			online bool
		}{{offline, false}, {online, true}} {
			for ids := set.ids; len(ids) > 0; {
				chunk := ids[:min(len(ids), 500)]
				ids = ids[len(chunk):]
				in, args := inList(3, chunk)
				if _, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen_at = $1, online = $2 WHERE id IN (`+in+`)`, append([]any{at, set.online}, args...)...); err != nil {
					return fmt.Errorf("touch %d agents: %w", len(chunk), err)
				}
			}
		}
		return nil
	})
}

// hotPathTx tunes a Postgres transaction on the agent hot path (inventory batches,
// heartbeats): losing the last few hundred milliseconds of these writes in a crash costs
// a report the agent resends, so the commit does not wait for the WAL flush; and every
// statement is planned for its actual arguments, because a generic plan cached while the
// tables were small (or before the first ANALYZE) scans whole tables at 10,000 agents.
func hotPathTx(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `SELECT set_config('synchronous_commit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)`); err != nil {
		return fmt.Errorf("tune hot-path transaction: %w", err)
	}
	return nil
}

// GetDeviceTracking returns the tracking view of a device (zero value with the device id
// when no agent ever reported for it). Another org's device is ErrNotFound.
func (db *DB) GetDeviceTracking(ctx context.Context, orgID, deviceID string) (DeviceTracking, error) {
	t := DeviceTracking{DeviceID: deviceID, IdentitySource: domain.IdentitySerial}
	if _, err := GetDevice(ctx, db.SQL, orgID, deviceID); err != nil {
		return t, err
	}
	var posture, inv, conflicts, mode string
	var agentOnline *bool
	var agentSeen *time.Time
	err := db.SQL.QueryRowContext(ctx, `SELECT t.agent_id, t.last_seen_at, t.needs_review, t.review_reason, t.serial_conflict, t.conflict_agent_ids,
		t.hostname, t.os_name, t.os_version, t.os_build, t.posture, t.inventory, t.inventory_hash, t.inventory_updated_at, a.online, a.last_seen_at,
		COALESCE(a.agent_mode, ''), COALESCE(a.locked_by_command_id, ''), t.identity_source
		FROM device_tracking t LEFT JOIN agents a ON a.id = t.agent_id WHERE t.org_id = $1 AND t.device_id = $2`, orgID, deviceID).Scan(
		&t.AgentID, &t.LastSeenAt, &t.NeedsReview, &t.ReviewReason, &t.SerialConflict, &conflicts, &t.Hostname, &t.OSName, &t.OSVersion,
		&t.OSBuild, &posture, &inv, &t.InventoryHash, &t.InventoryUpdatedAt, &agentOnline, &agentSeen, &mode, &t.LockedByCommandID, &t.IdentitySource)
	t.AgentMode = ParseAgentMode(mode)
	if errors.Is(err, sql.ErrNoRows) {
		t.IdentitySource = domain.IdentitySerial
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("tracking of %s: %w", deviceID, err)
	}
	if agentSeen != nil && (t.LastSeenAt == nil || agentSeen.After(*t.LastSeenAt)) {
		t.LastSeenAt = agentSeen
	}
	t.Online = agentOnline != nil && *agentOnline && t.LastSeenAt != nil && domain.Now().Sub(*t.LastSeenAt) < OnlineWindow
	if conflicts != "" {
		t.ConflictAgentIDs = strings.Split(conflicts, ",")
	}
	if posture != "" && posture != "{}" {
		t.Posture = json.RawMessage(posture)
	}
	if inv != "" && inv != "{}" {
		t.Inventory = json.RawMessage(inv)
	}
	return t, nil
}

// ListInventoryHistory returns one page of a device's inventory changes, oldest first.
func (db *DB) ListInventoryHistory(ctx context.Context, orgID, deviceID string, p Page) ([]InventoryChange, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.add("device_id = ?", deviceID)
	tail, err := w.page(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.SQL.QueryContext(ctx, `SELECT id, device_id, agent_id, changes, at FROM device_inventory_history`+tail, w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list inventory history: %w", err)
	}
	defer rows.Close()
	var out []InventoryChange
	for rows.Next() {
		var c InventoryChange
		var raw string
		if err := rows.Scan(&c.ID, &c.DeviceID, &c.AgentID, &raw, &c.At); err != nil {
			return nil, "", err
		}
		if err := json.Unmarshal([]byte(raw), &c.Changes); err != nil {
			return nil, "", fmt.Errorf("decode history %s: %w", c.ID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, p, func(c InventoryChange) string { return c.ID })
	return out, next, nil
}
