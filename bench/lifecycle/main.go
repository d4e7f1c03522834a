// Command lifecycle benchmarks offboarding end to end with the real pieces: the fake
// Justworks server sends a signed webhook, HR sync turns it into an outbox event, the
// lifecycle engine (outbox loop every 250 ms, steps on River) removes app access on a fake
// SCIM server and locks the laptop through the agent API's command model, and a
// simulated agent holding its mTLS gRPC stream acknowledges the lock (as the real agent
// does with its dry-run executor). On SQLite and (with -pg or LANYARD_TEST_DATABASE_URL)
// PostgreSQL:
//
//  1. termination webhook (same-day termination) → lock acknowledged, sequential,
//     p50/p99 over -webhooks terminations;
//  2. a layoff: -layoff employees terminated at once; time until every lock is
//     acknowledged, and a check that no step ran twice and no device got two locks.
//
// With -write it replaces the "Lifecycle" section of docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/bench/internal/benchutil"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring/agentsim"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Config is one benchmark run.
type Config struct {
	Webhooks int
	Layoff   int
	PGURL    string
}

// Result is one store's figures.
type Result struct {
	Store          string
	P50, P99, Max  time.Duration
	LayoffAllAcked time.Duration
	LayoffLocks    int
	StepsTwice     int
	DevicesTwice   int
}

func main() {
	var cfg Config
	var write bool
	flag.IntVar(&cfg.Webhooks, "webhooks", 30, "sequential terminations for the latency figure")
	flag.IntVar(&cfg.Layoff, "layoff", 500, "employees offboarded at once")
	flag.StringVar(&cfg.PGURL, "pg", os.Getenv("LANYARD_TEST_DATABASE_URL"), "PostgreSQL URL (empty: SQLite only)")
	flag.BoolVar(&write, "write", false, "replace the Lifecycle section of docs/benchmarks.md")
	flag.Parse()
	res, err := RunAll(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	md := Markdown(cfg, res)
	fmt.Print(md)
	if write {
		if err := WriteSection(filepath.Join("docs", "benchmarks.md"), md); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// RunAll runs the scenario on SQLite and, when configured, Postgres.
func RunAll(ctx context.Context, cfg Config) ([]Result, error) {
	return benchutil.EachStore(ctx, cfg.PGURL, "bench_lifecycle_", func(db *store.DB, name string) (Result, error) {
		return run(ctx, db, name, cfg)
	})
}

type world struct {
	db    *store.DB
	org   domain.Org
	fake  *fakejustworks.Server
	agent *agentsim.Server
	eng   *lifecycle.Engine
	stop  func()
}

func setup(ctx context.Context, db *store.DB, members []fakejustworks.Member) (*world, error) {
	if err := db.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := jobs.Migrate(ctx, db); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		return nil, err
	}
	w := &world{db: db}
	// Plan hr while importing: no onboarding for the existing staff.
	w.org = domain.Org{Name: "Bench", Plan: domain.PlanHR, TimeZone: "UTC"}
	if err := store.CreateOrg(ctx, db.SQL, &w.org); err != nil {
		return nil, err
	}
	var stops []func()
	w.stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	w.fake, err = fakejustworks.Start(fakejustworks.Options{AutoDeliver: true})
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() { _ = w.fake.Close() })
	w.fake.Load(members)
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { handler.ServeHTTP(rw, r) }))
	stops = append(stops, srv.Close)
	p, err := justworks.New(hrsync.FakeJustworksConfig(w.fake, srv.URL))
	if err != nil {
		return nil, err
	}
	hr, err := hrsync.New(hrsync.Config{DB: db, Keyring: kr, Providers: map[string]hris.Provider{"justworks": p}, PublicURL: srv.URL, Logger: quiet})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	stops = append(stops, cancel)
	go func() { _ = hr.Start(rctx) }()
	stops = append(stops, hr.Close)
	w.agent, err = agentsim.Start(ctx, db, kr)
	if err != nil {
		return nil, err
	}
	stops = append(stops, w.agent.Close)
	reg := jobs.NewRegistry()
	handle := &jobs.Handle{}
	w.eng = wiring.New(wiring.Deps{DB: db, Keys: kr, Jobs: handle, Registry: reg, Logger: quiet,
		Commands: w.agent.API.Commands})
	client, err := jobs.NewClient(db, reg, jobs.Options{Logger: quiet})
	if err != nil {
		return nil, err
	}
	handle.Set(client)
	if err := client.Start(rctx); err != nil {
		return nil, err
	}
	stops = append(stops, func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.Stop(sctx)
	})
	handler = api.New(api.Options{Store: db, Logger: quiet}, hr.Routes(), w.eng.Routes())
	scim, err := fakescim.Start("scim")
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() { _ = scim.Close() })
	sealed, _ := kr.Seal([]byte("scim"), lifecycle.TokenAAD(w.org.ID, "slack"))
	if err := db.UpsertAppConnector(ctx, &store.AppConnector{OrgID: w.org.ID, App: "slack", Kind: "scim", BaseURL: scim.URL,
		TokenSealed: sealed, RevokeMode: "deactivate"}); err != nil {
		return nil, err
	}
	if _, err := hrsync.ConnectDemo(ctx, hr, w.org.ID, w.fake); err != nil {
		return nil, err
	}
	// The production loop: outbox and timers every 250 ms on this replica.
	go func() { _ = w.eng.Start(rctx) }()
	return w, nil
}

// equip gives every employee a laptop in use with an online agent.
func (w *world) equip(ctx context.Context) (map[string]string, []*agentsim.Agent, error) {
	emps, err := allEmployees(ctx, w.db, w.org.ID)
	if err != nil {
		return nil, nil, err
	}
	devOf := map[string]string{}
	var agents []*agentsim.Agent
	for i, e := range emps {
		d := domain.Device{OrgID: w.org.ID, SerialNumber: fmt.Sprintf("BENCH%05d", i), Vendor: "dell", Model: "XPS 13",
			Platform: domain.PlatformLinux, EquipmentType: "laptop"}
		if err := w.db.CreateDevice(ctx, &d); err != nil {
			return nil, nil, err
		}
		if _, err := w.db.AssignDevice(ctx, w.org.ID, d.ID, e.ID); err != nil {
			return nil, nil, err
		}
		a, err := w.agent.Enroll(ctx, w.org.ID, d.SerialNumber, "Dell", "XPS 13")
		if err != nil {
			return nil, nil, err
		}
		if err := a.Connect(ctx); err != nil {
			return nil, nil, err
		}
		agents = append(agents, a)
		devOf[e.ExternalID] = d.ID
	}
	// Automation on from now: terminations start offboardings.
	w.org.Plan = domain.PlanPro
	if _, err := w.db.UpdateOrg(ctx, w.org); err != nil {
		return nil, nil, err
	}
	return devOf, agents, nil
}

func allEmployees(ctx context.Context, db *store.DB, orgID string) ([]domain.Employee, error) {
	var out []domain.Employee
	p := store.Page{Limit: store.MaxLimit}
	for {
		es, next, err := db.ListEmployees(ctx, orgID, store.EmployeeFilter{Status: domain.StatusActive}, p)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
		if next == "" {
			return out, nil
		}
		p.Cursor = next
	}
}

// lockAcked returns when the device's lock command was acknowledged, if it was.
func lockAcked(ctx context.Context, db *store.DB, orgID, deviceID string) (time.Time, int, error) {
	cmds, _, err := db.ListDeviceCommands(ctx, orgID, deviceID, store.Page{Limit: 50})
	if err != nil {
		return time.Time{}, 0, err
	}
	var at time.Time
	n := 0
	for _, c := range cmds {
		if c.Type != store.CommandLock {
			continue
		}
		n++
		if c.ReceivedAt != nil {
			at = *c.ReceivedAt
		}
	}
	return at, n, nil
}

func run(ctx context.Context, db *store.DB, name string, cfg Config) (Result, error) {
	res := Result{Store: name}
	n := cfg.Webhooks + cfg.Layoff
	members := fakejustworks.Generate(n, 7, fakejustworks.GenOptions{AllActiveUS: true, Now: time.Now().UTC().Truncate(24 * time.Hour)})
	w, err := setup(ctx, db, members)
	if err != nil {
		return res, err
	}
	defer w.stop()
	devOf, agents, err := w.equip(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, a := range agents {
			a.Close()
		}
	}()
	today := w.fake.Now().Format(time.DateOnly)
	// 1. Sequential: webhook → lock acknowledged.
	var lat []time.Duration
	for _, m := range members[:cfg.Webhooks] {
		t0 := time.Now()
		if _, err := w.fake.ScheduleTermination(m.ID, today); err != nil {
			return res, err
		}
		at, err := waitAcked(ctx, db, w.org.ID, devOf[m.ID], 60*time.Second)
		if err != nil {
			return res, err
		}
		lat = append(lat, at.Sub(t0))
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		res.P50, res.P99, res.Max = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
	}
	// 2. The layoff: everyone else at once.
	layoff := members[cfg.Webhooks:]
	t0 := time.Now()
	for _, m := range layoff {
		if _, err := w.fake.ScheduleTermination(m.ID, today); err != nil {
			return res, err
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for _, m := range layoff {
		at, err := waitAcked(ctx, db, w.org.ID, devOf[m.ID], time.Until(deadline))
		if err != nil {
			return res, err
		}
		if d := at.Sub(t0); d > res.LayoffAllAcked {
			res.LayoffAllAcked = d
		}
	}
	// No step twice, no device locked twice.
	for _, m := range append(slices.Clone(members[:cfg.Webhooks]), layoff...) {
		_, locks, err := lockAcked(ctx, db, w.org.ID, devOf[m.ID])
		if err != nil {
			return res, err
		}
		res.LayoffLocks += locks
		if locks != 1 {
			res.DevicesTwice++
		}
	}
	for _, a := range agents {
		if a.Received("COMMAND_TYPE_LOCK") > 1 {
			res.DevicesTwice++
		}
	}
	twice, err := stepsTwice(ctx, db, w.org.ID)
	if err != nil {
		return res, err
	}
	res.StepsTwice = twice
	return res, nil
}

func waitAcked(ctx context.Context, db *store.DB, orgID, deviceID string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		at, _, err := lockAcked(ctx, db, orgID, deviceID)
		if err != nil {
			return at, err
		}
		if !at.IsZero() {
			return at, nil
		}
		if time.Now().After(deadline) {
			return at, errors.New("lock of " + deviceID + " not acknowledged in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stepsTwice counts steps that succeeded more than once (from the audit log).
func stepsTwice(ctx context.Context, db *store.DB, orgID string) (int, error) {
	rows, err := db.SQL.QueryContext(ctx, `SELECT target_id, COUNT(*) FROM audit_log WHERE org_id = $1 AND action = 'lifecycle.step.succeeded'
		GROUP BY target_id HAVING COUNT(*) > 1`, orgID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

// Markdown renders the results as the "Lifecycle" section.
func Markdown(cfg Config, res []Result) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Lifecycle\n\n")
	fmt.Fprintf(&b, "Measured %s on %s (%d cores, %s, %s/%s), `go run ./bench/lifecycle -write`. One process runs\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), benchutil.CPUModel(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "the fake Justworks (signed webhooks over loopback HTTP), HR sync, the lifecycle engine with its production\n")
	fmt.Fprintf(&b, "settings (outbox loop every 250 ms, River poll 200 ms), a fake SCIM app, the agent API (mTLS gRPC) and one\n")
	fmt.Fprintf(&b, "simulated agent per laptop holding its command stream and acknowledging at once. An offboarding removes\n")
	fmt.Fprintf(&b, "app access first (SCIM `active=false`), then locks. Target: webhook → lock acknowledged < 5 s.\n\n")
	fmt.Fprintf(&b, "| store | termination webhook → lock acknowledged (n=%d) p50 / p99 / max | layoff: %d terminated at once, all locks acknowledged | locks sent | steps run twice | devices locked twice |\n", cfg.Webhooks, cfg.Layoff)
	fmt.Fprintf(&b, "|---|---|---|---|---|---|\n")
	for _, r := range res {
		fmt.Fprintf(&b, "| %s | %s / %s / %s | %.1f s | %d | %d | %d |\n", r.Store, ms(r.P50), ms(r.P99), ms(r.Max),
			r.LayoffAllAcked.Seconds(), r.LayoffLocks, r.StepsTwice, r.DevicesTwice)
	}
	fmt.Fprintf(&b, "\nThe latency is the sum of HR sync's webhook handling, the 250 ms outbox poll (no LISTEN yet) and River's 200 ms\n")
	fmt.Fprintf(&b, "fetch interval per step (revoke_apps, then lock_devices).\n\n")
	return b.String()
}

// WriteSection replaces (or appends) the "## Lifecycle" section of path.
func WriteSection(path, section string) error {
	return benchutil.WriteSection(path, "## Lifecycle", section)
}
