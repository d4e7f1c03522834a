// Command lifecycle benchmarks offboarding end to end with the real pieces: the fake
// Justworks server sends a signed webhook, HR sync turns it into an outbox event, the
// lifecycle engine (steps on River) removes app access on a fake SCIM server and locks
// the laptop through the agent API's command model, and a simulated agent holding its
// mTLS gRPC stream answers RECEIVED, RUNNING and DONE with evidence signed by its own
// device key (agentsim). A lock counts when its command is done with that evidence. On
// SQLite and (with -pg or LANYARD_TEST_DATABASE_URL) PostgreSQL:
//
//  1. termination webhook (same-day termination) → lock done, sequential, p50/p99 over
//     -webhooks terminations, with the engine as it ships (woken by notifications, poll
//     as backstop) and, for comparison, with notifications off (Config.PollOnly) and the
//     poll at the interval it had before them (250 ms);
//  2. a layoff: -layoff employees terminated at once; time until every lock is done and
//     every lock step succeeded, and a check that no step ran twice (step executions
//     counted per step id from the audit log) and no device got two locks.
//
// With -write it replaces the "Lifecycle" section of docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
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
	// NoBefore skips the poll-only comparison run.
	NoBefore bool
	// Kind is the app connector kind whose fake the offboarding suspends accounts on.
	Kind string
}

// Modes of the engine's loop.
const (
	ModeNotify = "notifications"
	ModePoll   = "poll only"
)

// Result is one store's figures in one mode.
type Result struct {
	Store, Mode string
	// Load is /proc/loadavg's three figures before the run (what `uptime` shows).
	Load string
	// Webhook → lock command done with evidence, and → lock step succeeded.
	LockP50, LockP99, LockMax time.Duration
	// Webhook → the employee's account suspended on the app (-kind).
	AppP50, AppP99, AppMax time.Duration
	StepP50, StepP99       time.Duration
	// Layoff (notifications mode only): when the last lock was done and the last lock
	// step succeeded, counted from the first termination.
	Layoff                   int
	LayoffLocks, LayoffSteps time.Duration
	LockCommands             int
	Steps, StepExecutions    int
	LockStepsInOneExecution  int
	StepsRunTwice            int
	DevicesTwice             int
}

func main() {
	var cfg Config
	var write bool
	flag.IntVar(&cfg.Webhooks, "webhooks", 30, "sequential terminations for the latency figure")
	flag.IntVar(&cfg.Layoff, "layoff", 500, "employees offboarded at once")
	flag.StringVar(&cfg.PGURL, "pg", os.Getenv("LANYARD_TEST_DATABASE_URL"), "PostgreSQL URL (empty: SQLite only)")
	flag.BoolVar(&cfg.NoBefore, "no-before", false, "skip the poll-only comparison")
	flag.StringVar(&cfg.Kind, "kind", "scim", "app connector kind to suspend accounts on: scim, google or entra")
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
	if err := Check(res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Check fails the benchmark when a step ran twice or a device got two locks.
func Check(res []Result) error {
	var errs []error
	for _, r := range res {
		if r.StepsRunTwice != 0 || r.DevicesTwice != 0 {
			errs = append(errs, fmt.Errorf("%s, %s: %d steps run twice, %d devices locked twice", r.Store, r.Mode, r.StepsRunTwice, r.DevicesTwice))
		}
	}
	return errors.Join(errs...)
}

// RunAll runs the scenario on SQLite and, when configured, Postgres: with notifications
// (webhooks and layoff) and, unless NoBefore, on the poll alone (webhooks only).
func RunAll(ctx context.Context, cfg Config) ([]Result, error) {
	per, err := benchutil.EachStore(ctx, cfg.PGURL, "bench_lifecycle_", func(db *store.DB, name string) ([]Result, error) {
		// One keyring per database: the agent CA it seals outlives a run.
		kr, err := secrets.New(secrets.NewKey())
		if err != nil {
			return nil, err
		}
		var out []Result
		modes := []string{ModeNotify}
		if !cfg.NoBefore {
			modes = append(modes, ModePoll)
		}
		for _, mode := range modes {
			r, err := run(ctx, db, kr, name, mode, cfg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", mode, err)
			}
			out = append(out, r)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, r := range per {
		out = append(out, r...)
	}
	return out, nil
}

type world struct {
	app   appTarget
	db    *store.DB
	org   domain.Org
	fake  *fakejustworks.Server
	agent *agentsim.Server
	eng   *lifecycle.Engine
	stop  func()
}

func setup(ctx context.Context, db *store.DB, kr *secrets.Keyring, members []fakejustworks.Member, mode, kind string) (*world, error) {
	if err := db.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := jobs.Migrate(ctx, db); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
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
	var err error
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
	var opts []lifecycle.Option
	if mode == ModePoll {
		// The engine before notifications: the loop on its poll alone, at the old intervals.
		opts = append(opts, lifecycle.WithConfig(lifecycle.Config{PollOnly: true, CommandRecheck: 5 * time.Second}))
	}
	w.eng = wiring.New(wiring.Deps{DB: db, Keys: kr, Jobs: handle, Registry: reg, Logger: quiet,
		Commands: w.agent.API.Commands, Options: opts, Connectors: builders})
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
	target, err := newAppTarget(kind)
	if err != nil {
		return nil, err
	}
	stops = append(stops, target.Close)
	w.app = target
	conn, err := target.Connector(w.org.ID, kr)
	if err != nil {
		return nil, err
	}
	if err := db.UpsertAppConnector(ctx, &conn); err != nil {
		return nil, err
	}
	if _, err := hrsync.ConnectDemo(ctx, hr, w.org.ID, w.fake); err != nil {
		return nil, err
	}
	if mode == ModePoll {
		go w.eng.Run(rctx, 250*time.Millisecond)
	} else {
		// The production loop: notifications, the poll (PollInterval) as backstop.
		go func() { _ = w.eng.Start(rctx) }()
	}
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

// lockDone returns when the device's lock command was done with the device's signed
// evidence, if it was; a lock that ended otherwise is an error (the benchmark's agents
// all complete). n counts the device's lock commands.
func lockDone(ctx context.Context, db *store.DB, orgID, deviceID string) (at time.Time, n int, err error) {
	cmds, _, err := db.ListDeviceCommands(ctx, orgID, deviceID, store.Page{Limit: 50})
	if err != nil {
		return at, 0, err
	}
	for _, c := range cmds {
		if c.Type != store.CommandLock {
			continue
		}
		n++
		switch c.State {
		case store.CommandDone:
			if c.Evidence == nil || !c.Evidence.Verified || len(c.Evidence.Checks) == 0 {
				return at, n, fmt.Errorf("lock %s of %s is done without verified evidence: %+v", c.ID, deviceID, c.Evidence)
			}
			at = *c.CompletedAt
		case store.CommandFailed, store.CommandExpired, store.CommandCanceled, store.CommandSimulated:
			return at, n, fmt.Errorf("lock %s of %s ended %s: %s", c.ID, deviceID, c.State, c.Error)
		}
	}
	return at, n, nil
}

// lockStepDone returns when the employee's offboarding lock step succeeded, if it did.
func lockStepDone(ctx context.Context, db *store.DB, orgID, employeeID string) (time.Time, error) {
	ws, _, err := db.ListWorkflows(ctx, orgID, store.WorkflowFilter{EmployeeID: employeeID, Kind: string(lifecycle.KindOffboarding)}, store.Page{})
	if err != nil || len(ws) == 0 {
		return time.Time{}, err
	}
	w, err := db.GetWorkflow(ctx, orgID, ws[0].ID)
	if err != nil {
		return time.Time{}, err
	}
	for _, s := range w.Steps {
		if s.Kind == string(lifecycle.StepLockDevices) && s.State == string(lifecycle.StepSucceeded) && s.FinishedAt != nil {
			return *s.FinishedAt, nil
		}
	}
	return time.Time{}, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func run(ctx context.Context, db *store.DB, kr *secrets.Keyring, name, mode string, cfg Config) (Result, error) {
	res := Result{Store: name, Mode: mode, Load: loadAvg()}
	layoffN := cfg.Layoff
	if mode == ModePoll {
		layoffN = 0
	}
	n := cfg.Webhooks + layoffN
	members := fakejustworks.Generate(n, 7, fakejustworks.GenOptions{AllActiveUS: true, Now: time.Now().UTC().Truncate(24 * time.Hour)})
	w, err := setup(ctx, db, kr, members, mode, cfg.Kind)
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
	empOf, err := employeesByExternalID(ctx, db, w.org.ID)
	if err != nil {
		return res, err
	}
	emailOf := map[string]string{}
	emps, err := allEmployees(ctx, db, w.org.ID)
	if err != nil {
		return res, err
	}
	for _, e := range emps {
		emailOf[e.ExternalID] = e.HR.WorkEmail
		if err := w.app.Seed(e.HR.WorkEmail); err != nil {
			return res, err
		}
	}
	today := w.fake.Now().Format(time.DateOnly)
	// 1. Sequential: webhook → lock done (and lock step succeeded).
	var lat, stepLat, appLat []time.Duration
	for _, m := range members[:cfg.Webhooks] {
		t0 := time.Now()
		if _, err := w.fake.ScheduleTermination(m.ID, today); err != nil {
			return res, err
		}
		at, err := waitFor(time.Minute, func() (time.Time, error) {
			at, _, err := lockDone(ctx, db, w.org.ID, devOf[m.ID])
			return at, err
		})
		if err != nil {
			return res, fmt.Errorf("lock of %s: %w", devOf[m.ID], err)
		}
		sat, err := waitFor(time.Minute, func() (time.Time, error) { return lockStepDone(ctx, db, w.org.ID, empOf[m.ID]) })
		if err != nil {
			return res, fmt.Errorf("lock step of %s: %w", empOf[m.ID], err)
		}
		aat, err := waitFor(time.Minute, func() (time.Time, error) {
			at, ok := w.app.SuspendedAt(emailOf[m.ID])
			if !ok {
				return time.Time{}, nil
			}
			return at, nil
		})
		if err != nil {
			return res, fmt.Errorf("%s account of %s: %w", cfg.Kind, emailOf[m.ID], err)
		}
		lat, stepLat, appLat = append(lat, at.Sub(t0)), append(stepLat, sat.Sub(t0)), append(appLat, aat.Sub(t0))
	}
	slices.Sort(lat)
	slices.Sort(stepLat)
	slices.Sort(appLat)
	if len(appLat) > 0 {
		res.AppP50, res.AppP99, res.AppMax = pct(appLat, 50), pct(appLat, 99), appLat[len(appLat)-1]
	}
	if len(lat) > 0 {
		res.LockP50, res.LockP99, res.LockMax = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
		res.StepP50, res.StepP99 = pct(stepLat, 50), pct(stepLat, 99)
	}
	// 2. The layoff: everyone else at once.
	layoff := members[cfg.Webhooks:]
	res.Layoff = len(layoff)
	t0 := time.Now()
	for _, m := range layoff {
		if _, err := w.fake.ScheduleTermination(m.ID, today); err != nil {
			return res, err
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for _, m := range layoff {
		at, err := waitFor(time.Until(deadline), func() (time.Time, error) {
			at, _, err := lockDone(ctx, db, w.org.ID, devOf[m.ID])
			return at, err
		})
		if err != nil {
			return res, fmt.Errorf("layoff lock of %s: %w", devOf[m.ID], err)
		}
		res.LayoffLocks = max(res.LayoffLocks, at.Sub(t0))
		sat, err := waitFor(time.Until(deadline), func() (time.Time, error) { return lockStepDone(ctx, db, w.org.ID, empOf[m.ID]) })
		if err != nil {
			return res, fmt.Errorf("layoff lock step of %s: %w", empOf[m.ID], err)
		}
		res.LayoffSteps = max(res.LayoffSteps, sat.Sub(t0))
	}
	// No device locked twice.
	for _, m := range members {
		_, locks, err := lockDone(ctx, db, w.org.ID, devOf[m.ID])
		if err != nil {
			return res, err
		}
		res.LockCommands += locks
		if locks != 1 {
			res.DevicesTwice++
		}
	}
	for _, a := range agents {
		if a.Received("COMMAND_TYPE_LOCK") > 1 {
			res.DevicesTwice++
		}
	}
	// No step run twice.
	runs, err := stepRuns(ctx, db, w.org.ID)
	if err != nil {
		return res, err
	}
	for _, r := range runs {
		res.Steps++
		res.StepExecutions += r.started
		if r.twice() {
			res.StepsRunTwice++
		}
		if r.kind == string(lifecycle.StepLockDevices) && r.started == 1 {
			res.LockStepsInOneExecution++
		}
	}
	return res, nil
}

func employeesByExternalID(ctx context.Context, db *store.DB, orgID string) (map[string]string, error) {
	emps, err := allEmployees(ctx, db, orgID)
	out := map[string]string{}
	for _, e := range emps {
		out[e.ExternalID] = e.ID
	}
	return out, err
}

// waitFor polls get until it returns a time, an error or the timeout passes.
func waitFor(timeout time.Duration, get func() (time.Time, error)) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		at, err := get()
		if err != nil || !at.IsZero() {
			return at, err
		}
		if time.Now().After(deadline) {
			return at, errors.New("not done in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stepRun is one step's executions as the audit log records them.
type stepRun struct {
	kind                                           string
	started, waiting, blocked, retrying, succeeded int
}

// twice reports an execution nothing explains. A step executes once, plus once more
// after each run that ended waiting, blocked or retrying (it was woken or retried and
// re-checked reality); anything beyond that, or a second success, is a step that ran
// twice (a duplicate job, two replicas, a lost claim).
func (r stepRun) twice() bool {
	return r.succeeded > 1 || r.started > 1+r.waiting+r.blocked+r.retrying
}

// stepRuns counts the lifecycle.step.* audit rows per step of the org.
func stepRuns(ctx context.Context, db *store.DB, orgID string) (map[string]*stepRun, error) {
	rows, err := db.SQL.QueryContext(ctx, `SELECT target_id, action, after_json FROM audit_log WHERE org_id = $1 AND target_type = 'workflow_step'
		AND action IN ('lifecycle.step.started', 'lifecycle.step.waiting', 'lifecycle.step.blocked', 'lifecycle.step.retrying', 'lifecycle.step.succeeded')`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*stepRun{}
	for rows.Next() {
		var id, action string
		var after *string
		if err := rows.Scan(&id, &action, &after); err != nil {
			return nil, err
		}
		r := out[id]
		if r == nil {
			r = &stepRun{}
			out[id] = r
		}
		if after != nil && r.kind == "" {
			var a struct {
				Kind string `json:"kind"`
			}
			_ = json.Unmarshal([]byte(*after), &a)
			r.kind = a.Kind
		}
		switch action {
		case "lifecycle.step.started":
			r.started++
		case "lifecycle.step.waiting":
			r.waiting++
		case "lifecycle.step.blocked":
			r.blocked++
		case "lifecycle.step.retrying":
			r.retrying++
		case "lifecycle.step.succeeded":
			r.succeeded++
		}
	}
	return out, rows.Err()
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
	fmt.Fprintf(&b, "Measured %s on %s (%d cores, %s, %s/%s) with `go test -run '^$' -bench . -benchtime 1x ./bench/lifecycle/`\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), benchutil.CPUModel(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "(or `go run ./bench/lifecycle -write`). One process runs the fake Justworks (signed webhooks over loopback HTTP), HR\n")
	fmt.Fprintf(&b, "sync, the lifecycle engine with its production settings, River (poll 200 ms), a fake SCIM app, the agent API\n")
	fmt.Fprintf(&b, "(mTLS gRPC) and one simulated agent per laptop holding its command stream and answering RECEIVED, RUNNING, then\n")
	fmt.Fprintf(&b, "DONE with evidence signed by its own device key. An offboarding removes app access first (SCIM `active=false`),\n")
	fmt.Fprintf(&b, "then locks; the lock counts when its command is `done` with that evidence, and the lock step succeeds after that.\n")
	fmt.Fprintf(&b, "\"%s\" is the engine as it ships: woken by LISTEN/NOTIFY (Postgres) or the commit signal (SQLite), the poll\n", ModeNotify)
	fmt.Fprintf(&b, "(1 s) as backstop. \"%s\" is the same code with notifications off (`PollOnly`, for a Postgres behind a pooler\n", ModePoll)
	fmt.Fprintf(&b, "that cannot LISTEN), polling the outbox and the waiting commands every 250 ms as the engine did before notifications.\n")
	fmt.Fprintf(&b, "Target: webhook → lock done p99 < 500 ms.\n\n")
	fmt.Fprintf(&b, "| store | engine loop | load before (`uptime`) | webhook → %s account suspended p50 / p99 / max | webhook → lock done (n=%d) p50 / p99 / max | webhook → lock step succeeded p50 / p99 |\n", cfg.Kind, cfg.Webhooks)
	fmt.Fprintf(&b, "|---|---|---|---|---|---|\n")
	for _, r := range res {
		fmt.Fprintf(&b, "| %s | %s | %s | %s / %s / %s | %s / %s / %s | %s / %s |\n", r.Store, r.Mode, r.Load, ms(r.AppP50), ms(r.AppP99), ms(r.AppMax),
			ms(r.LockP50), ms(r.LockP99), ms(r.LockMax), ms(r.StepP50), ms(r.StepP99))
	}
	fmt.Fprintf(&b, "\n| store | layoff: terminated at once | all locks done | all lock steps succeeded | lock commands | steps (executions) | lock steps in one execution | steps run twice | devices locked twice |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res {
		if r.Layoff == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f s | %.1f s | %d | %d (%d) | %d | %d | %d |\n", r.Store, r.Layoff, r.LayoffLocks.Seconds(), r.LayoffSteps.Seconds(),
			r.LockCommands, r.Steps, r.StepExecutions, r.LockStepsInOneExecution, r.StepsRunTwice, r.DevicesTwice)
	}
	fmt.Fprintf(&b, "\nA step executes once, plus once more after each run that ended waiting (the lock step sends the command and\n")
	fmt.Fprintf(&b, "waits; the command's outcome wakes it and it succeeds on its second execution). \"Steps run twice\" counts\n")
	fmt.Fprintf(&b, "executions beyond that, per step id, from the audit log (`lifecycle.step.started` against `waiting`, `blocked`,\n")
	fmt.Fprintf(&b, "`retrying`), or a second success; the benchmark fails when it is not 0. \"Lock commands\" covers the webhook\n")
	fmt.Fprintf(&b, "terminations and the layoff, one per laptop.\n\n")
	b.WriteString(before)
	return b.String()
}

// before is the same scenario measured on the engine before this change (commit
// 11f8135: outbox polled every 250 ms, lock steps re-checked every 5 s, steps only as
// River jobs, a lock counted on the agent's acknowledgement), with its bench changed to
// wait for the lock command's done. Kept as a record; it is not re-measured.
const before = "Before notifications (commit 11f8135, measured 2026-12-02 04:43 UTC on the same machine, load 2.82 5.01 6.16;\n" +
	"the simulated agent then sent an unsigned DONE at once and the lock step succeeded on the acknowledgement):\n" +
	"webhook → lock done p50 / p99 / max SQLite 239 / 416 / 416 ms, PostgreSQL 280 / 417 / 417 ms; layoff of 500, all locks\n" +
	"done SQLite 23.8 s, PostgreSQL 14.1 s. Most of it was waiting: the outbox poll (250 ms) and River's fetch, which polls\n" +
	"(200 ms) on SQLite and waited out a 100 ms fetch cooldown per step on both stores. Now outbox rows and command outcomes\n" +
	"wake the engine, and a step that becomes runnable is started on the replica at once as well as enqueued (the claim\n" +
	"keeps it to one run).\n\n"

// WriteSection replaces (or appends) the "## Lifecycle" section of path.
func WriteSection(path, section string) error {
	return benchutil.WriteSection(path, "## Lifecycle", section)
}
