// Package hris declares the HR-provider interface Lanyard syncs people from.
//
// A provider (Justworks today; BambooHR, Gusto, ... later) turns an OAuth2 grant
// into a Directory that lists and fetches members in one normalized shape, and
// parses the provider's webhooks. The sync engine (controlplane/hris/sync) only
// talks to these interfaces, so a new provider is one new package.
//
// Import rules: this package imports only the standard library; providers import
// it, never the other way round.
package hris

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors a Directory returns (wrapped with context). The sync engine
// decides from them whether to retry, restart a scan or end a connection.
var (
	// ErrNotFound: the member (or resource) does not exist at the provider.
	ErrNotFound = errors.New("hris: not found")
	// ErrReauthorize: the grant is gone (refresh token expired or revoked,
	// invalid_grant). Stop syncing, ask an admin to connect again, take no
	// offboarding action.
	ErrReauthorize = errors.New("hris: grant revoked or expired; re-authorization required")
	// ErrCompanyGone: the company no longer exists at the provider (left Justworks).
	ErrCompanyGone = errors.New("hris: company no longer available at provider")
	// ErrForbidden: the grant lacks a scope needed for the call.
	ErrForbidden = errors.New("hris: forbidden (missing scope)")
	// ErrStaleCursor: the provider rejected a pagination cursor; restart the scan.
	ErrStaleCursor = errors.New("hris: pagination cursor rejected")
	// ErrUnavailable: rate limited or server errors after all retries. A scan that
	// ends with it is partial.
	ErrUnavailable = errors.New("hris: provider unavailable")
	// ErrBadSignature / ErrStaleTimestamp: a webhook failed verification.
	ErrBadSignature   = errors.New("hris: bad webhook signature")
	ErrStaleTimestamp = errors.New("hris: webhook timestamp outside tolerance")
)

// FieldGroup says which groups of member fields the grant lets the provider
// return. A field that is omitted because its scope was not granted must not be
// read as "cleared" (EDGE_CASES 15).
type FieldGroup uint8

const (
	// FieldsBasic: name, work email, active flag, type.
	FieldsBasic FieldGroup = 1 << iota
	// FieldsDetail: addresses, phones, personal email, department, manager, title.
	FieldsDetail
	// FieldsEmployment: start/termination dates, employment type, history.
	FieldsEmployment
)

// Has reports whether every group in g2 is present in g.
func (g FieldGroup) Has(g2 FieldGroup) bool { return g&g2 == g2 }

// Address is a postal address; country is ISO 3166-1 alpha-2.
type Address struct {
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// IsZero reports whether no field is set.
func (a Address) IsZero() bool { return a == Address{} }

// Member types after normalization.
const (
	TypeFullTime   = "full_time"
	TypePartTime   = "part_time"
	TypeContractor = "contractor"
	TypeIntern     = "intern"
	TypeOther      = "other"
)

// Member is one person at the provider, normalized. Dates are "YYYY-MM-DD"
// (civil dates, no time zone) or empty.
type Member struct {
	ExternalID      string     `json:"external_id"` // provider's member id: the identity key
	CompanyID       string     `json:"company_id,omitempty"`
	WorkID          string     `json:"work_id,omitempty"`
	FirstName       string     `json:"first_name,omitempty"`
	LastName        string     `json:"last_name,omitempty"`
	PreferredName   string     `json:"preferred_name,omitempty"`
	WorkEmail       string     `json:"work_email,omitempty"`
	PersonalEmail   string     `json:"personal_email,omitempty"`
	Phone           string     `json:"phone,omitempty"`
	Address         Address    `json:"address,omitzero"`
	Title           string     `json:"title,omitempty"`
	Active          bool       `json:"active"`
	DepartmentID    string     `json:"department_id,omitempty"`
	DepartmentName  string     `json:"department_name,omitempty"`
	ManagerID       string     `json:"manager_id,omitempty"`
	StartDate       string     `json:"start_date,omitempty"`
	TerminationDate string     `json:"termination_date,omitempty"`
	MemberType      string     `json:"member_type,omitempty"`   // TypeFullTime, ...
	ProviderType    string     `json:"provider_type,omitempty"` // raw provider value, e.g. "international_employee"
	International   bool       `json:"international"`
	CreatedAt       time.Time  `json:"created_at,omitzero"`
	UpdatedAt       time.Time  `json:"updated_at,omitzero"`
	Fields          FieldGroup `json:"-"` // which field groups the grant covers
}

// Skipped is a record the provider returned that could not be parsed. It is
// reported, never fatal.
type Skipped struct {
	ExternalID string `json:"external_id,omitempty"` // when it could be read
	Reason     string `json:"reason"`
}

// Page is one page of a member listing.
type Page struct {
	Items      []Member
	Skipped    []Skipped
	NextCursor string // empty: last page
}

// ListOptions filters a member listing.
type ListOptions struct {
	Cursor       string
	Limit        int       // provider maximum applies
	UpdatedSince time.Time // zero: all; else updated_at >= UpdatedSince
	Status       string    // "", "active", "terminated"
}

// Department of the company.
type Department struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Company is the provider-side company a grant belongs to.
type Company struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Departments []Department `json:"departments"`
}

// Grant is an OAuth2 grant for one company, as persisted (encrypted) by the caller.
type Grant struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry"`
	Scopes       []string  `json:"scopes,omitempty"`
}

// HasScope reports whether s is in the granted scopes.
func (g Grant) HasScope(s string) bool {
	for _, x := range g.Scopes {
		if x == s {
			return true
		}
	}
	return false
}

// ParseScopes splits a space-separated scope string.
func ParseScopes(s string) []string { return strings.Fields(s) }

// TokenStore persists one connection's grant. Save is called with every new
// grant (refresh tokens may rotate); Load returns the latest saved one, which
// lets a replica pick up a refresh another replica already did.
type TokenStore interface {
	Load(ctx context.Context) (Grant, error)
	Save(ctx context.Context, g Grant) error
}

// Directory reads one company's people.
type Directory interface {
	ListMembers(ctx context.Context, opt ListOptions) (*Page, error)
	GetMember(ctx context.Context, id string) (*Member, error)
	GetCompany(ctx context.Context) (*Company, error)
}

// Event types after normalization.
const (
	EventMemberCreated        = "member.created"
	EventMemberUpdated        = "member.updated"
	EventTerminationScheduled = "member.termination_scheduled"
	EventTerminationCanceled  = "member.termination_canceled"
	EventDepartmentChanged    = "department.changed"
	EventUnknown              = "unknown"
)

// WebhookEvent is a verified, parsed webhook. Events are hints ("re-fetch member
// X"), never the source of truth.
type WebhookEvent struct {
	ID           string    // provider event id: the idempotency key
	Type         string    // one of the Event* constants
	ProviderType string    // raw event type
	MemberID     string    // set for member events
	DepartmentID string    // set for department events
	CreatedAt    time.Time // provider event time
}

// WebhookVerifier checks a webhook request's authenticity before any parsing.
type WebhookVerifier interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

// Webhook is a webhook subscription at the provider.
type Webhook struct {
	ID         string   `json:"id"`
	URL        string   `json:"url"`
	Status     string   `json:"status"` // "opened" or "closed"
	EventTypes []string `json:"event_types"`
}

// WebhookManager is an optional Directory capability: find webhooks the
// provider closed after failed deliveries and resume them (EDGE_CASES 13).
type WebhookManager interface {
	ListWebhooks(ctx context.Context, status string) ([]Webhook, error)
	ResumeWebhook(ctx context.Context, id string) error
}

// Provider is one HR system.
type Provider interface {
	Name() string
	// AuthCodeURL is where an admin is sent to approve access.
	AuthCodeURL(state string) string
	// Exchange turns an authorization code into a grant.
	Exchange(ctx context.Context, code string) (Grant, error)
	// Directory returns a reader that uses (and refreshes) the grant in ts.
	Directory(connID string, ts TokenStore) Directory
	// Revoke ends the grant at the provider (best effort by the caller).
	Revoke(ctx context.Context, g Grant) error
	// ParseWebhook parses a verified webhook body.
	ParseWebhook(body []byte) (WebhookEvent, error)
}
