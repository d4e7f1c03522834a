package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Connector is one application's account directory as offboarding and onboarding
// need it. Every method is idempotent: Provision of an active member reports
// "unchanged", Suspend of a suspended account "unchanged", Suspend or Remove of a
// missing account "absent". Errors are *TargetError (or wrap one) so the caller can
// tell a retry from a manual task.
type Connector interface {
	// Capabilities says what this connector can do; the engine skips what it cannot
	// and says so on the step rather than reporting it done.
	Capabilities() Capabilities
	// Provision makes sure p has an active account that belongs to every named
	// group: it creates the account, or adopts an existing one (matched by
	// externalId, then user name/email, case-insensitively), links it to p
	// (externalId or the provider's equivalent) and brings the HR-owned attributes
	// (names, title, department) up to date. A suspended account is not
	// reactivated here: that is Reactivate's job, so a rehire is explicit.
	Provision(ctx context.Context, p Person, groups []string) (Result, error)
	// Find returns p's account, or an error wrapping ErrNotFound.
	Find(ctx context.Context, p Person) (Account, error)
	// Suspend blocks sign-in, ends every session where the provider can, and
	// removes what the connector's settings say goes at suspension (groups,
	// licenses). Result.Action: suspended, unchanged or absent.
	Suspend(ctx context.Context, p Person) (Result, error)
	// Reactivate undoes Suspend (a canceled termination or a rehire).
	Reactivate(ctx context.Context, p Person) (Result, error)
	// Remove deletes the account (RevokeDelete), or reports absent.
	Remove(ctx context.Context, p Person) (Result, error)
	// List calls fn for every account on the target, for reconciliation. It stops
	// at the first error fn returns.
	List(ctx context.Context, fn func(Account) error) error
}

// Capabilities are what a connector can do on its provider.
type Capabilities struct {
	Provision      bool `json:"provision"`
	Suspend        bool `json:"suspend"`
	RevokeSessions bool `json:"revoke_sessions"`
	Reactivate     bool `json:"reactivate"`
	Remove         bool `json:"remove"`
	Groups         bool `json:"groups"`
	Licenses       bool `json:"licenses,omitempty"`
	TransferData   bool `json:"transfer_data,omitempty"`
	List           bool `json:"list"`
}

// Account is an account as the target reports it.
type Account struct {
	ID         string `json:"id"`
	UserName   string `json:"user_name"`
	Email      string `json:"email,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	// Active is nil when the target did not say (a SCIM resource without
	// "active"): unknown is not false.
	Active *bool    `json:"active,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// IsActive reports whether the account is known to be active.
func (a Account) IsActive() bool { return a.Active != nil && *a.Active }

// Sentinels beside ErrUnavailable/ErrNotFound/ErrConflict/ErrNotSupported.
var (
	// ErrRejected means the target refused the request as invalid (400, 409
	// uniqueness, a missing group): retrying the same request cannot help.
	ErrRejected = errors.New("apps: rejected by target")
	// ErrAuth means the credentials were refused (expired, revoked, missing
	// scope): a person must fix the connector.
	ErrAuth = errors.New("apps: credentials refused")
)

// TargetError is a failed call to a provider, with the provider's own words.
type TargetError struct {
	App    string // the connector's app name
	Op     string // "provision", "suspend", ... or the HTTP method and path
	Status int    // HTTP status, 0 when the request never got an answer
	Code   string // the provider's error code (scimType, Google reason, Graph code)
	Detail string // the provider's message, verbatim (trimmed)
	// RetryAfter is the provider's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Kind is one of the sentinels above; it decides retry versus manual task.
	Kind error
	Err  error // the underlying transport error, if any
}

func (e *TargetError) Error() string {
	s := e.App + ": " + e.Op
	if e.Status != 0 {
		s += fmt.Sprintf(": HTTP %d", e.Status)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap exposes both the classification and the transport error to errors.Is.
func (e *TargetError) Unwrap() []error {
	out := []error{}
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// ClassifyStatus maps an HTTP status to a sentinel: 401/403 ErrAuth, 404
// ErrNotFound, 409/412 ErrConflict-or-rejected (the caller decides after a fresh
// read), 429 and 5xx ErrUnavailable, other 4xx ErrRejected. Providers with their
// own codes (Google's 403 rateLimitExceeded) override before calling this.
func ClassifyStatus(status int) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrAuth
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrRejected
	case status == http.StatusPreconditionFailed:
		return ErrConflict
	case status == http.StatusNotImplemented:
		return ErrNotSupported
	case status == http.StatusTooManyRequests || status >= 500:
		return ErrUnavailable
	case status >= 400:
		return ErrRejected
	}
	return nil
}

// IsTransient reports whether err is worth retrying unchanged: the target was
// unreachable, throttled or failing (ErrUnavailable), or the call timed out.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te *TargetError
	if errors.As(err, &te) {
		return te.Kind == nil && te.Status == 0 // no answer at all: network trouble
	}
	return false
}

// Spec is one stored connector configuration, handed to a Builder.
type Spec struct {
	App     string
	Kind    string // "scim", "google", "entra", "slack", "github", "okta"
	BaseURL string // the provider's API base; empty means the provider's public default
	// Settings is the kind's own JSON settings (domain, tenant, groups to drop ...).
	Settings json.RawMessage
	// Auth is how the connector authenticates: bearer (default), basic or oauth
	// (client credentials); kinds with one fixed scheme ignore it.
	Auth string
	// Secret is the opened credential (token, client secret, service account key).
	Secret []byte
	// HTTPClient is the client to use (tests and the demo point it at fakes by
	// BaseURL; nil means the connector's default with a timeout).
	HTTPClient *http.Client
}

// Builder makes a Connector from a Spec. The server wires one per kind.
type Builder func(ctx context.Context, s Spec) (Connector, error)
