package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// ProcurementOrder is an order for a device (ordered → shipped → delivered).
type ProcurementOrder struct {
	ID             string         `json:"id"`
	OrgID          string         `json:"org_id"`
	EmployeeID     string         `json:"employee_id,omitempty"`
	WorkflowID     string         `json:"workflow_id,omitempty"`
	Vendor         string         `json:"vendor"`
	Adapter        string         `json:"adapter"`
	VendorRef      string         `json:"vendor_ref,omitempty"`
	Model          string         `json:"model,omitempty"`
	EquipmentType  string         `json:"equipment_type"`
	PriceCents     int64          `json:"price_cents"`
	Currency       string         `json:"currency"`
	ShipTo         domain.Address `json:"ship_to"`
	State          string         `json:"state"`
	TrackingNumber string         `json:"tracking_number,omitempty"`
	SerialNumber   string         `json:"serial_number,omitempty"`
	DeviceID       string         `json:"device_id,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

const orderCols = `id, org_id, employee_id, workflow_id, vendor, adapter, vendor_ref, model, equipment_type, price_cents, currency,
	ship_to, state, tracking_number, serial_number, device_id, created_at, updated_at`

func scanOrder(s interface{ Scan(...any) error }) (ProcurementOrder, error) {
	var o ProcurementOrder
	var emp, dev *string
	var shipTo string
	err := s.Scan(&o.ID, &o.OrgID, &emp, &o.WorkflowID, &o.Vendor, &o.Adapter, &o.VendorRef, &o.Model, &o.EquipmentType,
		&o.PriceCents, &o.Currency, &shipTo, &o.State, &o.TrackingNumber, &o.SerialNumber, &dev, &o.CreatedAt, &o.UpdatedAt)
	if err != nil {
		return o, err
	}
	if emp != nil {
		o.EmployeeID = *emp
	}
	if dev != nil {
		o.DeviceID = *dev
	}
	_ = json.Unmarshal([]byte(shipTo), &o.ShipTo)
	return o, nil
}

// InsertOrder creates a procurement order in state "ordered".
func InsertOrder(ctx context.Context, q Querier, o *ProcurementOrder) error {
	if o.ID == "" {
		o.ID = domain.NewID()
	}
	now := domain.Now()
	o.CreatedAt, o.UpdatedAt = now, now
	if o.State == "" {
		o.State = "ordered"
	}
	if o.Currency == "" {
		o.Currency = "USD"
	}
	ship, _ := json.Marshal(o.ShipTo)
	_, err := q.ExecContext(ctx, `INSERT INTO procurement_orders (id, org_id, employee_id, workflow_id, vendor, adapter, vendor_ref,
		model, equipment_type, price_cents, currency, ship_to, state, tracking_number, serial_number, device_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		o.ID, o.OrgID, nullString(o.EmployeeID), o.WorkflowID, o.Vendor, o.Adapter, o.VendorRef, o.Model, o.EquipmentType, o.PriceCents,
		o.Currency, string(ship), o.State, o.TrackingNumber, o.SerialNumber, nullString(o.DeviceID), now, now)
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	return WriteAudit(ctx, q, AuditFor(ctx, o.OrgID, "procurement.ordered", "procurement_order", o.ID, nil, o))
}

// GetOrder reads an order of an org.
func GetOrder(ctx context.Context, q Querier, orgID, id string) (ProcurementOrder, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM procurement_orders WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("procurement order %s: %w", id, ErrNotFound)
	}
	return o, err
}

// UpdateOrder writes an order's mutable fields if its state is still `fromState`.
func UpdateOrder(ctx context.Context, q Querier, o *ProcurementOrder, fromState string) error {
	o.UpdatedAt = domain.Now()
	res, err := q.ExecContext(ctx, `UPDATE procurement_orders SET state = $1, tracking_number = $2, serial_number = $3, device_id = $4,
		vendor_ref = $5, updated_at = $6 WHERE org_id = $7 AND id = $8 AND state = $9`,
		o.State, o.TrackingNumber, o.SerialNumber, nullString(o.DeviceID), o.VendorRef, o.UpdatedAt, o.OrgID, o.ID, fromState)
	if err != nil {
		return fmt.Errorf("update order %s: %w", o.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("order %s is no longer %s: %w", o.ID, fromState, ErrConflict)
	}
	return nil
}

// ListOrders returns one page of an org's orders.
func (db *DB) ListOrders(ctx context.Context, orgID, state string, p Page) ([]ProcurementOrder, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("state = ?", state)
	return listPage(ctx, db.SQL, "list orders", scanOrder, func(o ProcurementOrder) string { return o.ID }, p,
		`SELECT `+orderCols+` FROM procurement_orders`, w)
}

// Retrieval is the return of a device from a leaving employee
// (requested → kit_sent → in_transit → received, or cancelled).
type Retrieval struct {
	ID             string         `json:"id"`
	OrgID          string         `json:"org_id"`
	EmployeeID     string         `json:"employee_id"`
	DeviceID       string         `json:"device_id"`
	WorkflowID     string         `json:"workflow_id,omitempty"`
	State          string         `json:"state"`
	ShipTo         domain.Address `json:"ship_to"`
	KitTracking    string         `json:"kit_tracking,omitempty"`
	ReturnTracking string         `json:"return_tracking,omitempty"`
	WarehouseID    string         `json:"warehouse_id,omitempty"`
	RemindersSent  int            `json:"reminders_sent"`
	NextReminderAt *time.Time     `json:"next_reminder_at,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

const retrievalCols = `id, org_id, employee_id, device_id, workflow_id, state, ship_to, kit_tracking, return_tracking, warehouse_id,
	reminders_sent, next_reminder_at, created_at, updated_at`

func scanRetrieval(s interface{ Scan(...any) error }) (Retrieval, error) {
	var r Retrieval
	var shipTo string
	err := s.Scan(&r.ID, &r.OrgID, &r.EmployeeID, &r.DeviceID, &r.WorkflowID, &r.State, &shipTo, &r.KitTracking, &r.ReturnTracking,
		&r.WarehouseID, &r.RemindersSent, &r.NextReminderAt, &r.CreatedAt, &r.UpdatedAt)
	if err == nil {
		_ = json.Unmarshal([]byte(shipTo), &r.ShipTo)
	}
	return r, err
}

// InsertRetrieval opens a retrieval; a second open retrieval for a device is ErrConflict.
func InsertRetrieval(ctx context.Context, q Querier, r *Retrieval) error {
	if r.ID == "" {
		r.ID = domain.NewID()
	}
	now := domain.Now()
	r.CreatedAt, r.UpdatedAt = now, now
	if r.State == "" {
		r.State = "requested"
	}
	ship, _ := json.Marshal(r.ShipTo)
	_, err := q.ExecContext(ctx, `INSERT INTO retrievals (id, org_id, employee_id, device_id, workflow_id, state, ship_to, kit_tracking,
		return_tracking, warehouse_id, reminders_sent, next_reminder_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		r.ID, r.OrgID, r.EmployeeID, r.DeviceID, r.WorkflowID, r.State, string(ship), r.KitTracking, r.ReturnTracking, r.WarehouseID,
		r.RemindersSent, utcOrNil(r.NextReminderAt), now, now)
	if IsUniqueViolation(err) {
		return fmt.Errorf("device %s already has an open retrieval: %w", r.DeviceID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert retrieval: %w", err)
	}
	return WriteAudit(ctx, q, AuditFor(ctx, r.OrgID, "retrieval.requested", "retrieval", r.ID, nil, r))
}

// GetRetrieval reads a retrieval of an org.
func GetRetrieval(ctx context.Context, q Querier, orgID, id string) (Retrieval, error) {
	r, err := scanRetrieval(q.QueryRowContext(ctx, `SELECT `+retrievalCols+` FROM retrievals WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("retrieval %s: %w", id, ErrNotFound)
	}
	return r, err
}

// UpdateRetrieval writes a retrieval's mutable fields if its state is still fromState.
func UpdateRetrieval(ctx context.Context, q Querier, r *Retrieval, fromState string) error {
	r.UpdatedAt = domain.Now()
	res, err := q.ExecContext(ctx, `UPDATE retrievals SET state = $1, kit_tracking = $2, return_tracking = $3, warehouse_id = $4,
		reminders_sent = $5, next_reminder_at = $6, updated_at = $7 WHERE org_id = $8 AND id = $9 AND state = $10`,
		r.State, r.KitTracking, r.ReturnTracking, r.WarehouseID, r.RemindersSent, utcOrNil(r.NextReminderAt), r.UpdatedAt, r.OrgID, r.ID, fromState)
	if err != nil {
		return fmt.Errorf("update retrieval %s: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("retrieval %s is no longer %s: %w", r.ID, fromState, ErrConflict)
	}
	return nil
}

// RetrievalFilter narrows a retrieval listing.
type RetrievalFilter struct {
	State      string
	EmployeeID string
	DeviceID   string
	WorkflowID string
	Open       bool
}

// ListRetrievals lists one org's retrievals; every caller is scoped to an org.
func ListRetrievals(ctx context.Context, q Querier, orgID string, f RetrievalFilter, p Page) ([]Retrieval, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("state = ?", f.State)
	w.addIf("employee_id = ?", f.EmployeeID)
	w.addIf("device_id = ?", f.DeviceID)
	w.addIf("workflow_id = ?", f.WorkflowID)
	if f.Open {
		w.conds = append(w.conds, "state IN ('requested', 'kit_sent', 'in_transit')")
	}
	return listPage(ctx, q, "list retrievals", scanRetrieval, func(r Retrieval) string { return r.ID }, p,
		`SELECT `+retrievalCols+` FROM retrievals`, w)
}

// DevicesHeldBy lists the devices an employee holds (assigned, in use, in retrieval, lost).
func DevicesHeldBy(ctx context.Context, q Querier, orgID, employeeID string) ([]domain.Device, error) {
	return queryAll(ctx, q, "devices of "+employeeID, scanDevice,
		`SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND assigned_employee_id = $2 ORDER BY id`, orgID, employeeID)
}

// StockCandidates lists unassigned devices of an equipment type that can be given out,
// ready_for_redeploy first (they are already paid for and stored), oldest first.
func StockCandidates(ctx context.Context, q Querier, orgID, equipmentType string, limit int) ([]domain.Device, error) {
	return queryAll(ctx, q, "stock of "+equipmentType, scanDevice, `SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND equipment_type = $2
		AND state IN ('in_stock', 'ready_for_redeploy') AND assigned_employee_id IS NULL
		ORDER BY CASE state WHEN 'ready_for_redeploy' THEN 0 ELSE 1 END, id LIMIT $3`, orgID, equipmentType, limit)
}

// OrderOfWorkflow returns the order a workflow placed, or ErrNotFound.
func OrderOfWorkflow(ctx context.Context, q Querier, orgID, workflowID string) (ProcurementOrder, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM procurement_orders WHERE org_id = $1 AND workflow_id = $2
		ORDER BY id LIMIT 1`, orgID, workflowID))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("order of workflow %s: %w", workflowID, ErrNotFound)
	}
	return o, err
}
