package api

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ProblemBase prefixes every problem type; the types are stable identifiers clients match on.
const ProblemBase = "https://lanyard.dev/problems/"

// Problem is an RFC 9457 problem detail. Handlers return it as an error; Detail is shown
// to the client, so it must never carry internal causes (those go in Cause, logged only).
type Problem struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Status     int            `json:"status"`
	Detail     string         `json:"detail,omitempty"`
	Instance   string         `json:"instance,omitempty"`
	Extensions map[string]any `json:"-"`
	Cause      error          `json:"-"`
	// Header is sent with the problem (Allow on a 405, WWW-Authenticate on a 401,
	// Retry-After on a 429): part of the contract, set where the problem is made.
	Header http.Header `json:"-"`
}

func (p *Problem) Error() string {
	if p.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", p.Title, p.Detail, p.Cause)
	}
	return p.Title + ": " + p.Detail
}

func (p *Problem) Unwrap() error { return p.Cause }

// MarshalJSON flattens extensions into the top-level object as RFC 9457 asks.
func (p *Problem) MarshalJSON() ([]byte, error) {
	m := map[string]any{"type": p.Type, "title": p.Title, "status": p.Status}
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	for k, v := range p.Extensions {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// With adds an extension member.
func (p *Problem) With(key string, v any) *Problem {
	if p.Extensions == nil {
		p.Extensions = map[string]any{}
	}
	p.Extensions[key] = v
	return p
}

// WithHeader adds a response header sent with the problem.
func (p *Problem) WithHeader(key, value string) *Problem {
	if p.Header == nil {
		p.Header = http.Header{}
	}
	p.Header.Add(key, value)
	return p
}

func newProblem(status int, slug, title, detail string) *Problem {
	return &Problem{Type: ProblemBase + slug, Title: title, Status: status, Detail: detail}
}

// Constructors for the problem types handlers use. The slug is the stable part.
func BadRequest(detail string) *Problem {
	return newProblem(http.StatusBadRequest, "bad-request", "Bad request", detail)
}
func Unauthorized(detail string) *Problem {
	return newProblem(http.StatusUnauthorized, "unauthorized", "Unauthorized", detail)
}

// ReauthRequired asks a console session to prove the person again before a secret reveal.
func ReauthRequired(detail string) *Problem {
	return newProblem(http.StatusUnauthorized, "reauth-required", "Re-authentication required", detail)
}

// MethodNotAllowed answers a known path asked with a method it does not serve; allow
// lists the methods it does (RFC 9110 section 15.5.6 makes the Allow header mandatory).
func MethodNotAllowed(detail string, allow []string) *Problem {
	return newProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed", detail).
		With("allow", allow).WithHeader("Allow", strings.Join(allow, ", "))
}

// TooManyRequests asks the caller to wait retryAfter seconds (sent as Retry-After).
func TooManyRequests(detail string, retryAfter int) *Problem {
	return newProblem(http.StatusTooManyRequests, "too-many-requests", "Too many requests", detail).
		WithHeader("Retry-After", strconv.Itoa(retryAfter))
}

func Forbidden(detail string) *Problem {
	return newProblem(http.StatusForbidden, "forbidden", "Forbidden", detail)
}
func NotFound(detail string) *Problem {
	return newProblem(http.StatusNotFound, "not-found", "Not found", detail)
}
func Conflict(detail string) *Problem {
	return newProblem(http.StatusConflict, "conflict", "Conflict", detail)
}
func Unprocessable(detail string) *Problem {
	return newProblem(http.StatusUnprocessableEntity, "validation", "Validation failed", detail)
}
func Unavailable(detail string) *Problem {
	return newProblem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail)
}

// PlanRequired is returned when the org's plan lacks a feature; it names the plan needed.
func PlanRequired(f domain.Feature, have domain.Plan) *Problem {
	need := f.RequiredPlan()
	return newProblem(http.StatusPaymentRequired, "plan-required", "Plan upgrade required",
		fmt.Sprintf("%s needs the %s plan or higher; this organization is on %s", f, need, have)).
		With("required_plan", need).With("current_plan", have).With("feature", f)
}

// HRManaged is returned when a client tries to edit a field owned by the HR system.
func HRManaged(field string) *Problem {
	return newProblem(http.StatusUnprocessableEntity, "hr-managed-field", "Field managed by the HR system",
		fmt.Sprintf("%q is managed by the HR system (Justworks) and is read-only in Lanyard; change it in the HR system", field)).
		With("field", field)
}

// IsUnavailable reports whether err means the database (or another dependency) cannot be
// reached: refused or dropped connections, a server shutting down, timeouts.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var netErr *net.OpError
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is "connection exception"; 57P0x is the server shutting down.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P0")
	}
	return errors.As(err, &netErr) || errors.As(err, &connErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) ||
		(err != nil && strings.Contains(err.Error(), "sql: database is closed"))
}

// toProblem is the one place domain and store errors become HTTP problems.
func toProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var te *domain.TransitionError
	switch {
	case errors.As(err, &te):
		return newProblem(http.StatusConflict, "invalid-transition", "Invalid state transition", te.Error()).
			With("from", te.From).With("to", te.To).With("allowed", domain.NextStates(te.From))
	case errors.Is(err, store.ErrNotFound):
		return NotFound("the resource does not exist in this organization")
	case errors.Is(err, store.ErrConflict):
		return &Problem{Type: ProblemBase + "conflict", Title: "Conflict", Status: http.StatusConflict, Detail: conflictDetail(err), Cause: err}
	case errors.Is(err, store.ErrInvalidInput):
		return &Problem{Type: ProblemBase + "bad-request", Title: "Bad request", Status: http.StatusBadRequest, Detail: err.Error(), Cause: err}
	case IsUnavailable(err):
		return &Problem{Type: ProblemBase + "unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: "a dependency (database) is unavailable; retry shortly", Cause: err}
	}
	return &Problem{Type: ProblemBase + "internal", Title: "Internal error", Status: http.StatusInternalServerError,
		Detail: "an internal error occurred; quote the request id when reporting it", Cause: err}
}

// conflictDetail shows store conflict messages: they name the resource, not internals.
func conflictDetail(err error) string { return err.Error() }

// WriteProblem renders err as application/problem+json.
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := toProblem(err)
	rid := RequestID(r.Context())
	out := *p
	out.Instance = r.URL.Path
	out.With("request_id", rid)
	if p.Status >= 500 {
		slog.Default().ErrorContext(r.Context(), "request failed", "component", "api", "request_id", rid,
			"method", r.Method, "path", r.URL.Path, "status", p.Status, "err", err)
	}
	for k, vs := range p.Header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/problem+json")
	if p.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(&out)
}
