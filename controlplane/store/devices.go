package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
