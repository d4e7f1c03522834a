// Package apps grants and removes application access for employees during
// onboarding and offboarding. A Connector talks to one application (SCIM 2.0
// first); Rules decide which applications an employee should have from the
// department, role and member type that HR reports.
//
// Only controlplane/lifecycle and controlplane/server should import this
// package; it imports nothing from the rest of the control plane.
package apps

import (
	"errors"
	"fmt"
)

// Sentinel errors. Connectors wrap them so callers can decide whether to retry.
var (
	// ErrUnavailable means the target could not be reached or answered with a
	// server error / rate limit. The operation may succeed if retried.
	ErrUnavailable = errors.New("apps: target unavailable")
	// ErrNotFound means the account does not exist on the target (a missing group
	// is ErrRejected: the request cannot succeed as asked).
	ErrNotFound = errors.New("apps: not found")
	// ErrConflict means the target refused because of a uniqueness or version
	// conflict that a retry with fresh state did not resolve.
	ErrConflict = errors.New("apps: conflict")
	// ErrNotSupported means the connector cannot do this operation (HTTP 501
	// at the API edge).
	ErrNotSupported = errors.New("apps: operation not supported by connector")
)

// Person is what a connector needs to know about an employee.
type Person struct {
	// ExternalID is Lanyard's stable employee id, sent as SCIM externalId (the link).
	ExternalID string `json:"external_id"`
	// UserName is the login on the target, normally the work email.
	UserName   string `json:"user_name"`
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	Email      string `json:"email,omitempty"`
	Title      string `json:"title,omitempty"`
	Department string `json:"department,omitempty"`
	// AccountID is the id this app gave the person's account when Lanyard last saw
	// it (the grant step's result, or the account reconciliation listed). Connectors
	// that cannot look an account up by the link try it before the name, so an
	// account renamed in the app is still found.
	AccountID string `json:"account_id,omitempty"`
}

// RevokeMode says how access is removed.
type RevokeMode string

const (
	// RevokeDeactivate keeps the account but sets active=false (the default:
	// reversible for a rehire, keeps the target's audit trail).
	RevokeDeactivate RevokeMode = "deactivate"
	// RevokeDelete removes the account.
	RevokeDelete RevokeMode = "delete"
)

// Result is what happened on the target, recorded on the workflow step.
type Result struct {
	App       string `json:"app"`
	AccountID string `json:"account_id,omitempty"`
	// Action: created, linked (an existing account adopted or brought up to date),
	// unchanged, suspended, reactivated, deleted, absent.
	Action string   `json:"action"`
	Groups []string `json:"groups,omitempty"`
}

// Registry maps an application name (as used in rules) to its connector.
type Registry map[string]Connector

// Get returns the connector for app or an error naming the missing app.
func (r Registry) Get(app string) (Connector, error) {
	c, ok := r[app]
	if !ok {
		return nil, fmt.Errorf("apps: no connector configured for %q: %w", app, ErrNotFound)
	}
	return c, nil
}
