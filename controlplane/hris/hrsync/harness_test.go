package hrsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

type harness struct {
	t       *testing.T
	ctx     context.Context
	db      *store.DB
	fake    *fakejustworks.Server
	eng     *hrsync.Engine
	org     domain.Org
	srv     *httptest.Server
	tokens  map[domain.Role]string
	seq     int64 // outbox position already looked at
	secret  []byte
	keyring *secrets.Keyring
	metrics *prometheus.Registry
	mu      sync.Mutex
	offset  time.Duration // engine clock = wall clock + offset
}

// advance moves both clocks: the fake's and the engine's.
func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.offset += d
	h.mu.Unlock()
	h.fake.Advance(d)
}

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().UTC().Add(h.offset)
}

type hopts struct {
	fake     fakejustworks.Options
	members  []fakejustworks.Member
	settings domain.OrgSettings
	plan     domain.Plan
	cfg      func(*hrsync.Config)
	jw       func(*justworks.Config)
}

func gen(n int, allUS bool) []fakejustworks.Member {
	return fakejustworks.Generate(n, 1, fakejustworks.GenOptions{AllActiveUS: allUS, Now: time.Now().UTC().Truncate(24 * time.Hour)})
}

func newHarness(t *testing.T, db *store.DB, o hopts) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fake, err := fakejustworks.Start(o.fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	fake.Load(o.members)
	if o.plan == "" {
		o.plan = domain.PlanHR
	}
	org := domain.Org{Name: "HR " + domain.NewID()[:8], Plan: o.plan, TimeZone: "UTC", Settings: o.settings}
	if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, db: db, fake: fake, org: org, tokens: map[domain.Role]string{}}
	var handler http.Handler
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.srv.Close)

	jwCfg := hrsync.FakeJustworksConfig(fake, h.srv.URL)
	jwCfg.MaxAttempts = 3
	jwCfg.BackoffBase, jwCfg.BackoffMax, jwCfg.MaxRetryAfter = time.Millisecond, 5*time.Millisecond, 5*time.Millisecond
	jwCfg.RefreshSkew = time.Minute
	if o.jw != nil {
		o.jw(&jwCfg)
	}
	p, err := justworks.New(jwCfg)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	h.keyring = kr
	h.metrics = prometheus.NewRegistry()
	cfg := hrsync.Config{DB: db, Keyring: kr, Registerer: h.metrics, Providers: map[string]hris.Provider{"justworks": p}, PublicURL: h.srv.URL, PageSize: 25,
		Logger: slog.New(slog.DiscardHandler), Now: h.now}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	h.eng, err = hrsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.eng.Start(ctx) }()
	t.Cleanup(h.eng.Close)
	handler = api.New(api.Options{Store: db}, h.eng.Routes())
	for _, role := range []domain.Role{domain.RoleViewer, domain.RoleIT, domain.RoleAdmin} {
		_, secret, err := db.CreateToken(ctx, org.ID, string(role), role, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.tokens[role] = secret
	}
	return h
}

// call does an API request and decodes the JSON answer into out (if set).
func (h *harness) call(role domain.Role, method, path string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(h.ctx, method, h.srv.URL+path, rd)
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+h.tokens[role])
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// connect runs the whole OAuth flow over HTTP like an admin with a browser,
// and waits for the initial import.
func (h *harness) connect() (hrsync.CallbackResult, store.HRSyncRun) {
	h.t.Helper()
	var cr hrsync.ConnectResponse
	if st := h.call(domain.RoleAdmin, "POST", "/api/v1/hr/connection", map[string]any{}, &cr); st != http.StatusCreated {
		h.t.Fatalf("connect status %d", st)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(cr.AuthorizeURL)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc == "" {
		h.t.Fatalf("authorize: %d %q", resp.StatusCode, loc)
	}
	resp, err = http.Get(loc) // the browser lands on our callback
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var res hrsync.CallbackResult
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &res) != nil || res.State != store.HRStateActive {
		h.t.Fatalf("callback %d %s", resp.StatusCode, b)
	}
	h.secret = []byte(cr.WebhookSecret)
	h.fake.Subscribe(cr.WebhookURL, h.secret)
	run, err := h.eng.WaitRun(h.ctx, h.org.ID, res.RunID, 30*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	return res, run
}

func (h *harness) conn() store.HRConnection {
	h.t.Helper()
	c, err := store.GetLatestHRConnection(h.ctx, h.db.SQL, h.org.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) sync(kind string) store.HRSyncRun {
	h.t.Helper()
	run, err := h.eng.SyncNow(h.ctx, h.org.ID, hrsync.SyncOptions{Kind: kind, Trigger: "test"})
	if err != nil {
		h.t.Fatal(err)
	}
	return run
}

// events returns this org's outbox events written since the last call.
func (h *harness) events() []domain.Event {
	h.t.Helper()
	var out []domain.Event
	for {
		evs, err := h.db.ListEvents(h.ctx, h.seq, 1000)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, ev := range evs {
			h.seq = ev.Seq
			if ev.OrgID == h.org.ID {
				out = append(out, ev)
			}
		}
	}
}

func countTypes(evs []domain.Event) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Type]++
	}
	return m
}

func (h *harness) employee(externalID string) domain.Employee {
	h.t.Helper()
	e, err := store.GetEmployeeByExternalID(h.ctx, h.db.SQL, h.org.ID, "justworks", externalID)
	if err != nil {
		h.t.Fatalf("employee %s: %v", externalID, err)
	}
	return e
}

func (h *harness) countEmployees(status domain.EmploymentStatus) int {
	n, err := store.CountEmployeesByStatus(h.ctx, h.db.SQL, h.org.ID, "justworks", status)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// deliver flushes the fake's queued webhooks and waits until the engine has
// processed every accepted event.
func (h *harness) deliver() []fakejustworks.Delivery {
	h.t.Helper()
	res := h.fake.Flush(h.ctx)
	h.waitProcessed()
	return res
}

func (h *harness) waitProcessed() {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := h.db.SQL.QueryRowContext(h.ctx, `SELECT COUNT(*) FROM hr_webhook_events WHERE org_id = $1 AND status = 'received'`, h.org.ID).Scan(&n); err != nil {
			h.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d webhook events still unprocessed", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) webhookRows() map[string]int {
	h.t.Helper()
	rows, err := h.db.SQL.QueryContext(h.ctx, `SELECT status FROM hr_webhook_events WHERE org_id = $1`, h.org.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		m[s]++
	}
	return m
}

func (h *harness) audits(action string) int {
	h.t.Helper()
	var n int
	if err := h.db.SQL.QueryRowContext(h.ctx, `SELECT COUNT(*) FROM audit_log WHERE org_id = $1 AND action = $2`, h.org.ID, action).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// expectedImport counts generated members an import should create.
func expectedImport(ms []fakejustworks.Member, international bool) int {
	n := 0
	for _, m := range ms {
		intl := slices.Contains([]string{"international_employee", "employee_eor"}, m.Type)
		if m.Active && (international || !intl) {
			n++
		}
	}
	return n
}

func eachDB(t *testing.T, fn func(t *testing.T, db *store.DB)) { storetest.EachDB(t, fn) }

func date(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format(time.DateOnly) }

func mustKeyring(t *testing.T) *secrets.Keyring {
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// demoEngine builds a second engine on the harness database for a demo fake.
func demoEngine(t *testing.T, h *harness, fake *fakejustworks.Server) *hrsync.Engine {
	t.Helper()
	p, err := justworks.New(hrsync.FakeJustworksConfig(fake, h.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	e, err := hrsync.New(hrsync.Config{DB: h.db, Keyring: h.keyring, Providers: map[string]hris.Provider{"justworks": p},
		PublicURL: h.srv.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// metric sums a metric family's values (counter or histogram sample count).
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	fams, err := h.metrics.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}
