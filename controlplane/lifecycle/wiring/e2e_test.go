package wiring_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/apps"
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
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// offsetClock is wall time plus an offset that the test moves forward, shared by the
// lifecycle engine, HR sync and the fake Justworks server.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.offset)
}

func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

type world struct {
	t     *testing.T
	db    *store.DB
	clock *offsetClock
	fake  *fakejustworks.Server
	hr    *hrsync.Engine
	eng   *lifecycle.Engine
	scim  *fakescim.Server
	agent *agentsim.Server
	org   domain.Org
	// mac is the real Apple MDM service with fake ABM and APNs (newMacWorld only).
	mac *appleMDM
}

func newWorld(t *testing.T, db *store.DB) *world { t.Helper(); return buildWorld(t, db, false) }

// newMacWorld is newWorld plus the real Apple MDM service (fake ABM, fake APNs), its
// channel registered on the agent API's command model as controlplane/server does.
func newMacWorld(t *testing.T, db *store.DB) *world { t.Helper(); return buildWorld(t, db, true) }

func buildWorld(t *testing.T, db *store.DB, withMac bool) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &world{t: t, db: db, clock: &offsetClock{}}
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	w.org = domain.Org{Name: "Acme", Plan: domain.PlanPro, TimeZone: "America/New_York",
		Settings: domain.OrgSettings{OffboardingHour: 17, OnboardingLeadDays: 5}}
	if err := store.CreateOrg(ctx, db.SQL, &w.org); err != nil {
		t.Fatal(err)
	}
	// Fake Justworks and HR sync (webhooks into our API server).
	w.fake, err = fakejustworks.Start(fakejustworks.Options{AutoDeliver: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.fake.Close() })
	var handler *api.Server
	srv := httptest.NewServer(httpFunc(func() *api.Server { return handler }))
	t.Cleanup(srv.Close)
	jwCfg := hrsync.FakeJustworksConfig(w.fake, srv.URL)
	p, err := justworks.New(jwCfg)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	w.hr, err = hrsync.New(hrsync.Config{DB: db, Keyring: kr, Providers: map[string]hris.Provider{"justworks": p}, PublicURL: srv.URL,
		Logger: quiet, Now: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.hr.Start(ctx) }()
	t.Cleanup(w.hr.Close)
	// The real agent API with simulated agents.
	w.agent, err = agentsim.Start(ctx, db, kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.agent.Close)
	var mdm *apple.Service
	if withMac {
		w.mac = startAppleMDM(ctx, t, db, kr, w.org.ID)
		w.agent.API.Commands.RegisterChannel(w.mac.svc.Channel())
		mdm = w.mac.svc
	}
	// Lifecycle wired like the server does it, on River.
	if err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	reg := jobs.NewRegistry()
	handle := &jobs.Handle{}
	w.eng = wiring.New(wiring.Deps{DB: db, Keys: kr, Jobs: handle, Registry: reg, Commands: w.agent.API.Commands, MDM: mdm, Logger: quiet, Workers: 4, Connectors: map[string]apps.Builder{"scim": apps.BuildSCIM},
		InstallerURL: func(_ context.Context, orgID string, p domain.Platform) (string, error) {
			return srv.URL + "/downloads/lanyard-agent-" + string(p), nil
		},
		Options: []lifecycle.Option{lifecycle.WithClock(w.clock),
			lifecycle.WithConfig(lifecycle.Config{Recheck: time.Second, CommandRecheck: 200 * time.Millisecond, Backoff: func(int) time.Duration { return 50 * time.Millisecond }})}})
	client, err := jobs.NewClient(db, reg, jobs.Options{PollInterval: 50 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	handle.Set(client)
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.Stop(sctx)
	})
	handler = api.New(api.Options{Store: db, Logger: quiet}, w.hr.Routes(), w.eng.Routes())
	// App access on a fake SCIM server.
	w.scim, err = fakescim.Start("scim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.scim.Close() })
	w.scim.AddGroup("engineering")
	sealed, _ := kr.Seal([]byte("scim"), lifecycle.TokenAAD(w.org.ID, "github"))
	if err := db.UpsertAppConnector(ctx, &store.AppConnector{OrgID: w.org.ID, App: "github", Kind: "scim", BaseURL: w.scim.URL,
		TokenSealed: sealed, RevokeMode: "deactivate"}); err != nil {
		t.Fatal(err)
	}
	rule, _ := json.Marshal([]map[string]any{{"app": "github", "groups": []string{"engineering"}}})
	if err := db.InsertAppRule(ctx, &store.AppRule{OrgID: w.org.ID, Department: "Engineering", Apps: string(rule)}); err != nil {
		t.Fatal(err)
	}
	// Lifecycle's loop (outbox + timers), as the server runs it.
	go w.eng.Run(ctx, 50*time.Millisecond)
	if _, err := hrsync.ConnectDemo(ctx, w.hr, w.org.ID, w.fake); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) advance(d time.Duration) {
	w.clock.advance(d)
	w.fake.Advance(d)
}

func (w *world) waitFor(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (w *world) employeeByEmail(email string) (domain.Employee, bool) {
	es, _, err := w.db.ListEmployees(context.Background(), w.org.ID, store.EmployeeFilter{Email: email}, store.Page{})
	if err != nil || len(es) == 0 {
		return domain.Employee{}, false
	}
	return es[0], true
}

func (w *world) workflow(empID string, kind lifecycle.Kind) store.Workflow {
	ws, _, _ := w.db.ListWorkflows(context.Background(), w.org.ID, store.WorkflowFilter{EmployeeID: empID, Kind: string(kind)}, store.Page{})
	if len(ws) == 0 {
		return store.Workflow{}
	}
	full, _ := w.db.GetWorkflow(context.Background(), w.org.ID, ws[len(ws)-1].ID)
	return full
}

func (w *world) step(empID string, kind lifecycle.Kind, step lifecycle.StepKind) string {
	for _, s := range w.workflow(empID, kind).Steps {
		if s.Kind == string(step) {
			return s.State
		}
	}
	return ""
}

func (w *world) hire(first string, start time.Time) fakejustworks.Member {
	return w.fake.AddMember(fakejustworks.Member{Name: &fakejustworks.Name{GivenName: first, FamilyName: "Hopper"}, Active: true, Type: "employee",
		JobTitle: "Engineer", Department: &fakejustworks.Ref{ID: "dep_eng", Name: "Engineering"},
		CurrentEmployment:   map[string]fakejustworks.Employment{"US": {EmploymentType: "full_time"}},
		Emails:              []fakejustworks.Email{{Type: "WORK", Address: first + "@acme.example.com"}},
		Addresses:           []fakejustworks.Address{{Line1: "1 Main St", City: "Brooklyn", State: "NY", PostalCode: "11201", Country: "US"}},
		EmploymentStartDate: start.Format(time.DateOnly)})
}

// TestEndToEndWithRealCapabilities: fake Justworks hire → HR sync (webhook) → stocked
// laptop assigned, installer link, apps granted on fake SCIM → the real agent API sees
// the agent's first report (check-in) → termination scheduled in Justworks → at the
// date (org time zone) apps deactivated, lock delivered over the agent's stream and
// acknowledged, retrieval opens → receipt at a warehouse → wipe over the stream →
// cleaning → the laptop goes to the next hire.
func TestEndToEndWithRealCapabilities(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		lap := domain.Device{OrgID: w.org.ID, SerialNumber: "JW-LAP-1", Vendor: "dell", Model: "XPS 13", Platform: domain.PlatformLinux, EquipmentType: "laptop"}
		if err := db.CreateDevice(ctx, &lap); err != nil {
			t.Fatal(err)
		}
		start := w.clock.Now().AddDate(0, 0, 3) // inside the 5-day lead time: onboarding runs at once
		w.hire("grace", start)
		var grace domain.Employee
		w.waitFor("HR sync imports the hire", func() bool { var ok bool; grace, ok = w.employeeByEmail("grace@acme.example.com"); return ok })
		w.waitFor("onboarding waits for check-in", func() bool {
			return w.step(grace.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitCheckIn) == "waiting"
		})
		if d, _ := db.GetDevice(ctx, w.org.ID, lap.ID); d.AssignedEmployeeID != grace.ID {
			t.Fatalf("laptop holder = %q", d.AssignedEmployeeID)
		}
		ob := w.workflow(grace.ID, lifecycle.KindOnboarding)
		if string(ob.Steps[3].Output) == "" || !json.Valid(ob.Steps[3].Output) {
			t.Fatalf("enroll output = %s", ob.Steps[3].Output)
		}
		var enroll map[string]any
		_ = json.Unmarshal(ob.Steps[3].Output, &enroll)
		if enroll["method"] != "link" {
			t.Fatalf("enroll = %v", enroll)
		}
		if u, ok := w.scim.UserByName("grace@acme.example.com"); !ok || !u.Active {
			t.Fatalf("SCIM user = %+v %v", u, ok)
		}
		// The agent is installed: it enrolls, reports inventory (check-in) and connects.
		ag, err := w.agent.Enroll(ctx, w.org.ID, "JW-LAP-1", "Dell", "XPS 13")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ag.Close)
		if err := ag.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		w.waitFor("onboarding done", func() bool { return w.workflow(grace.ID, lifecycle.KindOnboarding).State == "succeeded" })

		// Termination scheduled in Justworks for 10 days from now.
		term := w.clock.Now().AddDate(0, 0, 10)
		if _, err := w.fake.ScheduleTermination(grace.ExternalID, term.Format(time.DateOnly)); err != nil {
			t.Fatal(err)
		}
		w.waitFor("offboarding scheduled", func() bool { return w.workflow(grace.ID, lifecycle.KindOffboarding).State == "scheduled" })
		off := w.workflow(grace.ID, lifecycle.KindOffboarding)
		loc, _ := time.LoadLocation("America/New_York")
		// The HR termination date is the calendar date sent to Justworks (term's own date),
		// run at 17:00 in the org's zone; taking the date in New York instead fails
		// between 00:00 UTC and midnight in New York.
		y, m, d := term.Date()
		if want := time.Date(y, m, d, 17, 0, 0, 0, loc); !off.RunAt.Equal(want) {
			t.Fatalf("offboarding run_at = %s, want %s", off.RunAt, want)
		}
		// Jump to the termination date, past 17:00 New York.
		w.advance(off.RunAt.Sub(w.clock.Now()) + time.Minute)
		w.waitFor("retrieval open", func() bool {
			return w.step(grace.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		if u, _ := w.scim.UserByName("grace@acme.example.com"); u.Active {
			t.Fatal("SCIM user still active")
		}
		if n := ag.Received("COMMAND_TYPE_LOCK"); n != 1 {
			t.Fatalf("agent got %d locks", n)
		}
		cmds, _, err := db.ListDeviceCommands(ctx, w.org.ID, lap.ID, store.Page{})
		if err != nil || len(cmds) != 1 || cmds[0].Type != store.CommandLock || cmds[0].State != store.CommandDone {
			t.Fatalf("device commands = %+v %v", cmds, err)
		}
		rs, _, _ := store.ListRetrievals(ctx, db.SQL, w.org.ID, store.RetrievalFilter{EmployeeID: grace.ID}, store.Page{})
		wh := store.Warehouse{OrgID: w.org.ID, Name: "Newark"}
		if err := db.InsertWarehouse(ctx, &wh); err != nil {
			t.Fatal(err)
		}
		if _, err := w.eng.KitSent(ctx, w.org.ID, rs[0].ID, "1Z-KIT"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.eng.Receive(ctx, w.org.ID, rs[0].ID, lifecycle.IntakeInput{WarehouseID: wh.ID, Condition: "good"}); err != nil {
			t.Fatal(err)
		}
		w.waitFor("cleaning", func() bool {
			return w.step(grace.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices) == "waiting"
		})
		if n := ag.Received("COMMAND_TYPE_WIPE"); n != 1 {
			t.Fatalf("agent got %d wipes", n)
		}
		ts, _, _ := db.ListTasks(ctx, w.org.ID, store.TaskFilter{WorkflowID: off.ID, State: "open"}, store.Page{})
		if len(ts) != 1 {
			t.Fatalf("open tasks = %+v", ts)
		}
		if _, err := w.eng.CompleteTask(ctx, w.org.ID, ts[0].ID, "cleaned"); err != nil {
			t.Fatal(err)
		}
		w.waitFor("offboarding done", func() bool { return w.workflow(grace.ID, lifecycle.KindOffboarding).State == "succeeded" })
		// The next hire gets the laptop.
		w.hire("alan", w.clock.Now().AddDate(0, 0, 2))
		var alan domain.Employee
		w.waitFor("next hire imported", func() bool { var ok bool; alan, ok = w.employeeByEmail("alan@acme.example.com"); return ok })
		w.waitFor("laptop redeployed", func() bool {
			d, _ := db.GetDevice(ctx, w.org.ID, lap.ID)
			return d.AssignedEmployeeID == alan.ID
		})
	})
}
