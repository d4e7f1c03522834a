package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// MaxDeviceAge is the intake rule's age limit: a warehouse refuses a device this old.
const MaxDeviceAge = 7

// IntakeInput is what a warehouse records when a box is opened.
type IntakeInput struct {
	WarehouseID    string   `json:"warehouse_id"`
	Condition      string   `json:"condition"` // new, good, fair, damaged
	PhotoURLs      []string `json:"photo_urls,omitempty" maxlen:"2048"`
	Accessories    []string `json:"accessories,omitempty"`
	ActivationLock bool     `json:"activation_lock"`
	FirmwareLock   bool     `json:"firmware_lock"`
}

// IntakeRefusedError says why a warehouse refused a device (the API answers 422).
type IntakeRefusedError struct {
	Reasons []string
	Intake  store.Intake
}

func (e *IntakeRefusedError) Error() string {
	return "intake refused: " + strings.Join(e.Reasons, "; ")
}

// intakeRules applies the warehouse's rules to a device.
func intakeRules(dev domain.Device, in IntakeInput, now time.Time) []string {
	var reasons []string
	if dev.PurchaseDate != nil && !dev.PurchaseDate.AddDate(MaxDeviceAge, 0, 0).After(now) {
		reasons = append(reasons, fmt.Sprintf("device is %d or more years old (purchased %s)", MaxDeviceAge, dev.PurchaseDate))
	}
	if in.ActivationLock {
		reasons = append(reasons, "Activation Lock is on: the employee must remove the device from their Apple ID")
	}
	if in.FirmwareLock {
		reasons = append(reasons, "a firmware (EFI/BIOS) password is set: remove it before intake")
	}
	return reasons
}

func validCondition(c string) bool {
	switch c {
	case "new", "good", "fair", "damaged":
		return true
	}
	return false
}

// recordIntake checks the rules and writes the intake inside tx; a refusal is recorded
// and returned as *IntakeRefusedError (the caller commits it only for the record).
func (e *Engine) recordIntake(ctx context.Context, tx *sql.Tx, orgID string, dev domain.Device, retrievalID string, in IntakeInput) (store.Intake, []string, error) {
	if !validCondition(in.Condition) {
		return store.Intake{}, nil, fmt.Errorf("%w: condition must be new, good, fair or damaged", store.ErrInvalidInput)
	}
	if _, err := store.GetWarehouse(ctx, tx, orgID, in.WarehouseID); err != nil {
		return store.Intake{}, nil, err
	}
	reasons := intakeRules(dev, in, e.clock.Now())
	rec := store.Intake{OrgID: orgID, DeviceID: dev.ID, WarehouseID: in.WarehouseID, RetrievalID: retrievalID, Condition: in.Condition,
		PhotoURLs: in.PhotoURLs, Accessories: in.Accessories, ActivationLock: in.ActivationLock, FirmwareLock: in.FirmwareLock,
		Accepted: len(reasons) == 0, RefusalReason: strings.Join(reasons, "; "), ReceivedAt: e.clock.Now()}
	return rec, reasons, store.InsertIntake(ctx, tx, &rec)
}

// IntakeDevice takes an unassigned device (new stock, a walk-in return) into a warehouse.
func (e *Engine) IntakeDevice(ctx context.Context, orgID, deviceID string, in IntakeInput) (store.Intake, error) {
	var rec store.Intake
	var reasons []string
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		dev, err := store.GetDevice(ctx, tx, orgID, deviceID)
		if err != nil {
			return err
		}
		if dev.AssignedEmployeeID != "" {
			return fmt.Errorf("device %s is held by an employee; receive it through its retrieval: %w", deviceID, store.ErrConflict)
		}
		rec, reasons, err = e.recordIntake(ctx, tx, orgID, dev, "", in)
		return err
	})
	if err == nil && len(reasons) > 0 {
		return rec, &IntakeRefusedError{Reasons: reasons, Intake: rec}
	}
	return rec, err
}

// ---- procurement ----

// OrderInput creates a procurement order by hand (plan hr and up).
type OrderInput struct {
	EmployeeID    string          `json:"employee_id,omitempty"`
	Vendor        string          `json:"vendor"`
	Adapter       string          `json:"adapter,omitempty"`
	Model         string          `json:"model,omitempty"`
	EquipmentType string          `json:"equipment_type"`
	PriceCents    int64           `json:"price_cents"`
	Currency      string          `json:"currency,omitempty"`
	ShipTo        *domain.Address `json:"ship_to,omitempty"`
}

// CreateOrder places an order; ship-to defaults to the employee's HR address.
func (e *Engine) CreateOrder(ctx context.Context, orgID string, in OrderInput) (store.ProcurementOrder, error) {
	if in.Vendor == "" || in.EquipmentType == "" {
		return store.ProcurementOrder{}, fmt.Errorf("%w: vendor and equipment_type are required", store.ErrInvalidInput)
	}
	if in.PriceCents < 0 {
		return store.ProcurementOrder{}, fmt.Errorf("%w: price_cents must not be negative", store.ErrInvalidInput)
	}
	o := store.ProcurementOrder{EmployeeID: in.EmployeeID, Vendor: in.Vendor, Adapter: in.Adapter, Model: in.Model,
		EquipmentType: in.EquipmentType, PriceCents: in.PriceCents, Currency: in.Currency}
	if in.ShipTo != nil {
		o.ShipTo = *in.ShipTo
	} else if in.EmployeeID != "" {
		emp, err := e.db.GetEmployee(ctx, orgID, in.EmployeeID)
		if err != nil {
			return o, err
		}
		o.ShipTo = emp.HR.Address
	}
	o, _, err := e.placeOrder(ctx, orgID, o)
	return o, err
}

// ShipOrder records that the vendor shipped an order.
func (e *Engine) ShipOrder(ctx context.Context, orgID, orderID, tracking string) (store.ProcurementOrder, error) {
	var o store.ProcurementOrder
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if o, err = store.GetOrder(ctx, tx, orgID, orderID); err != nil {
			return err
		}
		if o.State != "ordered" {
			return fmt.Errorf("order %s is %s, not ordered: %w", o.ID, o.State, ErrBadState)
		}
		before := o
		o.State, o.TrackingNumber = "shipped", tracking
		if err := store.UpdateOrder(ctx, tx, &o, "ordered"); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "procurement.shipped", "procurement_order", o.ID, before, o))
	})
	return o, err
}

// DeliveryInput records a delivered order's device.
type DeliveryInput struct {
	SerialNumber string          `json:"serial_number"`
	Vendor       string          `json:"vendor,omitempty"`
	Platform     domain.Platform `json:"platform,omitempty"`
}

// DeliverOrder records delivery: the device joins stock and the onboarding waiting for
// it continues.
func (e *Engine) DeliverOrder(ctx context.Context, orgID, orderID string, in DeliveryInput) (store.ProcurementOrder, error) {
	serial, err := domain.NormalizeSerial(in.SerialNumber)
	if err != nil {
		return store.ProcurementOrder{}, fmt.Errorf("%w: %v", store.ErrInvalidInput, err)
	}
	var o store.ProcurementOrder
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		if o, err = store.GetOrder(ctx, tx, orgID, orderID); err != nil {
			return err
		}
		if o.State != "ordered" && o.State != "shipped" {
			return fmt.Errorf("order %s is %s: %w", o.ID, o.State, ErrBadState)
		}
		vendor := domain.NormalizeVendor(in.Vendor)
		if vendor == "" {
			vendor = domain.NormalizeVendor(o.Vendor)
		}
		today := e.clock.Now()
		pd := domain.NewDate(today.Year(), today.Month(), today.Day())
		dev := domain.Device{OrgID: orgID, SerialNumber: serial, Vendor: vendor, Model: o.Model, Platform: in.Platform,
			EquipmentType: o.EquipmentType, PurchaseDate: &pd, State: domain.StateInStock}
		if err := store.CreateDevice(ctx, tx, &dev); err != nil {
			return err
		}
		before := o
		from := o.State
		o.State, o.SerialNumber, o.DeviceID = "delivered", serial, dev.ID
		if err := store.UpdateOrder(ctx, tx, &o, from); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "procurement.delivered", "procurement_order", o.ID, before, o))
	})
	if err != nil {
		return o, err
	}
	if o.EmployeeID != "" {
		return o, e.wake(ctx, orgID, o.EmployeeID, KindOnboarding, StepAwaitDelivery)
	}
	return o, nil
}

// ---- retrievals ----

// KitSent records the return kit's shipment to the employee.
func (e *Engine) KitSent(ctx context.Context, orgID, retrievalID, tracking string) (store.Retrieval, error) {
	return e.retrievalStep(ctx, orgID, retrievalID, []string{"requested"}, "kit_sent", func(tx *sql.Tx, r *store.Retrieval) error {
		r.KitTracking = tracking
		if err := writeRetrievalEvent(ctx, tx, domain.EventRetrievalKitShipped, *r); err != nil {
			return err
		}
		// The "send a kit" task is done once the kit is on its way.
		ts, err := store.TasksOfStepSubject(ctx, tx, r.WorkflowID, "ship_kit", r.ID)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if _, err := store.CloseTask(ctx, tx, orgID, t.ID, "done", domain.ActorFrom(ctx).ID, "kit sent, tracking "+tracking); err != nil {
				return err
			}
		}
		return nil
	})
}

// InTransit records the box on its way back; the device goes to in_retrieval.
func (e *Engine) InTransit(ctx context.Context, orgID, retrievalID, tracking string) (store.Retrieval, error) {
	return e.retrievalStep(ctx, orgID, retrievalID, []string{"requested", "kit_sent"}, "in_transit", func(tx *sql.Tx, r *store.Retrieval) error {
		r.ReturnTracking = tracking
		dev, err := store.GetDevice(ctx, tx, orgID, r.DeviceID)
		if err != nil {
			return err
		}
		if dev.State == domain.StateRetrievalReq {
			_, err = store.TransitionDevice(ctx, tx, orgID, dev.ID, domain.StateInRetrieval)
		}
		return err
	})
}

// Receive records the box's arrival, at a warehouse with its intake (pro plan), or at
// the office without one (WarehouseID empty). A refused intake is recorded and returned
// as *IntakeRefusedError; the retrieval stays open.
func (e *Engine) Receive(ctx context.Context, orgID, retrievalID string, in IntakeInput) (store.Retrieval, error) {
	var reasons []string
	var rec store.Intake
	r, err := e.retrievalStep(ctx, orgID, retrievalID, []string{"requested", "kit_sent", "in_transit"}, "received", func(tx *sql.Tx, r *store.Retrieval) error {
		dev, err := store.GetDevice(ctx, tx, orgID, r.DeviceID)
		if err != nil {
			return err
		}
		if in.WarehouseID != "" {
			rec, reasons, err = e.recordIntake(ctx, tx, orgID, dev, r.ID, in)
			if err != nil || len(reasons) > 0 {
				return err
			}
		}
		r.WarehouseID = in.WarehouseID
		if _, err := store.TransitionDevice(ctx, tx, orgID, dev.ID, domain.StateReceived); err != nil {
			return err
		}
		return store.WriteEvent(ctx, tx, domain.Event{OrgID: orgID, Type: domain.EventDeviceRetrieved, SubjectType: "device", SubjectID: dev.ID,
			Payload: mustJSON(map[string]string{"retrieval_id": r.ID, "warehouse_id": in.WarehouseID})})
	}, func() bool { return len(reasons) > 0 })
	if err != nil {
		return r, err
	}
	if len(reasons) > 0 {
		return r, &IntakeRefusedError{Reasons: reasons, Intake: rec}
	}
	return r, e.wake(ctx, orgID, r.EmployeeID, KindOffboarding, StepAwaitReceipt)
}

// CancelRetrieval cancels an open retrieval (the device stays with the employee).
func (e *Engine) CancelRetrieval(ctx context.Context, orgID, retrievalID string) (store.Retrieval, error) {
	return e.retrievalStep(ctx, orgID, retrievalID, []string{"requested", "kit_sent"}, "cancelled", func(tx *sql.Tx, r *store.Retrieval) error {
		dev, err := store.GetDevice(ctx, tx, orgID, r.DeviceID)
		if err != nil {
			return err
		}
		if dev.State == domain.StateRetrievalReq {
			_, err = store.TransitionDevice(ctx, tx, orgID, dev.ID, domain.StateInUse)
		}
		return err
	})
}

// retrievalStep moves a retrieval from one of `from` to `to`, running fn in the same
// transaction. keepState, when it reports true after fn, records fn's writes but leaves
// the retrieval where it was (a refused intake).
func (e *Engine) retrievalStep(ctx context.Context, orgID, id string, from []string, to string, fn func(*sql.Tx, *store.Retrieval) error, keepState ...func() bool) (store.Retrieval, error) {
	var r store.Retrieval
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if r, err = store.GetRetrieval(ctx, tx, orgID, id); err != nil {
			return err
		}
		ok := false
		for _, f := range from {
			ok = ok || r.State == f
		}
		if !ok {
			return fmt.Errorf("retrieval %s is %s; cannot become %s: %w", r.ID, r.State, to, ErrBadState)
		}
		before := r
		if err := fn(tx, &r); err != nil {
			return err
		}
		for _, k := range keepState {
			if k() {
				return nil
			}
		}
		r.State = to
		if err := store.UpdateRetrieval(ctx, tx, &r, before.State); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "retrieval."+to, "retrieval", r.ID, before, r))
	})
	return r, err
}

// ---- reports ----

// MonthlyStorage is the number of distinct devices stored at a warehouse during a month
// (what a warehouse bills on).
type MonthlyStorage struct {
	Month       string `json:"month"` // YYYY-MM
	WarehouseID string `json:"warehouse_id"`
	Devices     int    `json:"devices"`
}

// StorageByMonth counts stored devices per month over [from, to) months.
func (e *Engine) StorageByMonth(ctx context.Context, orgID string, from, to time.Time) ([]MonthlyStorage, error) {
	start := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, time.UTC)
	if !end.After(start) {
		end = start.AddDate(0, 1, 0)
	}
	periods, err := e.db.StoredPeriods(ctx, orgID, start, end)
	if err != nil {
		return nil, err
	}
	var out []MonthlyStorage
	for m := start; m.Before(end); m = m.AddDate(0, 1, 0) {
		next := m.AddDate(0, 1, 0)
		per := map[string]map[string]bool{}
		var order []string
		for _, p := range periods {
			if !p.From.Before(next) || (p.Until != nil && p.Until.Before(m)) {
				continue
			}
			if per[p.WarehouseID] == nil {
				per[p.WarehouseID] = map[string]bool{}
				order = append(order, p.WarehouseID)
			}
			per[p.WarehouseID][p.DeviceID] = true
		}
		for _, wh := range order {
			out = append(out, MonthlyStorage{Month: m.Format("2006-01"), WarehouseID: wh, Devices: len(per[wh])})
		}
	}
	return out, nil
}
