// Package apps grants and removes application access for employees during
// onboarding and offboarding. A Connector talks to one application (SCIM 2.0
// first); Rules decide which applications an employee should have from the
// department, role and member type that HR reports.
//
// Only controlplane/lifecycle and controlplane/server should import this
// package; it imports nothing from the rest of the control plane.
package apps

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Connectors wrap them so callers can decide whether to retry.
var (
	// ErrUnavailable means the target could not be reached or answered with a
	// server error / rate limit. The operation may succeed if retried.
	ErrUnavailable = errors.New("apps: target unavailable")
	// ErrNotFound means the account or group does not exist on the target.
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
	// ExternalID is Lanyard's stable employee id, sent as SCIM externalId.
	ExternalID string `json:"external_id"`
	// UserName is the login on the target, normally the work email.
	UserName   string `json:"user_name"`
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	Email      string `json:"email,omitempty"`
	Title      string `json:"title,omitempty"`
	Department string `json:"department,omitempty"`
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
	App       string   `json:"app"`
	AccountID string   `json:"account_id,omitempty"`
	Action    string   `json:"action"` // created, reactivated, unchanged, deactivated, deleted, absent
	Groups    []string `json:"groups,omitempty"`
}

// GrantRevoker is the SCIM-era connector shape the lifecycle engine still calls;
// Connector (connector.go) replaces it. Implementations must be idempotent: Grant
// on an existing active member of the groups reports "unchanged"; Revoke of a
// missing account reports "absent".
type GrantRevoker interface {
	// Grant makes sure the person has an active account that is a member of
	// every named group (groups the connector cannot find are an error).
	Grant(ctx context.Context, p Person, groups []string) (Result, error)
	// Revoke removes access according to mode.
	Revoke(ctx context.Context, p Person, mode RevokeMode) (Result, error)
}

// Lookup is an optional capability: a connector that can tell whether a
// person currently has an account (used by offboarding dry-run).
type Lookup interface {
	Lookup(ctx context.Context, p Person) (accountID string, active bool, err error)
}

// Registry maps an application name (as used in rules) to its connector.
type Registry map[string]GrantRevoker

// Get returns the connector for app or an error naming the missing app.
func (r Registry) Get(app string) (GrantRevoker, error) {
	c, ok := r[app]
	if !ok {
		return nil, fmt.Errorf("apps: no connector configured for %q: %w", app, ErrNotFound)
	}
	return c, nil
}
