// Package api is Lanyard's REST admin API: the route framework (auth, roles, plan gates,
// problem+json, OpenAPI generated from the route table) and the core routes. It depends on
// the Store interface below, never on the server type; capabilities contribute their own
// routes as []Route.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// HandlerFunc handles a request; a returned error becomes problem+json.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Param documents a query parameter. Routes with several filters use QueryOf instead;
// Param is for the one or two a handler reads itself, typed so clients can rely on them.
type Param struct {
	Name        string
	Description string
	Type        string   // "string" (when empty), "integer" or "boolean"
	Format      string   // e.g. "date-time", "date"
	Pattern     string   // a regular expression the value matches
	Enum        []string // the values a string takes
	Min, Max    *int     // bounds of an integer
}

// PageParams are the ?limit= and ?cursor= that PageFrom reads.
func PageParams() []Param {
	one, most := 1, store.MaxLimit
	return []Param{
		{Name: "limit", Description: "page size (default 50)", Type: "integer", Min: &one, Max: &most},
		{Name: "cursor", Description: "from next_cursor"},
	}
}

// BoolParam is a true/false query parameter.
func BoolParam(name, description string) Param {
	return Param{Name: name, Description: description, Type: "boolean"}
}

// EnumParam is a string query parameter taking one of values.
func EnumParam(name, description string, values ...string) Param {
	return Param{Name: name, Description: description, Enum: values}
}

// schema is the parameter's OpenAPI schema.
func (p Param) schema() map[string]any {
	t := p.Type
	if t == "" {
		t = "string"
	}
	s := map[string]any{"type": t}
	if p.Format != "" {
		s["format"] = p.Format
	}
	if p.Pattern != "" {
		s["pattern"] = p.Pattern
	}
	if p.Enum != nil {
		s["enum"] = p.Enum
	}
	if p.Min != nil {
		s["minimum"] = *p.Min
	}
	if p.Max != nil {
		s["maximum"] = *p.Max
	}
	return s
}

// Route is one endpoint. The route table is the single source for the mux, the OpenAPI
// document, and the generated tenant-isolation and role tests.
type Route struct {
	Method  string
	Path    string // Go mux pattern, e.g. /api/v1/devices/{id}
	Summary string
	Tag     string
	// Role is the minimum role; ignored for Public routes.
	Role    domain.Role
	Feature domain.Feature
	// Public routes skip token auth (webhooks, enrollment); they authenticate themselves.
	Public bool
	// Reauth marks a secret reveal: a console session must have proved the person again
	// (password + TOTP or SSO) within ReauthWindow.
	Reauth bool
	// Resource names what the path's {id} refers to (for the isolation test and docs).
	Resource string
	Query    []Param
	// QueryOf is the zero value of a struct declaring typed query parameters (see
	// DecodeQuery); OpenAPI documents them after Query.
	QueryOf  any
	Request  any // zero value of the JSON body type, or nil
	Response any // zero value of the success body type, or nil for no body
	Status   int // success status; 200 when zero
	Handler  HandlerFunc
}

// Principal is the authenticated caller: a person signed in to the console (Via "session")
// or an API token (Via "token"), which belongs to a person too once tokens have owners.
type Principal struct {
	OrgID   string
	Org     domain.Org
	TokenID string
	Role    domain.Role
	// UserID is the person behind the call; the two-person rule compares it.
	UserID    string
	UserEmail string
	SessionID string
	Via       string // "token" or "session"
	// ReauthAt is a session's last password/TOTP/SSO proof (zero for tokens).
	ReauthAt time.Time
}

// ReauthWindow is how recent a session's last proof must be for a Reauth route.
const ReauthWindow = 5 * time.Minute

// Actor is the audit name of the caller: the token for token calls (so audit history from
// before tokens had owners stays joined), the person for console sessions.
func (p Principal) Actor() string {
	if p.Via == "session" && p.UserID != "" {
		return "user:" + p.UserID
	}
	return "token:" + p.TokenID
}

type principalKey struct{}
type requestIDKey struct{}

// PrincipalFrom returns the caller of an authenticated route.
func PrincipalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// WithPrincipal is for tests of handlers outside this package.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// RequestID returns the request's id (echoed in X-Request-Id and in problems).
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// Store is what the core routes need from persistence; *store.DB implements it.
type Store interface {
	AuthenticateToken(ctx context.Context, secret string) (store.Token, error)
	GetOrg(ctx context.Context, id string) (domain.Org, error)
	UpdateOrg(ctx context.Context, o domain.Org) (domain.Org, error)
	CreateTokenFor(ctx context.Context, nt store.NewToken) (store.Token, string, error)
	ListTokens(ctx context.Context, orgID string, p store.Page) ([]store.Token, string, error)
	RevokeToken(ctx context.Context, orgID, id string) (store.Token, error)
	GetEmployee(ctx context.Context, orgID, id string) (domain.Employee, error)
	SearchEmployees(ctx context.Context, orgID string, q store.EmployeeQuery) (store.EmployeePage, error)
	PatchEmployeeLocal(ctx context.Context, orgID, id string, p store.EmployeeLocalPatch) (domain.Employee, error)
	CreateDevice(ctx context.Context, d *domain.Device) error
	GetDevice(ctx context.Context, orgID, id string) (domain.Device, error)
	SearchDevices(ctx context.Context, orgID string, q store.DeviceQuery) (store.DevicePage, error)
	PatchDevice(ctx context.Context, orgID, id string, p store.DevicePatch) (domain.Device, error)
	AssignDevice(ctx context.Context, orgID, deviceID, employeeID string) (domain.Device, error)
	UnassignDevice(ctx context.Context, orgID, deviceID string) (domain.Device, error)
	TransitionDevice(ctx context.Context, orgID, deviceID string, to domain.DeviceState) (domain.Device, error)
	ListAssignments(ctx context.Context, orgID, deviceID, employeeID string, p store.Page) ([]domain.Assignment, string, error)
	ListAudit(ctx context.Context, orgID string, f store.AuditFilter, p store.Page) ([]domain.AuditEntry, string, error)
}

// ReadyCheck reports whether a dependency is ready; a non-nil error fails /readyz.
// Warnings (e.g. an APNs certificate near expiry) are returned by WarningCheck.
type ReadyCheck func(ctx context.Context) error

// WarningCheck returns human-readable warnings shown on /readyz without failing it.
type WarningCheck func(ctx context.Context) []string

// Options configure a Server.
type Options struct {
	Store    Store
	Ready    []ReadyCheck
	Warnings []WarningCheck
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Version  string
	// Detailers add capability views (tracking, MDM) to GET /devices/{id}.
	Detailers []DeviceDetailer
	// AuthFailureBurst failed authentications per source IP are answered 401; past it,
	// 429 until the budget refills at one per AuthFailureEvery. Defaults 20 and 3s.
	AuthFailureBurst int
	AuthFailureEvery time.Duration
	// Now is the clock of the failed-auth limiter (tests); time.Now when nil.
	Now func() time.Time
}

// Server is the admin HTTP API.
type Server struct {
	opts    Options
	mux     *http.ServeMux
	routes  []Route
	ready   atomic.Bool
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
	// authFails counts failed authentications by outcome (rejected = 401, limited = 429).
	authFails *prometheus.CounterVec
	limiter   *authLimiter
}

// New builds the API from the core routes plus every capability's routes.
func New(opts Options, extra ...[]Route) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.ready.Store(true)
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lanyard_http_requests_total", Help: "Admin API requests."},
		[]string{"route", "status"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lanyard_http_request_seconds", Help: "Admin API latency.",
		Buckets: prometheus.DefBuckets}, []string{"route"})
	s.authFails = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lanyard_http_auth_failures_total",
		Help: "Admin API requests with a missing or bad token, by outcome (rejected: 401, limited: 429)."}, []string{"outcome"})
	opts.Registry.MustRegister(s.reqs, s.latency, s.authFails)
	s.limiter = newAuthLimiter(opts.AuthFailureBurst, opts.AuthFailureEvery, opts.Now)

	s.routes = append(s.routes, coreRoutes(opts.Store, opts.Detailers...)...)
	for _, rs := range extra {
		s.routes = append(s.routes, rs...)
	}
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	s.mux.HandleFunc("GET /api/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		_ = JSON(w, http.StatusOK, s.OpenAPI())
	})
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_ = JSON(w, http.StatusOK, map[string]string{"status": "ok", "version": opts.Version})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", s.noRoute)
	return s
}

// probeMethods are the methods tried to tell a wrong method (405) from an unknown path (404).
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// noRoute answers what no pattern took. The catch-all "/" pattern matches every method,
// so the mux never reaches its own 405; instead ask the mux which other methods it would
// route this path for, which keeps its precedence rules (wildcards, {x...}) exact.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	r = withRequestID(r)
	var allow []string
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if allow == nil {
		WriteProblem(w, r, NotFound("no route "+r.Method+" "+r.URL.Path))
		return
	}
	WriteProblem(w, r, MethodNotAllowed(r.URL.Path+" does not answer "+r.Method, allow))
}

// Routes returns the route table (for the OpenAPI document and generated tests).
func (s *Server) Routes() []Route { return s.routes }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// WatchReadiness re-runs the ready checks every interval until ctx ends, so requests get a
// fast 503 while the database is down and recover on their own when it returns.
func (s *Server) WatchReadiness(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := s.checkReady(ctx)
		was := s.ready.Swap(err == nil)
		if was && err != nil {
			s.opts.Logger.Warn("not ready; admin API answers 503 until it recovers", "component", "api", "err", err)
		} else if !was && err == nil {
			s.opts.Logger.Info("ready again", "component", "api")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) checkReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, c := range s.opts.Ready {
		if err := c(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	var warnings []string
	for _, wc := range s.opts.Warnings {
		warnings = append(warnings, wc(r.Context())...)
	}
	if warnings == nil {
		warnings = []string{}
	}
	if err := s.checkReady(r.Context()); err != nil {
		_ = JSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "error": err.Error(), "warnings": warnings})
		return
	}
	_ = JSON(w, http.StatusOK, map[string]any{"status": "ready", "warnings": warnings})
}

func withRequestID(r *http.Request) *http.Request {
	rid := r.Header.Get("X-Request-Id")
	if rid == "" || len(rid) > 64 || strings.ContainsFunc(rid, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		rid = hex.EncodeToString(b)
	}
	return r.WithContext(context.WithValue(r.Context(), requestIDKey{}, rid))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (streaming).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) wrap(rt Route) http.Handler {
	name := rt.Method + " " + rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r = withRequestID(r)
		w.Header().Set("X-Request-Id", RequestID(r.Context()))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				s.opts.Logger.Error("panic in handler", "component", "api", "route", name, "panic", v, "request_id", RequestID(r.Context()))
				if sw.status == 0 {
					WriteProblem(sw, r, errors.New("panic"))
				}
			}
			s.reqs.WithLabelValues(name, strconv.Itoa(sw.status)).Inc()
			s.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		// Readiness first: while the database is down even authentication cannot work,
		// and the caller should see a retryable 503, not a 401 or 500.
		if !s.ready.Load() {
			WriteProblem(sw, r, Unavailable("the database is unavailable; retry shortly"))
			return
		}
		if err := s.authorize(rt, &r); err != nil {
			WriteProblem(sw, r, err)
			return
		}
		if err := checkParams(r, rt.Query); err != nil {
			WriteProblem(sw, r, err)
			return
		}
		if err := rt.Handler(sw, r); err != nil {
			if sw.status != 0 {
				s.opts.Logger.Error("handler failed after writing", "component", "api", "route", name, "err", err)
				return
			}
			WriteProblem(sw, r, err)
		}
	})
}

// authorize authenticates the bearer token, loads its org, and applies the role and plan
// checks, in that order, before any body is read.
func (s *Server) authorize(rt Route, rp **http.Request) error {
	r := *rp
	if p, ok := r.Context().Value(inProcessKey{}).(Principal); ok && !rt.Public {
		return s.admit(rt, rp, p)
	}
	if rt.Public {
		*rp = r.WithContext(domain.WithActor(r.Context(), domain.Actor{ID: "public:" + rt.Path, RequestID: RequestID(r.Context())}))
		return nil
	}
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(secret) == "" {
		// RFC 6750 section 3.1: a request without credentials gets the challenge and no error code.
		return s.authFailed(r, Unauthorized("send an API token as `Authorization: Bearer <token>`").
			WithHeader("WWW-Authenticate", `Bearer realm="lanyard"`))
	}
	tok, err := s.opts.Store.AuthenticateToken(r.Context(), strings.TrimSpace(secret))
	if errors.Is(err, store.ErrTokenInvalid) {
		return s.authFailed(r, invalidToken("the token is unknown, expired or revoked"))
	}
	if err != nil {
		return err
	}
	p := Principal{OrgID: tok.OrgID, TokenID: tok.ID, Role: tok.Role, Via: "token"}
	if tok.UserID != "" {
		// A token acts for its owner and never above them: a demoted person's tokens are
		// demoted with them, a removed person's tokens stop working.
		if tok.Owner == nil || !tok.Owner.Active {
			return s.authFailed(r, invalidToken("the token's owner has been removed from the organization"))
		}
		p.UserID, p.UserEmail = tok.UserID, tok.Owner.Email
		if !tok.Owner.Role.AtLeast(tok.Role) {
			p.Role = tok.Owner.Role
		}
	}
	if p.Org, err = s.opts.Store.GetOrg(r.Context(), tok.OrgID); err != nil {
		return err
	}
	return s.admit(rt, rp, p)
}

// invalidToken is a 401 for a token that was sent but does not authenticate.
func invalidToken(detail string) *Problem {
	return Unauthorized(detail).WithHeader("WWW-Authenticate", `Bearer realm="lanyard", error="invalid_token"`)
}

// authFailed counts a failed authentication against the caller's source and turns the
// 401 into a 429 once the source is over its budget. The token is never logged: only the
// source address and that it crossed the limit.
func (s *Server) authFailed(r *http.Request, p *Problem) error {
	ip := sourceIP(r)
	limited, retry, crossed := s.limiter.fail(ip)
	if !limited {
		s.authFails.WithLabelValues("rejected").Inc()
		return p
	}
	s.authFails.WithLabelValues("limited").Inc()
	if crossed {
		s.opts.Logger.Warn("failed authentications over the limit; answering 429", "component", "api",
			"source_ip", ip, "request_id", RequestID(r.Context()))
	}
	return TooManyRequests("too many failed authentications from this address; retry later", retry)
}

// admit applies the role and plan checks to an authenticated caller and puts it in the
// request context. Token and in-process (console) calls both pass here: one rule, one place.
func (s *Server) admit(rt Route, rp **http.Request, p Principal) error {
	r := *rp
	if !p.Role.AtLeast(rt.Role) {
		return Forbidden("this action needs the "+string(rt.Role)+" role; you have "+string(p.Role)).
			With("required_role", rt.Role)
	}
	if !p.Org.Plan.Allows(rt.Feature) {
		return PlanRequired(rt.Feature, p.Org.Plan)
	}
	if rt.Reauth && p.Via == "session" && time.Since(p.ReauthAt) > ReauthWindow {
		return ReauthRequired("revealing this secret needs you to confirm your password (and code) again; the last check was more than 5 minutes ago")
	}
	ctx := context.WithValue(r.Context(), principalKey{}, p)
	ctx = domain.WithActor(ctx, domain.Actor{ID: p.Actor(), UserID: p.UserID, RequestID: RequestID(r.Context())})
	*rp = r.WithContext(ctx)
	return nil
}
