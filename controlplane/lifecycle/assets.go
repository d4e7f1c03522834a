package lifecycle

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// CSVColumns is the device CSV layout for import and export.
var CSVColumns = []string{"serial_number", "vendor", "model", "platform", "equipment_type", "purchase_date", "state", "assigned_email"}

// RowError is one problem in an import file (row 1 is the header).
type RowError struct {
	Row     int    `json:"row"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
}

// ImportReport is the result of a CSV import: either every row was imported, or none
// was and Errors says why, row by row.
type ImportReport struct {
	Rows     int        `json:"rows"`
	Imported int        `json:"imported"`
	DryRun   bool       `json:"dry_run"`
	Errors   []RowError `json:"errors"`
}

// importStates are the states a device may be imported in.
var importStates = map[domain.DeviceState]bool{domain.StateInStock: true, domain.StateAssigned: true, domain.StateInUse: true,
	domain.StateReadyForRedeploy: true, domain.StateRetired: true, domain.StateLost: true}

type importRow struct {
	row   int
	dev   domain.Device
	email string
}

// ImportDevicesCSV validates every row, then imports all of them in one transaction, or
// none when any row is invalid (nothing half-imported). dryRun validates only.
func (e *Engine) ImportDevicesCSV(ctx context.Context, orgID string, r io.Reader, dryRun bool) (ImportReport, error) {
	rep := ImportReport{DryRun: dryRun, Errors: []RowError{}}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return rep, fmt.Errorf("%w: cannot read the CSV header: %v", store.ErrInvalidInput, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, req := range []string{"serial_number", "vendor", "equipment_type"} {
		if _, ok := col[req]; !ok {
			rep.Errors = append(rep.Errors, RowError{Row: 1, Column: req, Message: "required column missing"})
		}
	}
	if len(rep.Errors) > 0 {
		return rep, nil
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var rows []importRow
	seen := map[string]int{}
	for n := 2; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rep.Errors = append(rep.Errors, RowError{Row: n, Message: "malformed CSV: " + err.Error()})
			break
		}
		rep.Rows++
		bad := func(c, m string) { rep.Errors = append(rep.Errors, RowError{Row: n, Column: c, Message: m}) }
		// Every cell, known column or not: no formulas, no control characters.
		cellBad := false
		for i, cell := range rec {
			name := fmt.Sprintf("column %d", i+1)
			if i < len(header) {
				name = strings.ToLower(strings.TrimSpace(header[i]))
			}
			if c := strings.TrimLeft(cell, " "); formulaCell(c) {
				bad(name, formulaError(c))
				cellBad = true
			} else if err := api.CheckText(cell, api.DefaultMaxLen, false); err != nil {
				bad(name, "the value "+err.Error())
				cellBad = true
			}
		}
		if cellBad {
			continue
		}
		d := domain.Device{OrgID: orgID, Vendor: domain.NormalizeVendor(get(rec, "vendor")), Model: get(rec, "model"),
			EquipmentType: get(rec, "equipment_type"), State: domain.StateInStock}
		before := len(rep.Errors)
		if d.SerialNumber, err = domain.NormalizeSerial(get(rec, "serial_number")); err != nil {
			bad("serial_number", err.Error())
		}
		if d.Vendor == "" {
			bad("vendor", "vendor is required")
		}
		if d.EquipmentType == "" {
			bad("equipment_type", "equipment_type is required")
		}
		if p := strings.ToLower(get(rec, "platform")); p != "" {
			switch domain.Platform(p) {
			case domain.PlatformMacOS, domain.PlatformWindows, domain.PlatformLinux, domain.PlatformIOS, domain.PlatformOther:
				d.Platform = domain.Platform(p)
			default:
				bad("platform", fmt.Sprintf("platform %q is not macos, windows, linux, ios or other", p))
			}
		}
		if s := get(rec, "purchase_date"); s != "" {
			pd, err := domain.ParseDate(s)
			if err != nil {
				bad("purchase_date", err.Error())
			} else {
				d.PurchaseDate = &pd
			}
		}
		if s := get(rec, "state"); s != "" {
			d.State = domain.DeviceState(strings.ToLower(s))
			if !importStates[d.State] {
				bad("state", fmt.Sprintf("state %q cannot be imported (use in_stock, assigned, in_use, ready_for_redeploy, retired or lost)", s))
			}
		}
		email := strings.ToLower(get(rec, "assigned_email"))
		if email != "" && d.State != domain.StateAssigned && d.State != domain.StateInUse {
			if get(rec, "state") == "" {
				d.State = domain.StateInUse
			} else {
				bad("assigned_email", "only an assigned or in_use device can have a holder")
			}
		}
		if email == "" && (d.State == domain.StateAssigned || d.State == domain.StateInUse) {
			bad("assigned_email", "an assigned or in_use device needs assigned_email")
		}
		key := d.Vendor + "/" + d.SerialNumber
		if prev, dup := seen[key]; dup && d.SerialNumber != "" {
			bad("serial_number", fmt.Sprintf("duplicate of row %d", prev))
		}
		seen[key] = n
		if len(rep.Errors) == before {
			rows = append(rows, importRow{row: n, dev: d, email: email})
		}
	}
	// Row checks against the database (existing serials, unknown employees).
	emails := map[string]string{}
	for _, ir := range rows {
		existing, err := store.FindDevicesBySerial(ctx, e.db.SQL, orgID, ir.dev.SerialNumber)
		if err != nil {
			return rep, err
		}
		for _, x := range existing {
			if x.Vendor == ir.dev.Vendor {
				rep.Errors = append(rep.Errors, RowError{Row: ir.row, Column: "serial_number", Message: "a device with this vendor and serial already exists"})
			}
		}
		if ir.email != "" {
			if _, ok := emails[ir.email]; ok {
				continue
			}
			emps, _, err := e.db.ListEmployees(ctx, orgID, store.EmployeeFilter{Email: ir.email}, store.Page{Limit: 2})
			if err != nil {
				return rep, err
			}
			if len(emps) != 1 {
				rep.Errors = append(rep.Errors, RowError{Row: ir.row, Column: "assigned_email", Message: "no employee with this work email"})
				continue
			}
			if emps[0].HR.Status == domain.StatusTerminated {
				rep.Errors = append(rep.Errors, RowError{Row: ir.row, Column: "assigned_email", Message: "employee is terminated"})
				continue
			}
			emails[ir.email] = emps[0].ID
		}
	}
	if len(rep.Errors) > 0 || dryRun {
		return rep, nil
	}
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, ir := range rows {
			d := ir.dev
			final := d.State
			if final == domain.StateAssigned || final == domain.StateInUse {
				d.State = domain.StateInStock
			}
			if err := store.CreateDevice(ctx, tx, &d); err != nil {
				return fmt.Errorf("row %d: %w", ir.row, err)
			}
			if ir.email != "" {
				if _, err := store.AssignDevice(ctx, tx, orgID, d.ID, emails[ir.email]); err != nil {
					return fmt.Errorf("row %d: %w", ir.row, err)
				}
				if final == domain.StateInUse {
					if _, err := store.TransitionDevice(ctx, tx, orgID, d.ID, domain.StateInUse); err != nil {
						return fmt.Errorf("row %d: %w", ir.row, err)
					}
				}
			}
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "assets.imported", "org", orgID, nil, map[string]int{"rows": len(rows)}))
	})
	if err != nil {
		return rep, err
	}
	rep.Imported = len(rows)
	return rep, nil
}

// ExportDevicesCSV writes every device of the org as CSV (the import layout).
func (e *Engine) ExportDevicesCSV(ctx context.Context, orgID string, w io.Writer) error {
	cw := newCSVWriter(w)
	if err := cw.Write(CSVColumns); err != nil {
		return err
	}
	emails := map[string]string{}
	page := store.Page{Limit: store.MaxLimit}
	for {
		devs, next, err := e.db.ListDevices(ctx, orgID, store.DeviceFilter{}, page)
		if err != nil {
			return err
		}
		for _, d := range devs {
			email := ""
			if d.AssignedEmployeeID != "" {
				if _, ok := emails[d.AssignedEmployeeID]; !ok {
					emp, err := e.db.GetEmployee(ctx, orgID, d.AssignedEmployeeID)
					if err != nil {
						return err
					}
					emails[d.AssignedEmployeeID] = emp.HR.WorkEmail
				}
				email = emails[d.AssignedEmployeeID]
			}
			pd := ""
			if d.PurchaseDate != nil {
				pd = d.PurchaseDate.String()
			}
			if err := cw.Write([]string{d.SerialNumber, d.Vendor, d.Model, string(d.Platform), d.EquipmentType, pd, string(d.State), email}); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
		page.Cursor = next
	}
	return cw.Flush()
}

// AssignInput assigns an equipment type + serial to an employee by hand.
type AssignInput struct {
	EmployeeID    string          `json:"employee_id"`
	SerialNumber  string          `json:"serial_number"`
	Vendor        string          `json:"vendor"`
	EquipmentType string          `json:"equipment_type"`
	Model         string          `json:"model,omitempty"`
	Platform      domain.Platform `json:"platform,omitempty"`
}

// AssignAsset assigns the device with this serial (created in stock if unknown) to an
// employee.
func (e *Engine) AssignAsset(ctx context.Context, orgID string, in AssignInput) (domain.Device, error) {
	serial, err := domain.NormalizeSerial(in.SerialNumber)
	if err != nil {
		return domain.Device{}, fmt.Errorf("%w: %v", store.ErrInvalidInput, err)
	}
	vendor := domain.NormalizeVendor(in.Vendor)
	if vendor == "" || in.EquipmentType == "" || in.EmployeeID == "" {
		return domain.Device{}, fmt.Errorf("%w: employee_id, vendor and equipment_type are required", store.ErrInvalidInput)
	}
	var out domain.Device
	err = e.db.InTx(ctx, func(tx *sql.Tx) error {
		existing, err := store.FindDevicesBySerial(ctx, tx, orgID, serial)
		if err != nil {
			return err
		}
		var dev domain.Device
		for _, x := range existing {
			if x.Vendor == vendor {
				dev = x
			}
		}
		if dev.ID == "" {
			dev = domain.Device{OrgID: orgID, SerialNumber: serial, Vendor: vendor, Model: in.Model, Platform: in.Platform,
				EquipmentType: in.EquipmentType, State: domain.StateInStock}
			if err := store.CreateDevice(ctx, tx, &dev); err != nil {
				return err
			}
		} else if dev.EquipmentType != in.EquipmentType {
			return fmt.Errorf("%w: device %s is a %s, not a %s", store.ErrInvalidInput, serial, dev.EquipmentType, in.EquipmentType)
		}
		if out, err = store.AssignDevice(ctx, tx, orgID, dev.ID, in.EmployeeID); err != nil {
			return err
		}
		return store.EndStorage(ctx, tx, orgID, dev.ID, e.clock.Now())
	})
	return out, err
}
