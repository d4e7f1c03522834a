// Package fakejustworks is a fake Justworks Partner API on real HTTP (loopback),
// shaped after the first-commit OpenAPI files in ../shared/ref/justworks. Tests
// and `make run` use it; it can be driven into every case of EDGE_CASES.md:
// short token lifetimes, refresh rotation, revocation and invalid_grant,
// members paging with stale cursors, mutations between pages, 429 with
// Retry-After, 5xx bursts, a company that left, and webhook delivery with
// signature headers including duplicates, reordering, delays, a wrong secret
// and stale timestamps.
//
// Undocumented shapes follow the guesses in API.md (emails {type, address},
// department {id, name}, error body {"error":{"code","message"}}).
// Everything is in memory; a Server is safe for concurrent use.
package fakejustworks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configures a fake server. The zero value works.
type Options struct {
	Addr         string // listen address; default 127.0.0.1:0
	ClientID     string // default "fake-client-id"
	ClientSecret string // default "fake-client-secret"
	CompanyID    string // default "co_fake"
	CompanyName  string // default "Acme Fake Co"

	AccessTTL  time.Duration // default 24 h
	RefreshTTL time.Duration // default 30 days
	// NoRotate keeps the refresh token on refresh (default: every refresh
	// returns a new refresh token and the old one becomes invalid_grant).
	NoRotate bool
	// ExpiresIn answers token requests with expires_in (seconds) instead of
	// the spec's expires_at.
	ExpiresIn bool
	// GrantScopes narrows the scopes granted at consent (default: what was asked).
	GrantScopes []string

	// Ordering of GET /v1/members: "updated_at" (default; keyset on
	// updated_at,id so a member edited mid-scan is seen again) or "offset"
	// (by id with offset cursors, so inserts shift pages).
	Ordering  string
	CursorTTL time.Duration // 0: cursors never expire (InvalidateCursors still works)

	// Tour enables POST /v1/webhooks/{id}/simulate.
	Tour bool
	// AutoDeliver sends webhook events in the background as they happen;
	// otherwise tests call Flush.
	AutoDeliver bool
	// MaxDeliveryFailures closes a webhook after this many consecutive
	// failed deliveries (default 5).
	MaxDeliveryFailures int

	Logger *slog.Logger
}

// Server is the fake.
type Server struct {
	opts Options
	log  *slog.Logger

	mu            sync.Mutex
	offset        time.Duration // fake clock = wall clock + offset
	companyActive bool
	departments   []Department
	members       map[string]*Member
	raw           map[string]json.RawMessage // malformed records served verbatim
	codes         map[string]*authCode
	access        map[string]*accessToken
	refresh       map[string]*refreshToken
	grants        map[string]*grant
	cursorEpoch   int
	cursorFault   CursorFault
	cursorFaulted int    // pages answered with a faulty cursor so far
	cycleA        string // cursors of a CursorCycle: the first two issued
	cycleB        string
	faults        []*Fault
	pageHook      func(page int)
	pages         int
	subs          []*subscription
	pending       []*pendingEvent
	chaos         Chaos
	requests      []Request
	stats         Stats
	seq           int

	kick chan struct{}
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	url  string
}

// Stats counts what clients did.
type Stats struct {
	TokenExchanges int
	TokenRefreshes int
	Revocations    int
	MemberPages    int
	MemberGets     int
	Deliveries     int
}

// Request is one logged API request.
type Request struct {
	Method string
	Path   string
	Query  string
	Status int
}

// Fault makes matching requests fail.
type Fault struct {
	Method     string // "" matches any
	Path       string // prefix of the request path
	Skip       int    // let this many matching requests through first
	Times      int    // fail this many (0 = 1)
	Status     int    // e.g. 429, 503
	RetryAfter string // Retry-After header value, if any
	Code       string // error code in the body
}

// Start runs a fake server on loopback until Close.
func Start(opts Options) (*Server, error) {
	s := New(opts)
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakejustworks: listen: %w", err)
	}
	s.ln = ln
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	if opts.AutoDeliver {
		go s.deliverLoop()
	}
	return s, nil
}

// New returns an unstarted server (use Handler to mount it yourself).
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = "fake-client-id"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "fake-client-secret"
	}
	if opts.CompanyID == "" {
		opts.CompanyID = "co_fake"
	}
	if opts.CompanyName == "" {
		opts.CompanyName = "Acme Fake Co"
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = 24 * time.Hour
	}
	if opts.RefreshTTL <= 0 {
		opts.RefreshTTL = 30 * 24 * time.Hour
	}
	if opts.MaxDeliveryFailures <= 0 {
		opts.MaxDeliveryFailures = 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		opts:          opts,
		log:           opts.Logger.With("component", "fakejustworks"),
		companyActive: true,
		departments:   slices.Clone(defaultDepartments),
		members:       map[string]*Member{},
		raw:           map[string]json.RawMessage{},
		codes:         map[string]*authCode{},
		access:        map[string]*accessToken{},
		refresh:       map[string]*refreshToken{},
		grants:        map[string]*grant{},
		kick:          make(chan struct{}, 1),
		done:          make(chan struct{}),
	}
}

// URL is the base URL (API, token and revoke endpoints).
func (s *Server) URL() string { return s.url }

// AuthorizeURL is the fake consent endpoint.
func (s *Server) AuthorizeURL() string { return s.url + "/oauth/authorize" }

// ClientID and ClientSecret of the one registered app.
func (s *Server) ClientID() string     { return s.opts.ClientID }
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// Close stops the server.
func (s *Server) Close() error {
	select {
	case <-s.done:
		return nil
	default:
		close(s.done)
	}
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Now is the fake clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time { return time.Now().UTC().Add(s.offset) }

func (s *Server) todayLocked() string { return s.nowLocked().Format(time.DateOnly) }

// Advance moves the fake clock forward: tokens expire, and scheduled
// terminations whose date has come take effect (active=false, no webhook, as
// Justworks sends none: EDGE_CASES 1).
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
	s.applyDatesLocked()
}

// applyDatesLocked flips active for terminations that took effect. The rule:
// a termination date is the last day worked; the member is inactive from the
// next UTC day on.
func (s *Server) applyDatesLocked() {
	today := s.todayLocked()
	for _, m := range s.members {
		if m.Active && m.EmploymentTerminationDate != "" && m.EmploymentTerminationDate < today {
			m.Active = false
			m.UpdatedAt = s.stampLocked()
		}
	}
}

// stampLocked returns a strictly increasing updated_at (microsecond steps), so
// keyset order is total even when many rows change in one instant.
func (s *Server) stampLocked() time.Time {
	s.seq++
	return s.nowLocked().Truncate(time.Second).Add(time.Duration(s.seq%1000000) * time.Microsecond)
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Requests returns the API requests logged so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// InjectFault queues a fault.
func (s *Server) InjectFault(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// ClearFaults removes every pending fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// OnMembersPage sets a hook run before each GET /v1/members page is served
// (page counts from 1 over the server's life; lock not held, so the hook may
// mutate members).
func (s *Server) OnMembersPage(fn func(page int)) {
	s.mu.Lock()
	s.pageHook = fn
	s.mu.Unlock()
}

// Cursor fault modes: how GET /v1/members misbehaves with next_cursor, as
// spec-driven mocks and buggy gateways do.
const (
	// CursorStuck answers every request that carries a cursor with that same
	// cursor as next_cursor, forever (the page served is the one it points to).
	CursorStuck = "stuck"
	// CursorCycle answers the first issued cursor A with B, and B with A again.
	CursorCycle = "cycle"
)

// CursorFault makes the members listing hand out bad cursors.
type CursorFault struct {
	Mode string // CursorStuck or CursorCycle; "" pages normally
	// Pages: answer this many pages with a faulty cursor, then page normally
	// (a listing that loops would otherwise never end for a client without a
	// guard). 0 is forever.
	Pages int
}

// SetCursorFault sets (or, with the zero value, clears) a cursor fault.
func (s *Server) SetCursorFault(f CursorFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursorFault, s.cursorFaulted, s.cycleA, s.cycleB = f, 0, "", ""
}

// applyCursorFaultLocked rewrites a page's next_cursor for the fault mode.
func (s *Server) applyCursorFaultLocked(sent string, resp map[string]any) {
	f := s.cursorFault
	if f.Mode == "" || f.Pages > 0 && s.cursorFaulted >= f.Pages {
		return
	}
	next, _ := resp["next_cursor"].(string)
	switch f.Mode {
	case CursorStuck:
		if sent != "" {
			resp["next_cursor"] = sent
			s.cursorFaulted++
		}
	case CursorCycle:
		switch {
		case sent == "":
			s.cycleA, s.cycleB = next, ""
		case sent == s.cycleA && s.cycleB == "":
			s.cycleB = next
		case sent == s.cycleA:
			resp["next_cursor"] = s.cycleB
			s.cursorFaulted++
		case sent == s.cycleB:
			resp["next_cursor"] = s.cycleA
			s.cursorFaulted++
		}
	}
}

// InvalidateCursors makes every cursor issued so far answer 400.
func (s *Server) InvalidateCursors() {
	s.mu.Lock()
	s.cursorEpoch++
	s.mu.Unlock()
}

// LeaveCompany simulates the company leaving Justworks: the API answers 403
// company_inactive and refreshes fail with invalid_grant.
func (s *Server) LeaveCompany() {
	s.mu.Lock()
	s.companyActive = false
	s.mu.Unlock()
}

// RevokeAllGrants simulates an admin removing the app in Justworks.
func (s *Server) RevokeAllGrants() {
	s.mu.Lock()
	for _, g := range s.grants {
		g.revoked = true
	}
	s.mu.Unlock()
}

func randID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Handler serves the fake API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/authorize", s.handleAuthorize)
	mux.HandleFunc("POST /oauth/token", s.handleToken)
	mux.HandleFunc("POST /v1/oauth/revoke", s.handleRevoke)
	mux.HandleFunc("GET /v1/members", s.api(s.handleListMembers, "member.basic:read"))
	mux.HandleFunc("GET /v1/members/{id}", s.api(s.handleGetMember, "member.basic:read"))
	mux.HandleFunc("GET /v1/company", s.api(s.handleCompany, "company.basic:read"))
	mux.HandleFunc("POST /v1/webhooks/get", s.api(s.handleListWebhooks, ""))
	mux.HandleFunc("POST /v1/webhooks/{id}/resume", s.api(s.handleResumeWebhook, ""))
	mux.HandleFunc("POST /v1/webhooks/{id}/simulate", s.api(s.handleSimulate, ""))
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// api wraps an authenticated API handler: logging, faults, bearer check,
// company state and scope.
func (s *Server) api(h func(w http.ResponseWriter, r *http.Request, tok *accessToken), scope string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		defer func() {
			s.mu.Lock()
			s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.status})
			s.mu.Unlock()
		}()
		if f := s.takeFault(r); f != nil {
			if f.RetryAfter != "" {
				rec.Header().Set("Retry-After", f.RetryAfter)
			}
			code := f.Code
			if code == "" {
				code = strings.ToLower(strings.ReplaceAll(http.StatusText(f.Status), " ", "_"))
			}
			writeError(rec, f.Status, code, "injected fault")
			return
		}
		tok, status, code := s.authenticate(r, scope)
		if status != 0 {
			if status == http.StatusUnauthorized {
				rec.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			writeError(rec, status, code, code)
			return
		}
		h(rec, r, tok)
	}
}

func (s *Server) takeFault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method != "" && f.Method != r.Method) || !strings.HasPrefix(r.URL.Path, f.Path) {
			continue
		}
		if f.Skip > 0 {
			f.Skip--
			return nil
		}
		f.Times--
		if f.Times <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		c := *f
		return &c
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

var errNoMember = errors.New("fakejustworks: no such member")
