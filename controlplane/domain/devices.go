package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// DeviceState is a device's place in its lifecycle (DESIGN.md "Devices").
type DeviceState string

const (
	StateOrdered          DeviceState = "ordered"
	StateInTransit        DeviceState = "in_transit"
	StateInStock          DeviceState = "in_stock"
	StateAssigned         DeviceState = "assigned"
	StateInUse            DeviceState = "in_use"
	StateRetrievalReq     DeviceState = "retrieval_requested"
	StateInRetrieval      DeviceState = "in_retrieval"
	StateReceived         DeviceState = "received"
	StateCleaning         DeviceState = "cleaning"
	StateReadyForRedeploy DeviceState = "ready_for_redeploy"
	StateLost             DeviceState = "lost"
	StateRetired          DeviceState = "retired"
)

// transitions is the whole state machine. Assignment and unassignment are transitions too
// (to and from "assigned"), so every path a device can take is in this one table.
var transitions = map[DeviceState][]DeviceState{
	StateOrdered:          {StateInTransit, StateInStock, StateLost},
	StateInTransit:        {StateInStock, StateLost},
	StateInStock:          {StateAssigned, StateRetired, StateLost},
	StateAssigned:         {StateInUse, StateInStock, StateRetrievalReq, StateLost},
	StateInUse:            {StateRetrievalReq, StateLost},
	StateRetrievalReq:     {StateInRetrieval, StateReceived, StateLost, StateInUse},
	StateInRetrieval:      {StateReceived, StateLost},
	StateReceived:         {StateCleaning, StateRetired},
	StateCleaning:         {StateReadyForRedeploy, StateRetired},
	StateReadyForRedeploy: {StateAssigned, StateRetired, StateLost},
	StateLost:             {StateReceived, StateRetired},
	StateRetired:          nil,
}

// AllDeviceStates lists every state in lifecycle order.
var AllDeviceStates = []DeviceState{
	StateOrdered, StateInTransit, StateInStock, StateAssigned, StateInUse, StateRetrievalReq,
	StateInRetrieval, StateReceived, StateCleaning, StateReadyForRedeploy, StateLost, StateRetired,
}

// Valid reports whether s is a known state.
func (s DeviceState) Valid() bool { _, ok := transitions[s]; return ok }

// CanTransition reports whether from → to is allowed.
func CanTransition(from, to DeviceState) bool { return slices.Contains(transitions[from], to) }

// NextStates lists the states reachable from s.
func NextStates(s DeviceState) []DeviceState { return slices.Clone(transitions[s]) }

// Assignable reports whether a device in s can be given to a person.
func Assignable(s DeviceState) bool { return CanTransition(s, StateAssigned) }

// HoldsAssignment reports whether a device in s stays linked to its employee. The link
// lasts until the device is back in our hands.
func HoldsAssignment(s DeviceState) bool {
	switch s {
	case StateAssigned, StateInUse, StateRetrievalReq, StateInRetrieval, StateLost:
		return true
	}
	return false
}

// TransitionError says why a state change was refused.
type TransitionError struct{ From, To DeviceState }

func (e *TransitionError) Error() string {
	return fmt.Sprintf("device cannot go from %s to %s (allowed: %v)", e.From, e.To, transitions[e.From])
}

// CheckTransition returns a *TransitionError when from → to is not allowed.
func CheckTransition(from, to DeviceState) error {
	if !to.Valid() {
		return fmt.Errorf("unknown device state %q", to)
	}
	if !CanTransition(from, to) {
		return &TransitionError{From: from, To: to}
	}
	return nil
}

// Platform is the device's operating system family.
type Platform string

const (
	PlatformMacOS   Platform = "macos"
	PlatformWindows Platform = "windows"
	PlatformLinux   Platform = "linux"
	PlatformIOS     Platform = "ios"
	PlatformOther   Platform = "other"
)

// Device is one piece of equipment, identified by vendor + serial number.
type Device struct {
	ID                 string      `json:"id"`
	OrgID              string      `json:"org_id"`
	SerialNumber       string      `json:"serial_number"`
	Vendor             string      `json:"vendor"`
	Model              string      `json:"model,omitempty"`
	Platform           Platform    `json:"platform,omitempty"`
	EquipmentType      string      `json:"equipment_type"`
	PurchaseDate       *Date       `json:"purchase_date,omitempty"`
	State              DeviceState `json:"state"`
	AssignedEmployeeID string      `json:"assigned_employee_id,omitempty"`
	Notes              string      `json:"notes,omitempty"`
	// Version increments on every write; it guards concurrent updates.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Assignment is one period during which a device was held by an employee.
type Assignment struct {
	ID           string     `json:"id"`
	OrgID        string     `json:"org_id"`
	DeviceID     string     `json:"device_id"`
	EmployeeID   string     `json:"employee_id"`
	AssignedAt   time.Time  `json:"assigned_at"`
	UnassignedAt *time.Time `json:"unassigned_at,omitempty"`
	AssignedBy   string     `json:"assigned_by"`
	UnassignedBy string     `json:"unassigned_by,omitempty"`
}

// NormalizeSerial trims a serial number, upper-cases it (vendors print serials in upper
// case; agents and MDM sometimes report lower) and rejects what cannot be a serial.
func NormalizeSerial(s string) (string, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return "", errors.New("serial number is empty")
	}
	if len(s) > 64 {
		return "", errors.New("serial number is longer than 64 characters")
	}
	for _, r := range s {
		if unicode.IsControl(r) || !unicode.IsPrint(r) {
			return "", fmt.Errorf("serial number contains a control or non-printable character (%U)", r)
		}
	}
	return s, nil
}

// NormalizeVendor lower-cases a vendor name so "Apple" and "apple" are one vendor.
func NormalizeVendor(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
