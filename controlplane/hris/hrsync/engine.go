// Package hrsync keeps an organization's employees in step with its HR provider
// (Justworks): OAuth connect and disconnect, the initial import, webhooks, the
// periodic reconcile, and the employee.* outbox events.
//
// Guarantees:
//   - Identity is the provider's member id, never the email.
//   - Every employee write, its audit row and its outbox events commit in one
//     transaction; an event is emitted once per real change (diff of stored vs
//     new state under a row lock), never from webhook order.
//   - A scan that stops early (429/5xx, token trouble) is "partial": it never
//     advances the checkpoint, and nobody is ever terminated for "not seen".
//     Terminations need active=false confirmed by GET /v1/members/{id}, and a
//     run that would terminate more than the org's threshold stops and waits
//     for an admin (mass-termination circuit breaker).
//   - A listing that repeats a cursor (stuck or cycling), needs more than
//     Config.MaxPages pages, or shows a person under a new member id while
//     the old id is gone or still active fails the run (status failed, reason
//     recorded) before the offending page is applied: only pages already
//     committed stay, and nothing is created or terminated from it.
//   - The initial import persists cursor and progress with each page, in the
//     page's transaction, so a crash resumes without duplicates.
//   - A revoked grant or a company that left ends the connection at once
//     (state terminated, reason recorded, audited); people and devices stay.
//
// Import rules: hrsync may import hris, hris/justworks, store, secrets, api and
// jobs; nothing in hris imports it.
package hrsync

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Connection-end reasons.
const (
	ReasonDisconnected = "disconnected"
	ReasonGrantRevoked = "grant_revoked"
	ReasonCompanyLeft  = "company_left"
	ReasonSuperseded   = "superseded"
	ReasonDenied       = "consent_denied"
)

// Actor is the audit actor of sync writes.
const Actor = "system:hrsync"

// Config configures the engine.
type Config struct {
	DB      *store.DB
	Keyring *secrets.Keyring
	// Providers by name; "justworks" is the one we have.
	Providers map[string]hris.Provider
	// PublicURL is how browsers and the provider reach the admin API (OAuth
	// callback and webhook URLs are built from it).
	PublicURL string
	// ConsoleReturn is the console page (a path) the OAuth callback sends a browser back
	// to, with ?run=<initial import run id> or ?error=<message>; empty: the callback
	// answers JSON to everyone.
	ConsoleReturn string
	// WebhookSecret is the signing secret used for connections that do not set
	// their own (Justworks issues it; API.md §6).
	WebhookSecret string
	// NewVerifier builds the webhook verifier for a connection's secrets;
	// default: HMAC-SHA256 over timestamp "." body with WebhookTolerance.
	NewVerifier      func(secrets [][]byte) hris.WebhookVerifier
	WebhookTolerance time.Duration // default 5 min

	ReconcileInterval time.Duration // default 10 min
	FullScanInterval  time.Duration // default 24 h: a full scan catches what updated_at misses
	Skew              time.Duration // incremental reads start this long before the checkpoint; default 5 min
	PageSize          int           // default 100
	// MaxPages caps the pages of one listing (default DefaultMaxPages): a
	// provider that keeps handing out cursors fails the run instead of
	// looping.
	MaxPages int
	// MassTerminationMin: the breaker never trips at or below this many
	// terminations in one run, whatever the percentage (default 3).
	MassTerminationMin int
	// RunStaleAfter: a running run without heartbeat this long is abandoned (default 10 min;
	// longer than a page can spend in Retry-After waits).
	RunStaleAfter time.Duration
	// WebhookWorkers process received webhooks (default 4).
	WebhookWorkers int

	Logger *slog.Logger
	Now    func() time.Time
	// Registerer receives the sync's Prometheus metrics (optional).
	Registerer prometheus.Registerer
}

// Engine is the HR sync capability.
type Engine struct {
	cfg Config
	db  *store.DB
	log *slog.Logger
	met *metrics

	queue   chan store.HRWebhookEvent
	baseCtx context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// observers (tests, benchmarks) of processed webhooks
	mu        sync.Mutex
	onWebhook []func(ev store.HRWebhookEvent, err error)
}

// New builds an engine; call Start to run webhook workers.
func New(cfg Config) (*Engine, error) {
	if cfg.DB == nil || cfg.Keyring == nil {
		return nil, errors.New("hrsync: DB and Keyring are required")
	}
	if cfg.Providers == nil {
		cfg.Providers = map[string]hris.Provider{}
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.WebhookTolerance <= 0 {
		cfg.WebhookTolerance = justworks.DefaultTolerance
	}
	if cfg.NewVerifier == nil {
		tol := cfg.WebhookTolerance
		cfg.NewVerifier = func(s [][]byte) hris.WebhookVerifier { return justworks.HMACVerifier{Secrets: s, Tolerance: tol} }
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 10 * time.Minute
	}
	if cfg.FullScanInterval <= 0 {
		cfg.FullScanInterval = 24 * time.Hour
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 5 * time.Minute
	}
	if cfg.PageSize <= 0 || cfg.PageSize > justworks.MaxPageSize {
		cfg.PageSize = justworks.MaxPageSize
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = DefaultMaxPages
	}
	if cfg.MassTerminationMin <= 0 {
		cfg.MassTerminationMin = 3
	}
	if cfg.RunStaleAfter <= 0 {
		cfg.RunStaleAfter = 10 * time.Minute
	}
	if cfg.WebhookWorkers <= 0 {
		cfg.WebhookWorkers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = domain.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{cfg: cfg, db: cfg.DB, log: cfg.Logger.With("component", "hrsync"), met: newMetrics(cfg.Registerer),
		queue: make(chan store.HRWebhookEvent, 4096), baseCtx: ctx, cancel: cancel}, nil
}

// CallbackURL is the OAuth redirect URL to register with the provider.
func (e *Engine) CallbackURL() string { return e.cfg.PublicURL + CallbackPath }

// WebhookURL is the URL the provider should deliver a connection's webhooks to.
func (e *Engine) WebhookURL(connID string) string {
	return e.cfg.PublicURL + strings.Replace(WebhookPath, "{connection_id}", connID, 1)
}

func (e *Engine) now() time.Time { return e.cfg.Now().UTC() }

func (e *Engine) actorCtx(ctx context.Context) context.Context {
	if domain.ActorFrom(ctx).ID == "system:unknown" {
		return domain.WithActor(ctx, domain.Actor{ID: Actor})
	}
	return ctx
}

func (e *Engine) provider(name string) (hris.Provider, error) {
	p := e.cfg.Providers[name]
	if p == nil {
		return nil, fmt.Errorf("hrsync: provider %q is not configured", name)
	}
	return p, nil
}

func grantAAD(c *store.HRConnection) string {
	return "org:" + c.OrgID + ":hr_connection:" + c.ID + ":grant"
}
func hookAAD(c *store.HRConnection) string {
	return "org:" + c.OrgID + ":hr_connection:" + c.ID + ":webhook"
}

func (e *Engine) sealGrant(c *store.HRConnection, g hris.Grant) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	s, err := e.cfg.Keyring.Seal(b, grantAAD(c))
	if err != nil {
		return fmt.Errorf("seal grant: %w", err)
	}
	c.GrantSealed = s
	c.Scopes = strings.Join(g.Scopes, " ")
	return nil
}

func (e *Engine) openGrant(c *store.HRConnection) (hris.Grant, error) {
	var g hris.Grant
	if c.GrantSealed == "" {
		return g, fmt.Errorf("connection %s has no grant: %w", c.ID, hris.ErrReauthorize)
	}
	b, err := e.cfg.Keyring.Open(c.GrantSealed, grantAAD(c))
	if err != nil {
		return g, fmt.Errorf("open grant: %w", err)
	}
	return g, json.Unmarshal(b, &g)
}

// tokenStore persists one connection's grant (encrypted) for the provider client.
type tokenStore struct {
	e      *Engine
	connID string
	orgID  string
}

func (t tokenStore) Load(ctx context.Context) (hris.Grant, error) {
	c, err := store.GetHRConnection(ctx, t.e.db.SQL, t.orgID, t.connID)
	if err != nil {
		return hris.Grant{}, err
	}
	if c.State == store.HRStateTerminated {
		return hris.Grant{}, fmt.Errorf("connection %s is terminated: %w", c.ID, hris.ErrReauthorize)
	}
	return t.e.openGrant(&c)
}

func (t tokenStore) Save(ctx context.Context, g hris.Grant) error {
	return t.e.db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := t.e.db.LockHRConnection(ctx, tx, t.orgID, t.connID)
		if err != nil {
			return err
		}
		if c.State == store.HRStateTerminated {
			return fmt.Errorf("connection %s is terminated", c.ID)
		}
		if err := t.e.sealGrant(&c, g); err != nil {
			return err
		}
		return store.UpdateHRConnection(ctx, tx, &c)
	})
}

func (e *Engine) directory(c *store.HRConnection) (hris.Directory, error) {
	p, err := e.provider(c.Provider)
	if err != nil {
		return nil, err
	}
	return p.Directory(c.ID, tokenStore{e: e, connID: c.ID, orgID: c.OrgID}), nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// endReason maps a provider error to a connection-end reason ("" = keep going).
func endReason(err error) string {
	switch {
	case errors.Is(err, hris.ErrCompanyGone):
		return ReasonCompanyLeft
	case errors.Is(err, hris.ErrReauthorize):
		return ReasonGrantRevoked
	}
	return ""
}

// terminateConnection ends a connection at once (revoked grant, company left,
// admin disconnect). People and devices stay. It is idempotent.
func (e *Engine) terminateConnection(ctx context.Context, orgID, connID, reason, detail string) (store.HRConnection, error) {
	ctx = e.actorCtx(ctx)
	var out store.HRConnection
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		c, err := e.db.LockHRConnection(ctx, tx, orgID, connID)
		if err != nil {
			return err
		}
		out = c
		if c.State == store.HRStateTerminated {
			return nil
		}
		before := c
		now := e.now()
		c.State, c.Reason, c.TerminatedAt, c.OAuthState = store.HRStateTerminated, reason, &now, ""
		if detail != "" {
			c.Reason = reason + ": " + detail
		}
		if err := store.UpdateHRConnection(ctx, tx, &c); err != nil {
			return err
		}
		out = c
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, c.OrgID, "hr.connection.terminated", "hr_connection", c.ID,
			connView(before), connView(c))); err != nil {
			return err
		}
		// Sync has stopped for good: an admin must reconnect, so they are prompted.
		return writeConnEvent(ctx, tx, c, domain.EventHRConnectionEnded, domain.HRConnectionPayload{Reason: c.Reason})
	})
	if err == nil {
		if p, ok := e.cfg.Providers[out.Provider].(interface{ Forget(string) }); ok {
			p.Forget(connID)
		}
		e.log.WarnContext(ctx, "hr connection terminated", "org_id", orgID, "connection_id", connID, "reason", reason)
	}
	return out, err
}

// connView is the audit/API view of a connection (no secrets).
func connView(c store.HRConnection) map[string]any {
	return map[string]any{"id": c.ID, "state": c.State, "reason": c.Reason, "attention": c.Attention,
		"provider": c.Provider, "company_id": c.CompanyID, "company_name": c.CompanyName, "scopes": c.Scopes}
}

// OnWebhookProcessed registers an observer called after each webhook event is
// processed (benchmarks and tests).
func (e *Engine) OnWebhookProcessed(fn func(ev store.HRWebhookEvent, err error)) {
	e.mu.Lock()
	e.onWebhook = append(e.onWebhook, fn)
	e.mu.Unlock()
}

// writeConnEvent writes an hr.* prompt about connection c; p gets c's id and provider.
func writeConnEvent(ctx context.Context, q store.Querier, c store.HRConnection, typ string, p any) error {
	switch v := p.(type) {
	case domain.HRConnectionPayload:
		v.ConnectionID, v.Provider = c.ID, c.Provider
		p = v
	case domain.HRTerminationsHeldPayload:
		v.ConnectionID, v.Provider = c.ID, c.Provider
		p = v
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	return store.WriteEvent(ctx, q, domain.Event{OrgID: c.OrgID, Type: typ, SubjectType: "hr_connection", SubjectID: c.ID, Payload: b})
}
