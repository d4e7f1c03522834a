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

const deviceCols = `id, org_id, serial_number, vendor, model, platform, equipment_type, purchase_date, state,
	assigned_employee_id, notes, version, created_at, updated_at`

func scanDevice(s interface{ Scan(...any) error }) (domain.Device, error) {
	var d domain.Device
	var platform, state string
	var emp *string
	var purchase *domain.Date
	err := s.Scan(&d.ID, &d.OrgID, &d.SerialNumber, &d.Vendor, &d.Model, &platform, &d.EquipmentType, &purchase,
		&state, &emp, &d.Notes, &d.Version, &d.CreatedAt, &d.UpdatedAt)
	d.Platform, d.State, d.PurchaseDate = domain.Platform(platform), domain.DeviceState(state), purchase
	if emp != nil {
		d.AssignedEmployeeID = *emp
	}
	return d, err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func datePtr(d *domain.Date) any {
	if d == nil {
		return nil
	}
	return d.String()
}

// CreateDevice inserts a device in its initial state (in_stock unless set).
func CreateDevice(ctx context.Context, q Querier, d *domain.Device) error {
	if d.ID == "" {
		d.ID = domain.NewID()
	}
	if d.State == "" {
		d.State = domain.StateInStock
	}
	now := domain.Now()
	d.CreatedAt, d.UpdatedAt, d.Version = now, now, 1
	_, err := q.ExecContext(ctx, `INSERT INTO devices (id, org_id, serial_number, vendor, model, platform, equipment_type,
		purchase_date, state, assigned_employee_id, notes, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		d.ID, d.OrgID, d.SerialNumber, d.Vendor, d.Model, string(d.Platform), d.EquipmentType, datePtr(d.PurchaseDate),
		string(d.State), nullString(d.AssignedEmployeeID), d.Notes, d.Version, now, now)
	if IsUniqueViolation(err) {
		return fmt.Errorf("device %s %s already exists: %w", d.Vendor, d.SerialNumber, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create device %s: %w", d.SerialNumber, err)
	}
	return WriteAudit(ctx, q, AuditFor(ctx, d.OrgID, "device.created", "device", d.ID, nil, d))
}

// CreateDevice is the DB method form.
func (db *DB) CreateDevice(ctx context.Context, d *domain.Device) error {
	return db.InTx(ctx, func(tx *sql.Tx) error { return CreateDevice(ctx, tx, d) })
}

// GetDevice reads one device of an org.
func GetDevice(ctx context.Context, q Querier, orgID, id string) (domain.Device, error) {
	d, err := scanDevice(q.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	return d, err
}

// GetDevice is the DB method form.
func (db *DB) GetDevice(ctx context.Context, orgID, id string) (domain.Device, error) {
	return GetDevice(ctx, db.SQL, orgID, id)
}

// FindDevicesBySerial returns an org's devices with this serial (any vendor).
func FindDevicesBySerial(ctx context.Context, q Querier, orgID, serial string) ([]domain.Device, error) {
	return queryAll(ctx, q, "find device "+serial, scanDevice,
		`SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND serial_number = $2 ORDER BY id`, orgID, serial)
}

// FindDevicesBySerial is the DB method form.
func (db *DB) FindDevicesBySerial(ctx context.Context, orgID, serial string) ([]domain.Device, error) {
	return FindDevicesBySerial(ctx, db.SQL, orgID, serial)
}

// DeviceFilter narrows a device listing.
type DeviceFilter struct {
	State         domain.DeviceState
	Platform      domain.Platform
	EquipmentType string
	EmployeeID    string
	Serial        string
	Unassigned    bool
}

// ListDevices returns one page of an org's devices.
func (db *DB) ListDevices(ctx context.Context, orgID string, f DeviceFilter, p Page) ([]domain.Device, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("state = ?", string(f.State))
	w.addIf("platform = ?", string(f.Platform))
	w.addIf("equipment_type = ?", f.EquipmentType)
	w.addIf("assigned_employee_id = ?", f.EmployeeID)
	w.addIf("serial_number = ?", f.Serial)
	if f.Unassigned {
		w.conds = append(w.conds, "assigned_employee_id IS NULL")
	}
	return listPage(ctx, db.SQL, "list devices", scanDevice, func(d domain.Device) string { return d.ID }, p,
		`SELECT `+deviceCols+` FROM devices`, w)
}

// DevicePatch holds the fields an admin may edit directly; state and assignment change
// only through Assign, Unassign and Transition.
type DevicePatch struct {
	Model         *string
	Platform      *domain.Platform
	EquipmentType *string
	PurchaseDate  *domain.Date
	Notes         *string
}

// writeDevice saves d if its version is still expected; a lost race is ErrConflict.
func writeDevice(ctx context.Context, q Querier, d *domain.Device) error {
	prev := d.Version
	d.Version++
	d.UpdatedAt = domain.Now()
	res, err := q.ExecContext(ctx, `UPDATE devices SET model = $1, platform = $2, equipment_type = $3, purchase_date = $4,
		state = $5, assigned_employee_id = $6, notes = $7, version = $8, updated_at = $9
		WHERE org_id = $10 AND id = $11 AND version = $12`,
		d.Model, string(d.Platform), d.EquipmentType, datePtr(d.PurchaseDate), string(d.State), nullString(d.AssignedEmployeeID),
		d.Notes, d.Version, d.UpdatedAt, d.OrgID, d.ID, prev)
	if err != nil {
		return fmt.Errorf("update device %s: %w", d.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("device %s changed concurrently: %w", d.ID, ErrConflict)
	}
	return nil
}

// PatchDevice edits non-lifecycle fields.
func (db *DB) PatchDevice(ctx context.Context, orgID, id string, p DevicePatch) (domain.Device, error) {
	var out domain.Device
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := GetDevice(ctx, tx, orgID, id)
		if err != nil {
			return err
		}
		out = before
		if p.Model != nil {
			out.Model = *p.Model
		}
		if p.Platform != nil {
			out.Platform = *p.Platform
		}
		if p.EquipmentType != nil {
			out.EquipmentType = *p.EquipmentType
		}
		if p.PurchaseDate != nil {
			out.PurchaseDate = p.PurchaseDate
		}
		if p.Notes != nil {
			out.Notes = *p.Notes
		}
		if err := writeDevice(ctx, tx, &out); err != nil {
			return err
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, orgID, "device.updated", "device", id, before, out))
	})
	return out, err
}

// ErrNotAssignable is returned when a device's state or current holder forbids assignment.
var ErrNotAssignable = fmt.Errorf("device is not assignable: %w", ErrConflict)

// AssignDevice gives a device to an employee inside q's transaction. Exactly one of two
// concurrent assignments wins: the conditional update takes the row lock and the loser
// re-reads a state that no longer qualifies.
func AssignDevice(ctx context.Context, q Querier, orgID, deviceID, employeeID string) (domain.Device, error) {
	before, err := GetDevice(ctx, q, orgID, deviceID)
	if err != nil {
		return before, err
	}
	emp, err := GetEmployee(ctx, q, orgID, employeeID)
	if err != nil {
		return before, err
	}
	if emp.HR.Status == domain.StatusTerminated {
		return before, fmt.Errorf("employee %s is terminated: %w", employeeID, ErrConflict)
	}
	if !domain.Assignable(before.State) || before.AssignedEmployeeID != "" {
		return before, fmt.Errorf("device %s is %s: %w", deviceID, before.State, ErrNotAssignable)
	}
	d := before
	d.State, d.AssignedEmployeeID = domain.StateAssigned, employeeID
	if err := writeDevice(ctx, q, &d); err != nil {
		return before, err
	}
	now := domain.Now()
	if _, err := q.ExecContext(ctx, `INSERT INTO device_assignments (id, org_id, device_id, employee_id, assigned_at, assigned_by)
		VALUES ($1, $2, $3, $4, $5, $6)`, domain.NewID(), orgID, deviceID, employeeID, now, domain.ActorFrom(ctx).ID); err != nil {
		if IsUniqueViolation(err) {
			return before, fmt.Errorf("device %s already has an open assignment: %w", deviceID, ErrConflict)
		}
		return before, fmt.Errorf("record assignment: %w", err)
	}
	if err := WriteAudit(ctx, q, AuditFor(ctx, orgID, "device.assigned", "device", deviceID, before, d)); err != nil {
		return before, err
	}
	return d, WriteEvent(ctx, q, domain.Event{OrgID: orgID, Type: domain.EventDeviceAssigned, SubjectType: "device", SubjectID: deviceID,
		Payload: mustJSON(map[string]string{"employee_id": employeeID, "serial_number": d.SerialNumber})})
}

// AssignDevice is the DB method form.
func (db *DB) AssignDevice(ctx context.Context, orgID, deviceID, employeeID string) (domain.Device, error) {
	var d domain.Device
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = AssignDevice(ctx, tx, orgID, deviceID, employeeID)
		return err
	})
	return d, err
}

func closeAssignment(ctx context.Context, q Querier, deviceID string) error {
	_, err := q.ExecContext(ctx, `UPDATE device_assignments SET unassigned_at = $1, unassigned_by = $2 WHERE device_id = $3 AND unassigned_at IS NULL`,
		domain.Now(), domain.ActorFrom(ctx).ID, deviceID)
	if err != nil {
		return fmt.Errorf("close assignment of %s: %w", deviceID, err)
	}
	return nil
}

// TransitionDevice moves a device along the state machine inside q's transaction. Leaving
// the states that hold an assignment closes it; entering "assigned" needs AssignDevice.
func TransitionDevice(ctx context.Context, q Querier, orgID, deviceID string, to domain.DeviceState) (domain.Device, error) {
	before, err := GetDevice(ctx, q, orgID, deviceID)
	if err != nil {
		return before, err
	}
	if to == domain.StateAssigned {
		return before, fmt.Errorf("%w: assign a device to an employee with the assign action", ErrInvalidInput)
	}
	if err := domain.CheckTransition(before.State, to); err != nil {
		return before, err
	}
	d := before
	d.State = to
	if !domain.HoldsAssignment(to) && d.AssignedEmployeeID != "" {
		d.AssignedEmployeeID = ""
		if err := closeAssignment(ctx, q, deviceID); err != nil {
			return before, err
		}
	}
	if err := writeDevice(ctx, q, &d); err != nil {
		return before, err
	}
	if err := WriteAudit(ctx, q, AuditFor(ctx, orgID, "device.transitioned", "device", deviceID, before, d)); err != nil {
		return before, err
	}
	evType := domain.EventDeviceStateChanged
	if before.AssignedEmployeeID != "" && d.AssignedEmployeeID == "" {
		evType = domain.EventDeviceUnassigned
	}
	return d, WriteEvent(ctx, q, domain.Event{OrgID: orgID, Type: evType, SubjectType: "device", SubjectID: deviceID,
		Payload: mustJSON(map[string]string{"from": string(before.State), "to": string(to), "employee_id": before.AssignedEmployeeID})})
}

// TransitionDevice is the DB method form.
func (db *DB) TransitionDevice(ctx context.Context, orgID, deviceID string, to domain.DeviceState) (domain.Device, error) {
	var d domain.Device
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = TransitionDevice(ctx, tx, orgID, deviceID, to)
		return err
	})
	return d, err
}

// UnassignDevice takes back a device that was assigned but not yet in use. A device in
// use goes back through retrieval instead, so nothing in the field is forgotten.
func (db *DB) UnassignDevice(ctx context.Context, orgID, deviceID string) (domain.Device, error) {
	var d domain.Device
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := GetDevice(ctx, tx, orgID, deviceID)
		if err != nil {
			return err
		}
		if cur.State != domain.StateAssigned {
			return fmt.Errorf("device %s is %s; only an assigned device not yet in use can be unassigned (use retrieval): %w",
				deviceID, cur.State, ErrConflict)
		}
		d, err = TransitionDevice(ctx, tx, orgID, deviceID, domain.StateInStock)
		return err
	})
	return d, err
}

// ListAssignments returns a device's or an employee's assignment history, oldest first.
func (db *DB) ListAssignments(ctx context.Context, orgID, deviceID, employeeID string, p Page) ([]domain.Assignment, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("device_id = ?", deviceID)
	w.addIf("employee_id = ?", employeeID)
	return listPage(ctx, db.SQL, "list assignments", scanAssignment, func(a domain.Assignment) string { return a.ID }, p,
		`SELECT id, org_id, device_id, employee_id, assigned_at, unassigned_at, assigned_by, unassigned_by FROM device_assignments`, w)
}

func scanAssignment(s rowScanner) (domain.Assignment, error) {
	var a domain.Assignment
	err := s.Scan(&a.ID, &a.OrgID, &a.DeviceID, &a.EmployeeID, &a.AssignedAt, &a.UnassignedAt, &a.AssignedBy, &a.UnassignedBy)
	return a, err
}

// DeviceQuery is a device search: the DeviceFilter equality filters plus free-text search,
// tracking and posture facets, a sort and keyset paging.
type DeviceQuery struct {
	DeviceFilter
	// Q matches serial, model, vendor, hostname and the assignee's name or work email
	// (case-insensitive substring).
	Q         string
	OSVersion string
	// Assigned, when set, keeps devices with (true) or without (false) a holder.
	Assigned *bool
	// DiskEncrypted, Firewall and ScreenLock, when set, keep devices whose agent last
	// reported the check on (true) or off (false); a device with no report, or an
	// "unknown" one, matches neither.
	DiskEncrypted, Firewall, ScreenLock *bool
	// OfflineDays > 0 keeps devices whose agent was last seen more than that many days
	// before Now (devices no agent ever reported for are not "offline", they are untracked).
	OfflineDays int
	// NeedsReview, when set, keeps devices flagged (true) or not (false) for review: an
	// unknown serial, a serial conflict, or an agent running with test knobs (dry run).
	NeedsReview *bool
	// InService keeps devices that are neither retired nor lost (the dashboard's view).
	InService bool
	// Sort is one of DeviceSorts ("" = created); Desc reverses it.
	Sort string
	Desc bool
	Page Page
	// Total asks for the number of matching devices (one COUNT query more).
	Total bool
	// Now is the reference time for OfflineDays (zero = domain.Now()).
	Now time.Time
}

// DeviceSorts are the orders a device list supports.
var DeviceSorts = []string{"created", "serial", "model", "state", "last_seen", "assignee"}

// deviceSortKey maps each sort to its key. last_seen is the later of the agent's last
// heartbeat and its last report; never seen sorts as the epoch.
func deviceSortKey(d Dialect, sort string) (sortKey, bool) {
	switch sort {
	case "", "created":
		return sortKey{Expr: "d.created_at", Time: true}, true
	case "serial":
		return sortKey{Expr: "d.serial_number"}, true
	case "model":
		return sortKey{Expr: "lower(d.model)"}, true
	case "state":
		return sortKey{Expr: "d.state"}, true
	case "assignee":
		return sortKey{Expr: "COALESCE(lower(e.first_name || ' ' || e.last_name), '')"}, true
	case "last_seen":
		epoch := "'1970-01-01 00:00:00+00:00'"
		if d == Postgres {
			epoch = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
		}
		return sortKey{Expr: "CASE WHEN a.last_seen_at > t.last_seen_at THEN a.last_seen_at ELSE COALESCE(t.last_seen_at, a.last_seen_at, " + epoch + ") END",
			Time: true}, true
	}
	return sortKey{}, false
}

// Posture states as the agent reports them (protojson names of agent.v1.PostureState).
const (
	postureOn  = "POSTURE_STATE_ON"
	postureOff = "POSTURE_STATE_OFF"
)

// PostureSummary is the compliance checks of a device's last posture report: "on", "off",
// "unknown", or "" when none was reported.
type PostureSummary struct {
	DiskEncryption string `json:"disk_encryption,omitempty" enum:"on,off,unknown"`
	Firewall       string `json:"firewall,omitempty" enum:"on,off,unknown"`
	ScreenLock     string `json:"screen_lock,omitempty" enum:"on,off,unknown"`
	OSVersion      string `json:"os_version,omitempty"`
}

func postureWord(s string) string {
	switch s {
	case postureOn:
		return "on"
	case postureOff:
		return "off"
	case "":
		return ""
	}
	return "unknown"
}

// ParsePosture reads a stored posture report (protojson of agent.v1.Posture).
func ParsePosture(raw string) PostureSummary {
	var p struct {
		DiskEncryption string `json:"disk_encryption"`
		Firewall       string `json:"firewall"`
		ScreenLock     string `json:"screen_lock"`
		OSVersion      string `json:"os_version"`
	}
	if raw == "" || json.Unmarshal([]byte(raw), &p) != nil {
		return PostureSummary{}
	}
	return PostureSummary{DiskEncryption: postureWord(p.DiskEncryption), Firewall: postureWord(p.Firewall),
		ScreenLock: postureWord(p.ScreenLock), OSVersion: p.OSVersion}
}

// Person is the short form of an employee shown beside a device.
type Person struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// DeviceListItem is one row of a device list: the device, its holder, and what its agent
// last said (enough for a list page without a request per row).
type DeviceListItem struct {
	domain.Device
	Assignee    *Person        `json:"assignee,omitempty"`
	LastSeenAt  *time.Time     `json:"last_seen_at,omitempty"`
	Hostname    string         `json:"hostname,omitempty"`
	OSName      string         `json:"os_name,omitempty"`
	OSVersion   string         `json:"os_version,omitempty"`
	NeedsReview bool           `json:"needs_review"`
	Posture     PostureSummary `json:"posture"`
}

// DevicePage is one page of a device search.
type DevicePage struct {
	Items      []DeviceListItem
	NextCursor string
	// Total is set when the query asked for it.
	Total *int
}

// deviceJoins are the tables a device query reads beside devices d: t (device_tracking),
// a (the agent tracking names, for its heartbeat) and e (the holder).
type deviceJoins struct{ t, a, e bool }

func (j deviceJoins) from() string {
	f := "devices d"
	if j.t || j.a {
		f += " LEFT JOIN device_tracking t ON t.device_id = d.id"
	}
	if j.a {
		f += " LEFT JOIN agents a ON a.id = t.agent_id"
	}
	if j.e {
		f += " LEFT JOIN employees e ON e.id = d.assigned_employee_id"
	}
	return f
}

var allDeviceJoins = deviceJoins{t: true, a: true, e: true}

const deviceListCols = `d.id, d.org_id, d.serial_number, d.vendor, d.model, d.platform, d.equipment_type, d.purchase_date, d.state,
	d.assigned_employee_id, d.notes, d.version, d.created_at, d.updated_at,
	e.first_name, e.last_name, e.work_email, t.last_seen_at, a.last_seen_at, t.hostname, t.os_name, t.os_version,
	COALESCE(t.needs_review OR t.serial_conflict, FALSE), t.posture`

// deviceWhere builds the WHERE conditions of a device search and says which tables they
// read. Free-text search reads tracking and employees through IN subqueries (one pass over
// each table) rather than joins, so a search costs one scan of each, not a join per row.
func deviceWhere(d Dialect, orgID string, q DeviceQuery) (*where, deviceJoins) {
	w := &where{}
	var j deviceJoins
	w.add("d.org_id = ?", orgID)
	f := q.DeviceFilter
	w.addIf("d.state = ?", string(f.State))
	w.addIf("d.platform = ?", string(f.Platform))
	w.addIf("d.equipment_type = ?", f.EquipmentType)
	w.addIf("d.assigned_employee_id = ?", f.EmployeeID)
	w.addIf("d.serial_number = ?", f.Serial)
	if q.OSVersion != "" {
		j.t = true
		w.add("t.os_version = ?", q.OSVersion)
	}
	if f.Unassigned || (q.Assigned != nil && !*q.Assigned) {
		w.conds = append(w.conds, "d.assigned_employee_id IS NULL")
	}
	if q.Assigned != nil && *q.Assigned {
		w.conds = append(w.conds, "d.assigned_employee_id IS NOT NULL")
	}
	if s := strings.TrimSpace(q.Q); s != "" {
		pat := likePattern(s)
		w.addArgs(`(lower(d.serial_number || ' ' || d.vendor || ' ' || d.model) LIKE ? ESCAPE '\'
			OR d.id IN (SELECT device_id FROM device_tracking WHERE org_id = ? AND lower(hostname) LIKE ? ESCAPE '\')
			OR d.assigned_employee_id IN (SELECT id FROM employees WHERE org_id = ?
				AND (lower(first_name || ' ' || last_name) LIKE ? ESCAPE '\' OR work_email LIKE ? ESCAPE '\')))`,
			pat, orgID, pat, orgID, pat, pat)
	}
	for _, c := range []struct {
		field string
		v     *bool
	}{{"disk_encryption", q.DiskEncrypted}, {"firewall", q.Firewall}, {"screen_lock", q.ScreenLock}} {
		if c.v != nil {
			j.t = true
			// The posture columns agent tracking writes beside the report (postureChecks).
			want := "off"
			if *c.v {
				want = "on"
			}
			w.add("t."+c.field+" = ?", want)
		}
	}
	if q.OfflineDays > 0 {
		now := q.Now
		if now.IsZero() {
			now = domain.Now()
		}
		// Last seen is the later of the last report and the agent's last heartbeat; it is
		// before the cutoff when both are.
		// t.org_id repeats d.org_id so the planner can start from the few reports older
		// than the cutoff (index device_tracking_seen) rather than from every device, and
		// the heartbeat is a scalar subquery so each of those few looks its agent up by id
		// (as a join, Postgres hashes every agent of the org first).
		j.t = true
		cut := now.Add(-time.Duration(q.OfflineDays) * 24 * time.Hour).UTC()
		w.addArgs("t.org_id = ? AND t.last_seen_at < ? AND NOT COALESCE((SELECT ha.last_seen_at >= ? FROM agents ha WHERE ha.id = t.agent_id), FALSE)",
			orgID, cut, cut)
	}
	if q.InService {
		w.conds = append(w.conds, "d.state NOT IN ('retired', 'lost')")
	}
	if q.NeedsReview != nil {
		j.t = true
		if *q.NeedsReview {
			w.conds = append(w.conds, "(t.needs_review OR t.serial_conflict)")
		} else {
			w.conds = append(w.conds, "NOT COALESCE(t.needs_review OR t.serial_conflict, FALSE)")
		}
	}
	return w, j
}

// SearchDevices returns one page of an org's devices matching q, in q's order. Paging is
// keyset on (sort key, id), so pages neither repeat nor skip a device when rows sort equal.
// The page is found first with only the columns its filters and sort need, and only then
// are its rows read in full: a sort over the whole org moves ids, not rows.
func (db *DB) SearchDevices(ctx context.Context, orgID string, q DeviceQuery) (DevicePage, error) {
	var out DevicePage
	key, ok := deviceSortKey(db.Dialect, q.Sort)
	if !ok {
		return out, fmt.Errorf("%w: sort must be one of %s", ErrInvalidInput, strings.Join(DeviceSorts, ", "))
	}
	sortName := q.Sort
	if sortName == "" {
		sortName = "created"
	}
	cur, err := decodeListCursor(q.Page.Cursor, sortName, q.Desc)
	if err != nil {
		return out, err
	}
	w, joins := deviceWhere(db.Dialect, orgID, q)
	if q.Total {
		n, err := countRows(ctx, db.SQL, "search devices", joins.from(), w)
		if err != nil {
			return out, err
		}
		out.Total = &n
	}
	switch sortName {
	case "last_seen":
		joins.t, joins.a = true, true
	case "assignee":
		joins.e = true
	}
	tail, err := w.seek(key, "d.id", q.Desc, cur, q.Page.limit())
	if err != nil {
		return out, err
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	var keys []string
	err = queryEach(ctx, db.SQL, "search devices", func(s rowScanner) error {
		it, k, err := scanDeviceListItem(s)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, it)
		keys = append(keys, k)
		return nil
	}, `SELECT `+deviceListCols+`, p.k FROM (SELECT d.id AS pid, `+key.Expr+` AS k FROM `+joins.from()+w.clause()+tail+`) p
		JOIN devices d ON d.id = p.pid`+strings.TrimPrefix(allDeviceJoins.from(), "devices d")+` ORDER BY p.k `+dir+`, d.id `+dir, w.args...)
	if err != nil {
		return out, err
	}
	if len(out.Items) > q.Page.limit() {
		out.Items = out.Items[:q.Page.limit()]
		last := out.Items[len(out.Items)-1]
		k := keys[len(out.Items)-1]
		if key.Time {
			// The key column of a time sort is an expression (no declared type on SQLite);
			// the cursor takes the value from the typed columns instead.
			k = keyValue(timeSortValue(sortName, last))
		}
		out.NextCursor = encodeListCursor(listCursor{Sort: sortName, Desc: q.Desc, Key: k, ID: last.ID})
	}
	return out, nil
}

func timeSortValue(sort string, it DeviceListItem) time.Time {
	if sort == "last_seen" {
		if it.LastSeenAt == nil {
			return epochKey
		}
		return *it.LastSeenAt
	}
	return it.CreatedAt
}

func scanDeviceListItem(s rowScanner) (DeviceListItem, string, error) {
	var it DeviceListItem
	d := &it.Device
	var platform, state string
	var emp, first, last, email, hostname, osName, osVersion, posture *string
	var purchase *domain.Date
	var tSeen, aSeen *time.Time
	var key any
	err := s.Scan(&d.ID, &d.OrgID, &d.SerialNumber, &d.Vendor, &d.Model, &platform, &d.EquipmentType, &purchase,
		&state, &emp, &d.Notes, &d.Version, &d.CreatedAt, &d.UpdatedAt,
		&first, &last, &email, &tSeen, &aSeen, &hostname, &osName, &osVersion, &it.NeedsReview, &posture, &key)
	if err != nil {
		return it, "", err
	}
	d.Platform, d.State, d.PurchaseDate = domain.Platform(platform), domain.DeviceState(state), purchase
	if emp != nil {
		d.AssignedEmployeeID = *emp
		it.Assignee = &Person{ID: *emp, Name: strings.TrimSpace(deref(first) + " " + deref(last)), Email: deref(email)}
	}
	it.LastSeenAt = tSeen
	if aSeen != nil && (tSeen == nil || aSeen.After(*tSeen)) {
		it.LastSeenAt = aSeen
	}
	it.Hostname, it.OSName, it.OSVersion = deref(hostname), deref(osName), deref(osVersion)
	it.Posture = ParsePosture(deref(posture))
	return it, keyValue(key), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
