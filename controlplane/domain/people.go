package domain

import "time"

// EmploymentStatus mirrors the HR system's view of a person.
type EmploymentStatus string

const (
	StatusPending    EmploymentStatus = "pending" // hired, start date in the future
	StatusActive     EmploymentStatus = "active"
	StatusTerminated EmploymentStatus = "terminated"
)

// MemberType is the HR classification of a person.
type MemberType string

const (
	MemberFullTime   MemberType = "full_time"
	MemberPartTime   MemberType = "part_time"
	MemberContractor MemberType = "contractor"
)

// Address is a postal address from HR.
type Address struct {
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// Employee is a person in an organization. The HR block is owned by the HR system and
// written only by the HR sync; the rest is Lanyard's.
type Employee struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
	// Source is the HR provider ("justworks") or "manual".
	Source string `json:"source"`
	// ExternalID is the HR provider's identity key (the Justworks member id), never the email.
	ExternalID string `json:"external_id,omitempty"`

	HR HRFields `json:"hr"`

	// Lanyard-owned fields, editable through the API.
	EquipmentType string `json:"equipment_type,omitempty"`
	Notes         string `json:"notes,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// HRFields are read-only in Lanyard: the API rejects edits to them.
type HRFields struct {
	FirstName       string           `json:"first_name"`
	LastName        string           `json:"last_name"`
	WorkEmail       string           `json:"work_email,omitempty"`
	PersonalEmail   string           `json:"personal_email,omitempty"`
	Phone           string           `json:"phone,omitempty"`
	Address         Address          `json:"address"`
	Title           string           `json:"title,omitempty"`
	Status          EmploymentStatus `json:"status"`
	Departments     []string         `json:"departments"`
	MemberType      MemberType       `json:"member_type,omitempty"`
	International   bool             `json:"international"`
	StartDate       *Date            `json:"start_date,omitempty"`
	TerminationDate *Date            `json:"termination_date,omitempty"`
	// SourceUpdatedAt is the HR system's updated_at; the sync never applies an older record.
	SourceUpdatedAt *time.Time `json:"source_updated_at,omitempty"`
}

// HRFieldNames lists the JSON names of HR-managed fields, so the API can name the
// offending one when a client tries to edit it.
var HRFieldNames = []string{
	"first_name", "last_name", "work_email", "personal_email", "phone", "address", "title",
	"status", "departments", "member_type", "international", "start_date", "termination_date",
	"hr", "external_id", "source",
}
