package lifecycle_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/entra"
	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
	"github.com/lanyardhq/lanyard/controlplane/apps/github"
	"github.com/lanyardhq/lanyard/controlplane/apps/google"
	"github.com/lanyardhq/lanyard/controlplane/apps/okta"
	"github.com/lanyardhq/lanyard/controlplane/apps/slackscim"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// fakeCommander is the device command model without its channels: commands are real
// device_commands rows (store.CreateDeviceCommand, idempotent by key, every transition
// audited and announced like the agent API's), and the fake plays the device. By
// default a device proves the command at once (done); answer scripts another end
// ("pending" leaves it sent, for settle to finish later). A device without a channel
// gets ErrNoChannel.
type fakeCommander struct {
	db      *store.DB
	mu      sync.Mutex
	channel map[string]string // device id → agent|mdm ("" = none)
	calls   map[string]int    // verb:device → commands created
	answer  map[string]deviceAnswer
}

// deviceAnswer is how a device ends a command: state (done, failed, expired, canceled,
// simulated, or "pending" = stays sent) and its reason.
type deviceAnswer struct{ state, reason string }

func newFakeCommander(db *store.DB) *fakeCommander {
	return &fakeCommander{db: db, channel: map[string]string{}, calls: map[string]int{}, answer: map[string]deviceAnswer{}}
}

// script sets how deviceID answers commands of verb from now on.
func (f *fakeCommander) script(verb, deviceID, state, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer[verb+":"+deviceID] = deviceAnswer{state, reason}
}

func (f *fakeCommander) send(ctx context.Context, verb, orgID, deviceID, key string) (lifecycle.Command, error) {
	f.mu.Lock()
	ch := f.channel[deviceID]
	ans, scripted := f.answer[verb+":"+deviceID]
	f.mu.Unlock()
	if ch == "" {
		return lifecycle.Command{}, lifecycle.ErrNoChannel
	}
	dev, err := f.db.GetDevice(ctx, orgID, deviceID)
	if err != nil {
		return lifecycle.Command{}, err
	}
	c := store.DeviceCommand{OrgID: orgID, DeviceID: deviceID, Type: verb, IdempotencyKey: key, Channel: ch, TargetSerial: dev.SerialNumber,
		State: store.CommandQueued, ExpiresAt: time.Now().Add(14 * 24 * time.Hour)}
	created, err := f.db.CreateDeviceCommand(ctx, &c)
	if err != nil {
		return lifecycle.Command{}, err
	}
	if !created {
		return toCommand(c), nil
	}
	f.mu.Lock()
	f.calls[verb+":"+deviceID]++
	f.mu.Unlock()
	if c, err = f.transition(ctx, c, store.CommandSent, ""); err != nil {
		return lifecycle.Command{}, err
	}
	if !scripted {
		ans.state = store.CommandDone
	}
	if ans.state != "pending" {
		if c, err = f.transition(ctx, c, ans.state, ans.reason); err != nil {
			return lifecycle.Command{}, err
		}
	}
	return toCommand(c), nil
}

func (f *fakeCommander) transition(ctx context.Context, c store.DeviceCommand, to, reason string) (store.DeviceCommand, error) {
	from := []string{store.CommandQueued, store.CommandSent, store.CommandReceived, store.CommandRunning}
	return f.db.TransitionDeviceCommand(ctx, c.OrgID, c.ID, store.CommandUpdate{From: from, To: to, Error: reason})
}

// settle ends a pending command as the device would report it later.
func (f *fakeCommander) settle(ctx context.Context, orgID, commandID, state, reason string) error {
	c, err := f.db.GetDeviceCommand(ctx, orgID, commandID)
	if err != nil {
		return err
	}
	_, err = f.transition(ctx, c, state, reason)
	return err
}

func toCommand(c store.DeviceCommand) lifecycle.Command {
	return lifecycle.Command{ID: c.ID, State: c.State, Channel: c.Channel, Reason: c.Error}
}

func (f *fakeCommander) Lock(ctx context.Context, orgID, deviceID, key string) (lifecycle.Command, error) {
	return f.send(ctx, store.CommandLock, orgID, deviceID, key)
}

func (f *fakeCommander) Wipe(ctx context.Context, orgID, deviceID, key string) (lifecycle.Command, error) {
	return f.send(ctx, store.CommandWipe, orgID, deviceID, key)
}

func (f *fakeCommander) Unlock(ctx context.Context, orgID, deviceID, key string) (lifecycle.Command, error) {
	return f.send(ctx, store.CommandUnlock, orgID, deviceID, key)
}

func (f *fakeCommander) CommandStatus(ctx context.Context, orgID, id string) (lifecycle.Command, error) {
	c, err := f.db.GetDeviceCommand(ctx, orgID, id)
	if err != nil {
		return lifecycle.Command{}, err
	}
	return toCommand(c), nil
}

func (f *fakeCommander) count(verb, deviceID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[verb+":"+deviceID]
}

// fakeEnroller records ADE assignments and hands out links.
type fakeEnroller struct {
	mu  sync.Mutex
	ade []string
}

func (f *fakeEnroller) AssignADEProfile(_ context.Context, _, serial, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ade = append(f.ade, serial)
	return nil
}

func (f *fakeEnroller) EnrollmentLink(_ context.Context, orgID, employeeID string, p domain.Platform) (string, error) {
	return fmt.Sprintf("https://lanyard.test/enroll/%s/%s?platform=%s", orgID, employeeID, p), nil
}

// testBuilders are the connector kinds the tests build (the server's wiring, with
// the manager who receives a leaver's Drive looked up in db).
func testBuilders(db *store.DB) map[string]apps.Builder {
	mgr := google.WithManagerLookup(func(ctx context.Context, p apps.Person) (string, error) {
		return db.ManagerWorkEmail(ctx, p.ExternalID)
	})
	return map[string]apps.Builder{"scim": apps.BuildSCIM, "google": google.Builder(mgr), "entra": entra.Build,
		"okta": okta.Build, "github": github.Build, "slack": slackscim.Build}
}

type harness struct {
	t       *testing.T
	db      *store.DB
	eng     *lifecycle.Engine
	clock   *lifecycle.FakeClock
	cmd     *fakeCommander
	enr     *fakeEnroller
	scim    *fakescim.Server
	keys    *secrets.Keyring
	river   *jobs.Client
	org     domain.Org
	metrics *prometheus.Registry
	cfg     lifecycle.Config
}

type harnessOpts struct {
	plan    domain.Plan
	noRiver bool
	cfg     lifecycle.Config
}

func newHarness(t *testing.T, db *store.DB, o harnessOpts) *harness {
	t.Helper()
	ctx := context.Background()
	if o.plan == "" {
		o.plan = domain.PlanPro
	}
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, clock: lifecycle.NewFakeClock(time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)), keys: kr}
	h.cmd = newFakeCommander(db)
	h.enr = &fakeEnroller{}
	h.scim, err = fakescim.Start("scim-token")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.scim.Close() })
	cfg := o.cfg
	if cfg.Backoff == nil {
		cfg.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	}
	h.cfg = cfg
	h.eng = h.newEngine()
	h.org = domain.Org{Name: "Acme", Plan: o.plan, TimeZone: "America/New_York",
		Settings: domain.OrgSettings{OffboardingHour: 17, OnboardingLeadDays: 5}}
	if err := store.CreateOrg(ctx, db.SQL, &h.org); err != nil {
		t.Fatal(err)
	}
	if !o.noRiver {
		h.river = startRiver(t, db, h.eng)
	}
	return h
}

// newEngine builds an engine over the harness's database, fakes and config, with a
// fresh metrics registry (a restarted process).
func (h *harness) newEngine() *lifecycle.Engine {
	h.metrics = prometheus.NewRegistry()
	return lifecycle.New(h.db, lifecycle.WithClock(h.clock), lifecycle.WithConfig(h.cfg), lifecycle.WithCommander(h.cmd),
		lifecycle.WithEnroller(h.enr), lifecycle.WithKeys(h.keys), lifecycle.WithApps(lifecycle.StoreAppDirectory{DB: h.db, Keys: h.keys, Builders: testBuilders(h.db)}),
		lifecycle.WithMetrics(h.metrics))
}

// startRiver starts a River client working the lifecycle queue for eng.
func startRiver(t *testing.T, db *store.DB, eng *lifecycle.Engine) *jobs.Client {
	t.Helper()
	ctx := context.Background()
	if err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	reg := jobs.NewRegistry()
	eng.Register(reg, 4)
	c, err := jobs.NewClient(db, reg, jobs.Options{PollInterval: 50 * time.Millisecond, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	handle := &jobs.Handle{}
	handle.Set(c)
	eng.SetQueue(eng.NewRiverQueue(handle))
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(sctx)
	})
	return c
}

// connectSCIM configures the fake SCIM server as app `name` with a rule for Engineering.
func (h *harness) connectSCIM(name string, groups ...string) {
	h.t.Helper()
	for _, g := range groups {
		h.scim.AddGroup(g)
	}
	h.connectFake(name, h.scim, groups...)
}

// hire inserts an employee and the employee.hired event, as HR sync does.
func (h *harness) hire(first string, start domain.Date) domain.Employee {
	h.t.Helper()
	ctx := context.Background()
	e := domain.Employee{OrgID: h.org.ID, Source: "justworks", ExternalID: domain.NewID(), EquipmentType: "laptop", HR: domain.HRFields{
		FirstName: first, LastName: "Doe", WorkEmail: first + "@acme.test", Status: domain.StatusPending,
		Departments: []string{"Engineering"}, MemberType: domain.MemberFullTime, StartDate: &start,
		Address: domain.Address{Line1: "1 Main St", City: "Brooklyn", State: "NY", PostalCode: "11201", Country: "US"}}}
	err := h.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := store.InsertEmployee(ctx, tx, &e); err != nil {
			return err
		}
		return store.WriteEvent(ctx, tx, domain.Event{OrgID: h.org.ID, Type: domain.EventEmployeeHired, SubjectType: "employee", SubjectID: e.ID})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

// hrEvent changes an employee's HR fields and writes an event, as HR sync does.
func (h *harness) hrEvent(e *domain.Employee, typ string, mutate func(*domain.Employee)) {
	h.t.Helper()
	ctx := context.Background()
	err := h.db.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := store.GetEmployee(ctx, tx, h.org.ID, e.ID)
		if err != nil {
			return err
		}
		if mutate != nil {
			mutate(&cur)
			if err := store.UpdateEmployee(ctx, tx, &cur); err != nil {
				return err
			}
		}
		*e = cur
		return store.WriteEvent(ctx, tx, domain.Event{OrgID: h.org.ID, Type: typ, SubjectType: "employee", SubjectID: e.ID})
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// device creates a stocked device.
func (h *harness) device(serial string, platform domain.Platform, channel string) domain.Device {
	h.t.Helper()
	d := domain.Device{OrgID: h.org.ID, SerialNumber: serial, Vendor: "apple", Model: "MacBook Air", Platform: platform, EquipmentType: "laptop"}
	if platform != domain.PlatformMacOS {
		d.Vendor, d.Model = "lenovo", "ThinkPad X1"
	}
	if err := h.db.CreateDevice(context.Background(), &d); err != nil {
		h.t.Fatal(err)
	}
	h.cmd.mu.Lock()
	h.cmd.channel[d.ID] = channel
	h.cmd.mu.Unlock()
	return d
}

// pump consumes the outbox and ticks until cond holds.
func (h *harness) pump(what string, cond func() bool) {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := h.eng.ConsumeOutbox(ctx); err != nil {
			h.t.Fatalf("consume: %v", err)
		}
		if _, err := h.eng.Tick(ctx); err != nil {
			h.t.Fatalf("tick: %v", err)
		}
		if _, err := h.eng.WakeCommandSteps(ctx); err != nil {
			h.t.Fatalf("wake command steps: %v", err)
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s\n%s", what, h.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) dump() string {
	ws, _, _ := h.db.ListWorkflows(context.Background(), h.org.ID, store.WorkflowFilter{}, store.Page{Limit: 50})
	out := ""
	for _, w := range ws {
		full, _ := h.db.GetWorkflow(context.Background(), h.org.ID, w.ID)
		out += fmt.Sprintf("workflow %s %s %s run_at=%s reason=%q\n", full.Kind, full.ID, full.State, full.RunAt, full.Reason)
		for _, s := range full.Steps {
			out += fmt.Sprintf("  %d %s %s attempts=%d err=%q out=%s\n", s.Seq, s.Kind, s.State, s.Attempts, s.LastError, s.Output)
		}
	}
	return out
}

func (h *harness) workflow(employeeID string, kind lifecycle.Kind) store.Workflow {
	h.t.Helper()
	ws, _, err := h.db.ListWorkflows(context.Background(), h.org.ID, store.WorkflowFilter{EmployeeID: employeeID, Kind: string(kind)}, store.Page{Limit: 50})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(ws) == 0 {
		return store.Workflow{}
	}
	w, err := h.db.GetWorkflow(context.Background(), h.org.ID, ws[len(ws)-1].ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

func (h *harness) wfState(employeeID string, kind lifecycle.Kind) string {
	return h.workflow(employeeID, kind).State
}

func (h *harness) stepState(employeeID string, kind lifecycle.Kind, step lifecycle.StepKind) string {
	for _, s := range h.workflow(employeeID, kind).Steps {
		if s.Kind == string(step) {
			return s.State
		}
	}
	return ""
}

func (h *harness) getDevice(id string) domain.Device {
	h.t.Helper()
	d, err := h.db.GetDevice(context.Background(), h.org.ID, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// checkIn writes device.checked_in, as the agent API does on a device's check-in.
func (h *harness) checkIn(deviceID string) {
	h.t.Helper()
	ctx := context.Background()
	if err := h.db.InTx(ctx, func(tx *sql.Tx) error {
		return store.WriteEvent(ctx, tx, domain.Event{OrgID: h.org.ID, Type: domain.EventDeviceCheckedIn, SubjectType: "device", SubjectID: deviceID})
	}); err != nil {
		h.t.Fatal(err)
	}
}

// openTasks lists a workflow's open tasks.
func (h *harness) openTasks(workflowID string) []store.LifecycleTask {
	ts, _, err := h.db.ListTasks(context.Background(), h.org.ID, store.TaskFilter{WorkflowID: workflowID, State: "open"}, store.Page{Limit: 200})
	if err != nil {
		h.t.Fatal(err)
	}
	return ts
}

// stepRuns counts audit rows of action for a step.
func (h *harness) auditCount(action, targetID string) int {
	es, _, err := h.db.ListAudit(context.Background(), h.org.ID, store.AuditFilter{Action: action, TargetID: targetID}, store.Page{Limit: 200})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(es)
}

// Channel implements lifecycle.ChannelInfo.
func (f *fakeCommander) Channel(_ context.Context, _, deviceID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.channel[deviceID], nil
}
