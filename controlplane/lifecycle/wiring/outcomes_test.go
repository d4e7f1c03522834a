package wiring_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring/agentsim"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// deviceAgent is "the agent on the laptop" as these tests drive it. agentsim stands in
// for it; to run a case against the real agent (agent/client, a -tags lanyardtest build
// for dry-run), replace startAgent for the behaviors the real agent can produce
// (Complete on a throwaway root, DryRun, a restart): the tests only use this interface.
type deviceAgent interface {
	Connect(ctx context.Context) error
	// Disconnect drops the command stream (the agent stops, the laptop reboots).
	Disconnect()
	Close()
	// Received counts commands of a type ("COMMAND_TYPE_LOCK") the agent got.
	Received(typ string) int
}

// startAgent enrolls and connects an agent for serial that answers commands of typ as
// b says (everything else: Complete).
func startAgent(ctx context.Context, t *testing.T, w *world, serial string, typ agentv1.CommandType, b agentsim.Behavior) deviceAgent {
	t.Helper()
	a, err := w.agent.Enroll(ctx, w.org.ID, serial, "Dell", "XPS 13")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	a.SetBehavior(typ, b)
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// leaver is an employee holding one laptop, with an agent, about to be offboarded.
func (w *world) leaver(ctx context.Context, first, serial string) (domain.Employee, domain.Device) {
	w.t.Helper()
	e := domain.Employee{OrgID: w.org.ID, Source: "manual", HR: domain.HRFields{FirstName: first, LastName: "Leaver",
		WorkEmail: first + "@acme.example.com", Status: domain.StatusActive, Departments: []string{"Engineering"}}}
	if err := store.InsertEmployee(ctx, w.db.SQL, &e); err != nil {
		w.t.Fatal(err)
	}
	d := domain.Device{OrgID: w.org.ID, SerialNumber: serial, Vendor: "dell", Model: "XPS 13", Platform: domain.PlatformLinux, EquipmentType: "laptop"}
	if err := w.db.CreateDevice(ctx, &d); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.db.AssignDevice(ctx, w.org.ID, d.ID, e.ID); err != nil {
		w.t.Fatal(err)
	}
	return e, d
}

func (w *world) offboard(ctx context.Context, e domain.Employee) store.Workflow {
	w.t.Helper()
	wf, err := w.eng.StartWorkflow(ctx, w.org.ID, lifecycle.StartOptions{Kind: lifecycle.KindOffboarding, EmployeeID: e.ID, Reason: "test"})
	if err != nil {
		w.t.Fatal(err)
	}
	return wf
}

func (w *world) stepOf(workflowID string, kind lifecycle.StepKind) store.WorkflowStep {
	wf, _ := w.db.GetWorkflow(context.Background(), w.org.ID, workflowID)
	for _, s := range wf.Steps {
		if s.Kind == string(kind) {
			return s
		}
	}
	return store.WorkflowStep{}
}

func (w *world) openTasksOf(workflowID, kind string) []store.LifecycleTask {
	ts, _, _ := w.db.ListTasks(context.Background(), w.org.ID, store.TaskFilter{WorkflowID: workflowID, State: "open"}, store.Page{Limit: 100})
	var out []store.LifecycleTask
	for _, t := range ts {
		if t.Kind == kind {
			out = append(out, t)
		}
	}
	return out
}

func (w *world) commandsOf(deviceID, typ string) []store.DeviceCommand {
	cs, _, _ := w.db.ListDeviceCommands(context.Background(), w.org.ID, deviceID, store.Page{Limit: 50})
	var out []store.DeviceCommand
	for _, c := range cs {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

func (w *world) events(typ, deviceID string) int {
	var n int
	_ = w.db.SQL.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM outbox_events WHERE type = $1 AND subject_id = $2`, typ, deviceID).Scan(&n)
	return n
}

// TestLockThroughTheCommandModel runs offboarding's lock through the real agent API and
// command model against an agent per behavior, on both stores. Only a verified DONE
// completes the step; every other ending blocks it with a task carrying the device's
// reason, and the laptop is never recorded locked, its retrieval never opened, and no
// wipe is sent.
func TestLockThroughTheCommandModel(t *testing.T) {
	cases := []struct {
		name     string
		behavior agentsim.Behavior
		// expire: the agent never answers; the command model's expiry sweep runs later.
		expire     bool
		wantState  string // the lock command's end state
		wantReason string // in the command's error and the task
	}{
		{name: "verified done", behavior: agentsim.Complete, wantState: store.CommandDone},
		{name: "fails after receipt", behavior: agentsim.FailAfterReceipt, wantState: store.CommandFailed, wantReason: agentsim.FailReason},
		{name: "never answers", behavior: agentsim.NeverAnswer, expire: true, wantState: store.CommandExpired, wantReason: "never confirmed receipt"},
		{name: "restarts mid-lock", behavior: agentsim.RestartMidCommand, wantState: store.CommandFailed, wantReason: agentsim.RestartReason},
		// The three below need the control-plane-commands slice (simulated state,
		// evidence verification); on a branch without it they fail.
		{name: "dry-run agent", behavior: agentsim.DryRun, wantState: store.CommandSimulated},
		{name: "unsigned evidence", behavior: agentsim.Unsigned, wantState: store.CommandFailed, wantReason: "unsigned"},
		{name: "evidence for another serial", behavior: agentsim.WrongSerial, wantState: store.CommandFailed, wantReason: "evidence is for serial"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.EachDB(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				w := newWorld(t, db)
				e, dev := w.leaver(ctx, "lena", "PF3DEMO02")
				ag := startAgent(ctx, t, w, dev.SerialNumber, agentv1.CommandType_COMMAND_TYPE_LOCK, tc.behavior)
				wf := w.offboard(ctx, e)
				if tc.expire {
					w.waitFor("lock sent and waiting", func() bool {
						return w.stepOf(wf.ID, lifecycle.StepLockDevices).State == "waiting" && ag.Received("COMMAND_TYPE_LOCK") == 1
					})
					// The expiry sweep, run as if the lock's 14 days had passed.
					if _, err := db.ExpireDeviceCommands(ctx, time.Now().Add(15*24*time.Hour)); err != nil {
						t.Fatal(err)
					}
				}
				want := "blocked"
				if tc.wantState == store.CommandDone {
					want = "succeeded"
				}
				w.waitFor("lock step "+want, func() bool { return w.stepOf(wf.ID, lifecycle.StepLockDevices).State == want })
				cmds := w.commandsOf(dev.ID, store.CommandLock)
				if len(cmds) != 1 || cmds[0].State != tc.wantState || !strings.Contains(cmds[0].Error, tc.wantReason) {
					t.Fatalf("lock commands = %+v, want one %s with %q", cmds, tc.wantState, tc.wantReason)
				}
				if want == "succeeded" {
					var res struct {
						Evidence []byte `json:"evidence"`
					}
					var ev agentv1.Evidence
					if err := json.Unmarshal(cmds[0].Result, &res); err != nil || proto.Unmarshal(res.Evidence, &ev) != nil ||
						ev.GetCommandId() != cmds[0].ID || len(ev.GetChecks()) == 0 {
						t.Fatalf("done lock without its evidence: %s", cmds[0].Result)
					}
					w.waitFor("retrieval open", func() bool { return w.stepOf(wf.ID, lifecycle.StepAwaitReceipt).State == "waiting" })
					return
				}
				st := w.stepOf(wf.ID, lifecycle.StepLockDevices)
				tasks := w.openTasksOf(wf.ID, "manual_lock")
				wantDetail := "lock of PF3DEMO02 ended " + tc.wantState + ": " + cmds[0].Error
				if len(tasks) != 1 || tasks[0].SubjectID != dev.ID || !strings.Contains(tasks[0].Detail, wantDetail) {
					t.Fatalf("tasks = %+v, want one manual_lock with %q", tasks, wantDetail)
				}
				if !strings.Contains(st.LastError, "PF3DEMO02 "+tc.wantState) || !strings.Contains(string(st.Output), `"outcome":"blocked"`) {
					t.Fatalf("blocked step: last_error %q, output %s", st.LastError, st.Output)
				}
				if es, _, _ := db.ListAudit(ctx, w.org.ID, store.AuditFilter{Action: "device_command." + tc.wantState, TargetID: cmds[0].ID}, store.Page{}); len(es) != 1 {
					t.Fatalf("audit device_command.%s = %d rows", tc.wantState, len(es))
				}
				if s := w.stepOf(wf.ID, lifecycle.StepOpenRetrieval).State; s != "pending" {
					t.Fatalf("open_retrieval = %s", s)
				}
				if n := w.events(domain.EventDeviceLocked, dev.ID); n != 0 {
					t.Fatalf("%d device.locked events", n)
				}
				if n := len(w.commandsOf(dev.ID, store.CommandWipe)); n != 0 {
					t.Fatalf("%d wipes sent", n)
				}
			})
		})
	}
}

// TestLockAfterRebootIsIdempotent: the lock reaches the agent, the laptop reboots before
// answering, and the agent comes back: the same command (same idempotency key) is
// delivered again and completes; one lock command exists, and asking again returns it.
func TestLockAfterRebootIsIdempotent(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		e, dev := w.leaver(ctx, "rob", "SER-REBOOT")
		a, err := w.agent.Enroll(ctx, w.org.ID, dev.SerialNumber, "Dell", "XPS 13")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		a.SetBehavior(agentv1.CommandType_COMMAND_TYPE_LOCK, agentsim.NeverAnswer)
		if err := a.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		wf := w.offboard(ctx, e)
		w.waitFor("lock delivered", func() bool { return a.Received("COMMAND_TYPE_LOCK") == 1 })
		a.Disconnect()
		a.SetBehavior(agentv1.CommandType_COMMAND_TYPE_LOCK, agentsim.Complete)
		if err := a.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		w.waitFor("lock step succeeded", func() bool { return w.stepOf(wf.ID, lifecycle.StepLockDevices).State == "succeeded" })
		cmds := w.commandsOf(dev.ID, store.CommandLock)
		if len(cmds) != 1 || cmds[0].State != store.CommandDone {
			t.Fatalf("lock commands = %+v", cmds)
		}
		again, err := (wiring.Commander{DB: db, Commands: w.agent.API.Commands}).Lock(ctx, w.org.ID, dev.ID, cmds[0].IdempotencyKey)
		if err != nil || again.ID != cmds[0].ID || !again.Done() {
			t.Fatalf("lock again with key %s = %+v %v", cmds[0].IdempotencyKey, again, err)
		}
		if n := len(w.commandsOf(dev.ID, store.CommandLock)); n != 1 {
			t.Fatalf("%d lock commands after asking again", n)
		}
	})
}

// TestWipeFailureThroughTheCommandModel: the wipe reaches the agent and fails after
// receipt: the wipe step is blocked with the device's reason and the laptop stays
// received, never cleaned or redeployed.
func TestWipeFailureThroughTheCommandModel(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		e, dev := w.leaver(ctx, "wes", "SER-WIPEF")
		startAgent(ctx, t, w, dev.SerialNumber, agentv1.CommandType_COMMAND_TYPE_WIPE, agentsim.FailAfterReceipt)
		wf := w.offboard(ctx, e)
		w.waitFor("retrieval open", func() bool { return w.stepOf(wf.ID, lifecycle.StepAwaitReceipt).State == "waiting" })
		rs, _, _ := store.ListRetrievals(ctx, db.SQL, w.org.ID, store.RetrievalFilter{EmployeeID: e.ID}, store.Page{})
		wh := store.Warehouse{OrgID: w.org.ID, Name: "Reno"}
		if err := db.InsertWarehouse(ctx, &wh); err != nil {
			t.Fatal(err)
		}
		if _, err := w.eng.Receive(ctx, w.org.ID, rs[0].ID, lifecycle.IntakeInput{WarehouseID: wh.ID, Condition: "good"}); err != nil {
			t.Fatal(err)
		}
		w.waitFor("wipe blocked", func() bool { return w.stepOf(wf.ID, lifecycle.StepWipeDevices).State == "blocked" })
		tasks := w.openTasksOf(wf.ID, "manual_wipe")
		if len(tasks) != 1 || !strings.Contains(tasks[0].Detail, "wipe of SER-WIPEF ended failed: "+agentsim.FailReason) {
			t.Fatalf("tasks = %+v", tasks)
		}
		if d, _ := db.GetDevice(ctx, w.org.ID, dev.ID); d.State != domain.StateReceived {
			t.Fatalf("device = %s, want received", d.State)
		}
		if s := w.stepOf(wf.ID, lifecycle.StepCleanDevices).State; s != "pending" {
			t.Fatalf("clean step = %s", s)
		}
		if n := w.events(domain.EventDeviceWiped, dev.ID); n != 0 {
			t.Fatalf("%d device.wiped events", n)
		}
	})
}
