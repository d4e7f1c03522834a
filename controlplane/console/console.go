// Package console is Lanyard's web console: server-rendered pages (html/template from an
// embedded file system) with a little vendored htmx, served at "/" on the API's port.
//
// The console is a client of the REST API: every read and every action goes through
// API.Call as the signed-in person's api.Principal, so roles, plan gates, validation, the
// two-person rule and audit live in one place (the API's route handlers). The console owns
// only presentation, sessions-as-cookies (through the auth service), CSRF and security
// headers. Each page is one file registering itself in the page table (pages.go); each
// state-changing form is one row of the action table (actions.go).
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/auth"
)

// Auth is what the console needs from the sign-in service (*auth.Service implements it).
type Auth interface {
	SignInPassword(ctx context.Context, orgID, email, password string, m auth.ClientMeta) (auth.Step, error)
	SignInLink(ctx context.Context, linkToken string, m auth.ClientMeta) (auth.Step, error)
	SetPassword(ctx context.Context, challenge, password string, m auth.ClientMeta) (auth.Step, error)
	VerifyTOTP(ctx context.Context, challenge, code string, m auth.ClientMeta) (auth.Session, []string, error)
	Authenticate(ctx context.Context, sessionID string) (auth.Session, error)
	Reauthenticate(ctx context.Context, sessionID, password, totpCode string, m auth.ClientMeta) (auth.Session, error)
	SignOut(ctx context.Context, sessionID string) error
	Principal(ctx context.Context, sess auth.Session) (api.Principal, error)
}

// API is the REST API the console calls in-process (*api.Server implements it).
type API interface {
	Call(ctx context.Context, p api.Principal, method, target string, body, out any) error
	Routes() []api.Route
}

// Options configure the console.
type Options struct {
	Auth Auth
	API  API
	// Secure marks cookies Secure (the public URL is https).
	Secure bool
	Logger *slog.Logger
	// SSOEnabled reports whether an organization signs in with single sign-on, to show the
	// "Sign in with SSO" button (nil: never shown).
	SSOEnabled func(ctx context.Context, orgID string) bool
	// SSOError turns the short code the SSO callback redirects with (/signin?error=<code>)
	// into a message (nil: a generic one).
	SSOError func(code string) string
	// DemoInbox is the path of `make run`'s local inbox (the mail the demo sent), shown
	// in the navigation ("" outside the demo).
	DemoInbox string
}

// Console serves the web console.
type Console struct {
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	assets  *assetSet
	tmpl    *templates
	actions []action
	pages   []page
	nav     []navEntry
	routes  map[string]api.Route // "METHOD /path" → API route
}

// New builds the console. It fails when an action names an API route that does not exist,
// so the action table cannot drift from the API's route table.
func New(o Options) (*Console, error) {
	if o.Auth == nil || o.API == nil {
		return nil, errors.New("console: Auth and API are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c := &Console{opts: o, log: o.Logger.With("component", "console"), mux: http.NewServeMux(), routes: map[string]api.Route{}}
	for _, rt := range o.API.Routes() {
		c.routes[rt.Method+" "+rt.Path] = rt
	}
	var err error
	if c.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	// The operations pages (workflows, Justworks, enrollment, …) keep their own tables
	// (ops.go) so the two halves of the console grow without editing each other's rows.
	c.pages = append(pageTable(), opsPages()...)
	c.actions = append(actionTable(), opsActions(c.routes)...)
	c.nav = navTable()
	if c.tmpl, err = parseTemplates(c.assets); err != nil {
		return nil, err
	}
	for _, a := range c.actions {
		if _, ok := c.routes[a.API]; !ok {
			return nil, fmt.Errorf("console: action %q calls %s, which is not an API route", a.Name, a.API)
		}
	}
	c.mux.Handle("GET /assets/{name}", c.assets)
	for _, p := range c.pages {
		c.mux.Handle(p.Pattern, c.pageHandler(p))
	}
	for _, a := range c.actions {
		c.mux.Handle(a.Form, c.actionHandler(a))
	}
	c.mux.Handle("/", c.pageHandler(page{Pattern: "/", Handler: notFound}))
	return c, nil
}

// ServeHTTP serves the console with its security headers on every response.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// CSP is the console's Content-Security-Policy: scripts and styles only from our own
// origin (no inline script, no eval; htmx is configured not to need either).
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Actions describes the action table for tests and docs: each console form and the API
// route it calls.
type ActionInfo struct {
	Name string
	// Form is the console's "METHOD /path" pattern.
	Form string
	// API is the "METHOD /path" of the API route the form calls.
	API string
	// StricterRole is set when the API handler refuses more than its route's role (e.g. a
	// wipe needs admin on a route open to it); empty otherwise.
	StricterRole string
	// Fields are sample form values that make a valid submission.
	Fields map[string]string
}

// Actions lists the action table.
func (c *Console) Actions() []ActionInfo {
	out := make([]ActionInfo, 0, len(c.actions))
	for _, a := range c.actions {
		out = append(out, ActionInfo{Name: a.Name, Form: a.Form, API: a.API, StricterRole: string(a.StricterRole), Fields: a.Sample})
	}
	return out
}

func clientMeta(r *http.Request) auth.ClientMeta {
	return auth.ClientMeta{IP: clientIP(r), UserAgent: r.UserAgent()}
}

func now() time.Time { return time.Now() }
