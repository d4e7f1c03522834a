package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// stepDevice is one device's entry in a lock or wipe step's output.
type stepDevice struct {
	DeviceID   string `json:"device_id"`
	CommandID  string `json:"command_id"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	Outcome    string `json:"outcome"`
	ManualTask string `json:"manual_task"`
	DoneBy     string `json:"done_by"`
}

func (h *harness) step(employeeID string, kind lifecycle.Kind, step lifecycle.StepKind) store.WorkflowStep {
	h.t.Helper()
	for _, s := range h.workflow(employeeID, kind).Steps {
		if s.Kind == string(step) {
			return s
		}
	}
	h.t.Fatalf("no step %s", step)
	return store.WorkflowStep{}
}

func stepDevices(t *testing.T, s store.WorkflowStep) []stepDevice {
	t.Helper()
	var out struct {
		Devices []stepDevice `json:"devices"`
	}
	if err := json.Unmarshal(s.Output, &out); err != nil {
		t.Fatalf("step output %s: %v", s.Output, err)
	}
	return out.Devices
}

// openTasksOf lists a workflow's open tasks of one kind.
func (h *harness) openTasksOf(workflowID, kind string) []store.LifecycleTask {
	var out []store.LifecycleTask
	for _, t := range h.openTasks(workflowID) {
		if t.Kind == kind {
			out = append(out, t)
		}
	}
	return out
}

// deviceEvents counts outbox events of typ about a device.
func (h *harness) deviceEvents(typ, deviceID string) int {
	h.t.Helper()
	var n int
	if err := h.db.SQL.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM outbox_events WHERE type = $1 AND subject_id = $2`,
		typ, deviceID).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// TestLockOutcomes: a lock step succeeds only when the device's command ends done.
// failed, expired, canceled and simulated block it visibly (step state, last_error and
// the device's output name the state and the reason) with a manual task whose detail
// carries the reason, and the workflow goes no further; queued/sent/received keep it
// waiting. Nothing but done writes a lock.
func TestLockOutcomes(t *testing.T) {
	cases := []struct {
		name, state, reason string
		wantStep            string
	}{
		{"done", store.CommandDone, "", "succeeded"},
		{"failed after receipt", store.CommandFailed, "check account-locked:alice failed: found password usable, want locked", "blocked"},
		{"no answer", store.CommandExpired, "expired before completion", "blocked"},
		{"canceled", store.CommandCanceled, "canceled by user:bob", "blocked"},
		// Needs the simulated state in the store (control-plane-commands slice).
		{"dry-run agent", store.CommandSimulated, "simulated by a dry-run agent: nothing ran", "blocked"},
		{"sent, no answer yet", "pending", "", "waiting"},
		// Needs the received state in the store (control-plane-commands slice).
		{"received is not done", store.CommandReceived, "", "waiting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.EachDB(t, func(t *testing.T, db *store.DB) {
				h := newHarness(t, db, harnessOpts{})
				e, dev := h.onboarded("lo", "PF3DEMO02", "agent")
				h.cmd.script("lock", dev.ID, tc.state, tc.reason)
				h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
				h.pump("lock step "+tc.wantStep, func() bool {
					return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == tc.wantStep
				})
				st := h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices)
				devs := stepDevices(t, st)
				if len(devs) != 1 || devs[0].DeviceID != dev.ID || devs[0].CommandID == "" {
					t.Fatalf("lock output = %s", st.Output)
				}
				w := h.workflow(e.ID, lifecycle.KindOffboarding)
				tasks := h.openTasksOf(w.ID, "manual_lock")
				if tc.wantStep == "succeeded" {
					if devs[0].State != store.CommandDone || devs[0].Outcome != "done" || len(tasks) != 0 {
						t.Fatalf("done lock: output %s, tasks %+v", st.Output, tasks)
					}
					h.pump("retrieval opened", func() bool {
						return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
					})
					return
				}
				wantState := tc.state
				if wantState == "pending" {
					wantState = store.CommandSent
				}
				if devs[0].State != wantState || devs[0].Outcome != tc.wantStep {
					t.Fatalf("device in output = %+v, want state %s outcome %s", devs[0], wantState, tc.wantStep)
				}
				if tc.wantStep == "blocked" {
					if devs[0].Reason != tc.reason {
						t.Fatalf("reason = %q, want %q", devs[0].Reason, tc.reason)
					}
					wantDetail := fmt.Sprintf("lock of PF3DEMO02 ended %s: %s", tc.state, tc.reason)
					if len(tasks) != 1 || tasks[0].Kind != "manual_lock" || tasks[0].SubjectID != dev.ID ||
						!strings.Contains(tasks[0].Detail, wantDetail) || devs[0].ManualTask != tasks[0].ID {
						t.Fatalf("tasks = %+v, want one manual_lock with %q", tasks, wantDetail)
					}
					if !strings.Contains(st.LastError, "PF3DEMO02 "+tc.state+": "+tc.reason) {
						t.Fatalf("last_error = %q", st.LastError)
					}
					if n := h.auditCount("lifecycle.step.blocked", st.ID); n < 1 {
						t.Fatal("no lifecycle.step.blocked audit")
					}
				} else if len(tasks) != 0 {
					t.Fatalf("a waiting lock opened tasks: %+v", tasks)
				}
				// Whatever the backstop does, the step stays where it is and nothing
				// downstream runs: no retrieval, no device.locked.
				h.clock.Advance(time.Hour)
				h.pump("the re-check settles", func() bool {
					s := h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices)
					return s != "pending" && s != "running"
				})
				if s := h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices); s != tc.wantStep {
					t.Fatalf("lock step after the re-check = %s", s)
				}
				if s := h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepOpenRetrieval); s != "pending" {
					t.Fatalf("open_retrieval = %s", s)
				}
				if n := h.deviceEvents(domain.EventDeviceLocked, dev.ID); n != 0 {
					t.Fatalf("%d device.locked events", n)
				}
				if n := len(h.openTasksOf(w.ID, "manual_lock")); n != len(tasks) {
					t.Fatalf("re-check opened more tasks: %d → %d", len(tasks), n)
				}
				if n := h.cmd.count("lock", dev.ID); n != 1 {
					t.Fatalf("locks sent = %d", n)
				}
			})
		})
	}
}

// TestCommandOutcomeWakesStep: a lock that ends after the step went waiting wakes it
// (WakeCommandSteps, the loop's work) without the re-check timer: done completes the
// step, failed blocks it.
func TestCommandOutcomeWakesStep(t *testing.T) {
	for _, tc := range []struct{ end, want string }{{store.CommandDone, "succeeded"}, {store.CommandFailed, "blocked"}} {
		t.Run(tc.end, func(t *testing.T) {
			storetest.EachDB(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				h := newHarness(t, db, harnessOpts{})
				e, dev := h.onboarded("wk", "SER-WK", "agent")
				h.cmd.script("lock", dev.ID, "pending", "")
				h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
				h.pump("lock waiting", func() bool {
					return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "waiting"
				})
				cmd := stepDevices(t, h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices))[0].CommandID
				if err := h.cmd.settle(ctx, h.org.ID, cmd, tc.end, "the device said so"); err != nil {
					t.Fatal(err)
				}
				// The clock does not move: only the outcome can wake the step.
				h.pump("lock "+tc.want, func() bool {
					return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == tc.want
				})
				st := h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices)
				if d := stepDevices(t, st)[0]; d.CommandID != cmd || d.State != tc.end {
					t.Fatalf("device = %+v", d)
				}
				if n := h.auditCount("lifecycle.step.started", st.ID); n != 2 {
					t.Fatalf("lock step ran %d times, want 2 (send, then the outcome)", n)
				}
			})
		})
	}
}

// TestNotificationsDriveTheChain runs the engine's own loop with a backstop that never
// fires within the test: the HR event (outbox row) and the lock's outcome (command
// transition) must each wake it, through NOTIFY on Postgres and the commit signal on
// SQLite.
func TestNotificationsDriveTheChain(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, dev := h.onboarded("nt", "SER-NT", "agent")
		h.cmd.script("lock", dev.ID, "pending", "")
		rctx, cancel := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() { defer close(stopped); h.eng.Run(rctx, time.Hour) }()
		t.Cleanup(func() { cancel(); <-stopped })
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		waitUntil(t, "lock waiting", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "waiting"
		})
		cmd := stepDevices(t, h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices))[0].CommandID
		if err := h.cmd.settle(ctx, h.org.ID, cmd, store.CommandDone, ""); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "retrieval open after the lock's outcome", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
	})
}

// waitUntil waits for cond with a deadline (the machine may be busy: generous).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBlockedLockResolved: a blocked lock is resolved by a person completing the task
// (recorded as done by hand, audited on the device), or by an admin retrying once the
// cause is fixed (a new command; the old task is cancelled as superseded; a device
// already done is not sent another lock).
func TestBlockedLockResolved(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, a := h.onboarded("rs", "SER-RSA", "agent")
		b := h.device("SER-RSB", domain.PlatformLinux, "agent")
		if _, err := db.AssignDevice(ctx, h.org.ID, b.ID, e.ID); err != nil {
			t.Fatal(err)
		}
		h.cmd.script("lock", b.ID, store.CommandFailed, "check sessions-ended:alice failed: 1 session left, want none")
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("lock blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "blocked"
		})
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		st := h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices)
		if !strings.Contains(st.LastError, "lock not done on 1 of 2 devices: SER-RSB failed") {
			t.Fatalf("last_error = %q", st.LastError)
		}
		first := h.openTasksOf(w.ID, "manual_lock")
		if len(first) != 1 || first[0].SubjectID != b.ID {
			t.Fatalf("tasks = %+v", first)
		}
		// The admin fixes the device and retries: B gets a new command, A nothing.
		h.cmd.script("lock", b.ID, store.CommandDone, "")
		if err := h.eng.Retry(ctx, h.org.ID, w.ID, string(lifecycle.StepLockDevices)); err != nil {
			t.Fatal(err)
		}
		h.pump("lock done after retry", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "succeeded"
		})
		if h.cmd.count("lock", a.ID) != 1 || h.cmd.count("lock", b.ID) != 2 {
			t.Fatalf("locks sent: A %d, B %d", h.cmd.count("lock", a.ID), h.cmd.count("lock", b.ID))
		}
		if tk, _ := store.GetTask(ctx, db.SQL, h.org.ID, first[0].ID); tk.State != "cancelled" || !strings.Contains(tk.Note, "superseded") {
			t.Fatalf("old task = %+v", tk)
		}
		for _, d := range stepDevices(t, h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices)) {
			if d.Outcome != "done" || d.State != store.CommandDone {
				t.Fatalf("device after retry = %+v", d)
			}
		}

		// Another employee: the device fails and a person locks it by hand.
		e2, c := h.onboarded("bh", "SER-BH", "agent")
		h.cmd.script("lock", c.ID, store.CommandExpired, "expired before completion")
		h.hrEvent(&e2, domain.EventEmployeeTerminated, nil)
		h.pump("lock blocked", func() bool {
			return h.stepState(e2.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "blocked"
		})
		tasks := h.openTasksOf(h.workflow(e2.ID, lifecycle.KindOffboarding).ID, "manual_lock")
		actx := domain.WithActor(ctx, domain.Actor{ID: "user:it-alice"})
		if _, err := h.eng.CompleteTask(actx, h.org.ID, tasks[0].ID, "locked at the desk, account disabled in AD"); err != nil {
			t.Fatal(err)
		}
		h.pump("lock done by hand", func() bool {
			return h.stepState(e2.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "succeeded"
		})
		d := stepDevices(t, h.step(e2.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices))[0]
		if d.Outcome != "done_by_hand" || d.DoneBy != "user:it-alice" || d.State != store.CommandExpired {
			t.Fatalf("device = %+v", d)
		}
		es, _, _ := db.ListAudit(ctx, h.org.ID, store.AuditFilter{Action: "device.locked_by_hand", TargetID: c.ID}, store.Page{})
		if len(es) != 1 || es[0].Actor != "user:it-alice" || !strings.Contains(string(es[0].After), "done by hand") {
			t.Fatalf("by-hand audit = %+v", es)
		}
	})
}

// TestWipeNotDoneNeverCleaned: a wipe that fails blocks its step and the device stays
// received; skipping the wipe step does not make it wiped: the clean step blocks with
// a manual wipe task, and only a person completing it (audited) moves the device on.
func TestWipeNotDoneNeverCleaned(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, dev := h.onboarded("wp", "SER-WP", "agent")
		h.cmd.script("wipe", dev.ID, store.CommandFailed, "no crypto-erase possible: no encrypted volume found")
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("retrieval open", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		rid := mustRetrieval(t, db, h.org.ID, e.ID)
		if _, err := h.eng.Receive(ctx, h.org.ID, rid, lifecycle.IntakeInput{}); err != nil {
			t.Fatal(err)
		}
		h.pump("wipe blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepWipeDevices) == "blocked"
		})
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		tasks := h.openTasksOf(w.ID, "manual_wipe")
		if len(tasks) != 1 ||
			!strings.Contains(tasks[0].Detail, "wipe of SER-WP ended failed: no crypto-erase possible") ||
			!strings.Contains(tasks[0].Detail, "not cleaned or redeployed") {
			t.Fatalf("tasks = %+v", tasks)
		}
		h.clock.Advance(time.Hour)
		h.pump("the re-check settles", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepWipeDevices) == "blocked"
		})
		if d := h.getDevice(dev.ID); d.State != domain.StateReceived {
			t.Fatalf("device = %s, want received", d.State)
		}
		if s := h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices); s != "pending" {
			t.Fatalf("clean step = %s", s)
		}
		// The admin skips the wipe step: the clean step still wants proof.
		if err := h.eng.Skip(ctx, h.org.ID, w.ID, string(lifecycle.StepWipeDevices), "will wipe at the warehouse"); err != nil {
			t.Fatal(err)
		}
		h.pump("clean blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices) == "blocked"
		})
		if d := h.getDevice(dev.ID); d.State != domain.StateReceived {
			t.Fatalf("device after the skip = %s, want received", d.State)
		}
		tasks = h.openTasksOf(w.ID, "manual_wipe")
		if len(tasks) != 1 || !strings.Contains(tasks[0].Detail, "Nothing proves SER-WP was wiped") {
			t.Fatalf("tasks after the skip = %+v", tasks)
		}
		actx := domain.WithActor(ctx, domain.Actor{ID: "user:it-bob"})
		if _, err := h.eng.CompleteTask(actx, h.org.ID, tasks[0].ID, "reinstalled with a new LUKS key"); err != nil {
			t.Fatal(err)
		}
		h.pump("cleaning", func() bool { return h.getDevice(dev.ID).State == domain.StateCleaning })
		es, _, _ := db.ListAudit(ctx, h.org.ID, store.AuditFilter{Action: "device.wiped_by_hand", TargetID: dev.ID}, store.Page{})
		if len(es) != 1 || es[0].Actor != "user:it-bob" || !strings.Contains(string(es[0].After), "reinstalled with a new LUKS key") {
			t.Fatalf("by-hand audit = %+v", es)
		}
		out := string(h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices).Output)
		if !strings.Contains(out, "wiped by hand by user:it-bob") {
			t.Fatalf("clean output = %s", out)
		}
	})
}

// TestWipeDoneGoesToCleaning: a wipe the device proves moves the device on.
func TestWipeDoneGoesToCleaning(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, dev := h.onboarded("wd", "SER-WD", "agent")
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("retrieval open", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		if _, err := h.eng.Receive(ctx, h.org.ID, mustRetrieval(t, db, h.org.ID, e.ID), lifecycle.IntakeInput{}); err != nil {
			t.Fatal(err)
		}
		// The device moves to cleaning inside the clean step; its output is stored when the
		// step finishes, a moment later: wait for both.
		h.pump("cleaning, proven by the wipe", func() bool {
			out := string(h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices).Output)
			return h.getDevice(dev.ID).State == domain.StateCleaning && strings.Contains(out, "done on the device")
		})
	})
}

// TestUnlockOfferedAfterCanceledTermination: the termination is canceled after the lock
// step locked a Linux laptop (agent) and a Mac (MDM): each gets an Unlock task naming
// how (the unlock command; the Mac's PIN), and the workflow's unlock action sends one
// unlock to the agent device, idempotently, and only the PIN instruction for the Mac.
func TestUnlockOfferedAfterCanceledTermination(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, lin := h.onboarded("ul", "SER-UL", "agent")
		mac := h.device("C02UNLOCK1", domain.PlatformMacOS, "mdm")
		if _, err := db.AssignDevice(ctx, h.org.ID, mac.ID, e.ID); err != nil {
			t.Fatal(err)
		}
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("locked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		// Unlocking a running offboarding is refused: its lock stands.
		if _, err := h.eng.UnlockDevices(ctx, h.org.ID, w.ID); err == nil {
			t.Fatal("unlock of a running offboarding accepted")
		}
		lockOf := map[string]string{}
		for _, d := range stepDevices(t, h.step(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices)) {
			lockOf[d.DeviceID] = d.CommandID
		}
		h.hrEvent(&e, domain.EventEmployeeTerminationCanceled, nil)
		h.pump("cancelled", func() bool { return h.wfState(e.ID, lifecycle.KindOffboarding) == "cancelled" })
		byDevice := map[string]store.LifecycleTask{}
		for _, tk := range h.openTasks(w.ID) {
			if tk.Kind != "unlock_device" {
				t.Fatalf("open task %+v", tk)
			}
			byDevice[tk.SubjectID] = tk
		}
		if tk := byDevice[lin.ID]; !strings.Contains(tk.Detail, "lanyardctl devices unlock "+lin.ID) ||
			!strings.Contains(tk.Detail, "POST /api/v1/workflows/"+w.ID+"/unlock") || !strings.HasPrefix(tk.Title, "Unlock ThinkPad X1 (SER-UL) of ul Doe") {
			t.Fatalf("Linux unlock task = %+v", tk)
		}
		if tk := byDevice[mac.ID]; !strings.Contains(tk.Detail, "GET /api/v1/mdm/commands/"+lockOf[mac.ID]+"/pin") ||
			!strings.Contains(tk.Detail, "at the Mac") {
			t.Fatalf("Mac unlock task = %+v", tk)
		}
		// The unlock action (needs the unlock command type in the store).
		for i := 0; i < 2; i++ {
			rep, err := h.eng.UnlockDevices(ctx, h.org.ID, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rep.Devices {
				switch r.DeviceID {
				case lin.ID:
					if r.CommandID == "" || r.State != store.CommandDone || r.LockCommandID != lockOf[lin.ID] {
						t.Fatalf("Linux unlock = %+v", r)
					}
				case mac.ID:
					if r.CommandID != "" || !strings.Contains(r.Instruction, "lanyardctl mdm pin "+lockOf[mac.ID]) {
						t.Fatalf("Mac unlock = %+v", r)
					}
				}
			}
		}
		if n, m := h.cmd.count("unlock", lin.ID), h.cmd.count("unlock", mac.ID); n != 1 || m != 0 {
			t.Fatalf("unlocks sent: Linux %d, Mac %d", n, m)
		}
	})
}
