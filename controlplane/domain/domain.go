// Package domain holds the core types every capability shares: organizations, plans and
// features, admin roles, employees, devices and their state machine, audit entries and events.
// It has no dependencies on storage or transport; store and api import it, never the reverse.
package domain

import (
	"time"

	"github.com/google/uuid"
)

// NewID returns a UUIDv7 string. v7 ids sort by creation time, so they double as the
// keyset for cursor pagination without a second index.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Now is the time source used when none is injected; always UTC so SQLite's text
// timestamps compare correctly.
func Now() time.Time { return time.Now().UTC() }

// Clock lets workflows and tests control time.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current UTC time.
func (SystemClock) Now() time.Time { return Now() }

// Org is a customer organization; every other row belongs to one.
type Org struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Plan      Plan        `json:"plan"`
	TimeZone  string      `json:"time_zone"`
	Settings  OrgSettings `json:"settings"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// OrgSettings are the per-organization switches. Capabilities add fields here; unknown
// fields are kept by JSON round trips because the column stores the whole object.
type OrgSettings struct {
	// IncludeInternational makes HR sync import international members (default US only).
	IncludeInternational bool `json:"include_international"`
	// WipeRequiresApproval makes a wipe wait for a second admin.
	WipeRequiresApproval bool `json:"wipe_requires_approval"`
	// WipeAllowBestEffort lets a wipe of a machine without full-disk encryption remove
	// the data it can find (evidence wipe_method best_effort) instead of failing with
	// "no crypto-erase possible". Default false: only a crypto-erase counts as a wipe.
	WipeAllowBestEffort bool `json:"wipe_allow_best_effort"`
	// OffboardingHour is the local hour (0-23) at which a scheduled offboarding runs.
	OffboardingHour int `json:"offboarding_hour"`
	// OnboardingLeadDays is how many days before the start date onboarding begins.
	OnboardingLeadDays int `json:"onboarding_lead_days"`
	// KeepEnrollmentSecret keeps a baked installer secret on the device after enrollment.
	KeepEnrollmentSecret bool `json:"keep_enrollment_secret"`
	// MassTerminationThresholdPct stops an HR sync that would terminate more than this
	// share of active members in one run (0 means the default of 20).
	MassTerminationThresholdPct int `json:"mass_termination_threshold_pct"`
	// SilentDays is how long a device may go unseen before the admins are prompted
	// (device.silent); 0 means the default of 7.
	SilentDays int `json:"silent_days"`
}

// Location returns the org's time zone, UTC when unset or unknown.
func (o Org) Location() *time.Location {
	if loc, err := time.LoadLocation(o.TimeZone); err == nil && o.TimeZone != "" {
		return loc
	}
	return time.UTC
}
