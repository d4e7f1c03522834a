package lifecycle_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// onboarded hires an employee with a stocked device and runs onboarding to the end.
func (h *harness) onboarded(first, serial, channel string) (domain.Employee, domain.Device) {
	h.t.Helper()
	dev := h.device(serial, domain.PlatformLinux, channel)
	e := h.hire(first, domain.NewDate(2026, 12, 1))
	h.pump("assigned", func() bool {
		return h.stepState(e.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitCheckIn) == "waiting"
	})
	h.checkIn(dev.ID)
	h.pump("onboarded", func() bool { return h.wfState(e.ID, lifecycle.KindOnboarding) == "succeeded" })
	return e, h.getDevice(dev.ID)
}

func TestTerminationCanceledAfterStart(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{})
		h.connectSCIM("github", "engineering")
		e, dev := h.onboarded("cy", "SER-CY", "agent")
		h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
		h.pump("retrieval open", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		h.hrEvent(&e, domain.EventEmployeeTerminationCanceled, func(e *domain.Employee) { e.HR.Status = domain.StatusActive })
		h.pump("cancelled", func() bool { return h.wfState(e.ID, lifecycle.KindOffboarding) == "cancelled" })
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		var data struct {
			Cancel lifecycle.CancelReport `json:"cancel"`
		}
		if err := json.Unmarshal(w.Data, &data); err != nil {
			t.Fatal(err)
		}
		rep := data.Cancel
		if strings.Join(rep.AlreadyDone, ",") != "revoke_apps,lock_devices,open_retrieval" {
			t.Fatalf("already done = %v", rep.AlreadyDone)
		}
		if strings.Join(rep.Stopped, ",") != "await_receipt,wipe_devices,clean_devices" || len(rep.Reenable) != 3 {
			t.Fatalf("report = %+v", rep)
		}
		for _, s := range w.Steps[3:] {
			if s.State != "cancelled" {
				t.Fatalf("step %s = %s", s.Kind, s.State)
			}
		}
		// The only open task is the offer to unlock the laptop the lock step locked;
		// the workflow's other tasks (the return kit) were cancelled with it.
		open := h.openTasks(w.ID)
		if len(open) != 1 || open[0].Kind != "unlock_device" || open[0].SubjectID != dev.ID ||
			!strings.Contains(open[0].Detail, "lanyardctl devices unlock "+dev.ID) ||
			!strings.Contains(open[0].Detail, `POST /api/v1/devices/`+dev.ID+`/actions {"type":"unlock"}`) ||
			!strings.Contains(open[0].Detail, "termination canceled") || !strings.Contains(open[0].Title, "Unlock ThinkPad X1 (SER-CY) of cy Doe") {
			t.Fatalf("open tasks after the cancel = %+v", open)
		}
		// Nothing further happens: no wipe.
		h.pump("quiet", func() bool { return true })
		if n := h.cmd.count("wipe", dev.ID); n != 0 {
			t.Fatalf("wipe sent after cancel: %d", n)
		}
	})
}

func TestRehireWhileRetrievalOpen(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, dev := h.onboarded("di", "SER-DI", "agent")
		h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
		h.pump("retrieval open", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		if d := h.getDevice(dev.ID); d.State != domain.StateRetrievalReq {
			t.Fatalf("device = %s", d.State)
		}
		h.hrEvent(&e, domain.EventEmployeeRehired, func(e *domain.Employee) { e.HR.Status = domain.StatusActive; e.HR.TerminationDate = nil })
		h.pump("rehire onboarding done", func() bool {
			return h.wfState(e.ID, lifecycle.KindOffboarding) == "cancelled" &&
				h.stepState(e.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitCheckIn) == "succeeded"
		})
		rs, _, _ := store.ListRetrievals(ctx, db.SQL, h.org.ID, store.RetrievalFilter{EmployeeID: e.ID}, store.Page{})
		if len(rs) != 1 || rs[0].State != "cancelled" {
			t.Fatalf("retrievals = %+v", rs)
		}
		d := h.getDevice(dev.ID)
		if d.State != domain.StateInUse || d.AssignedEmployeeID != e.ID {
			t.Fatalf("device = %s %q", d.State, d.AssignedEmployeeID)
		}
		ob := h.workflow(e.ID, lifecycle.KindOnboarding)
		if !strings.Contains(string(ob.Steps[0].Output), "already_held") {
			t.Fatalf("rehire allocation = %s", ob.Steps[0].Output)
		}
	})
}

func TestDeviceWithoutChannelBecomesManualTask(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, dev := h.onboarded("ed", "SER-ED", "") // no agent, no MDM
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("lock blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "blocked"
		})
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		tasks := h.openTasks(w.ID)
		if len(tasks) != 1 || tasks[0].Kind != "manual_lock" || tasks[0].SubjectID != dev.ID || tasks[0].DueAt == nil || tasks[0].Assignee == "" {
			t.Fatalf("tasks = %+v", tasks)
		}
		// It stays blocked: no silent success.
		h.pump("still blocked", func() bool { return true })
		if s := h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices); s != "blocked" {
			t.Fatalf("lock step = %s", s)
		}
		if _, err := h.eng.CompleteTask(ctx, h.org.ID, tasks[0].ID, "locked at the desk"); err != nil {
			t.Fatal(err)
		}
		h.pump("lock done", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "succeeded"
		})
		out := string(h.workflow(e.ID, lifecycle.KindOffboarding).Steps[1].Output)
		if !strings.Contains(out, `"outcome":"done_by_hand"`) || !strings.Contains(out, `"note":"locked at the desk"`) {
			t.Fatalf("lock output = %s", out)
		}
	})
}

func TestSCIMDownRetriesThenFails(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{cfg: lifecycle.Config{MaxAttempts: 3}})
		h.connectSCIM("github", "engineering")
		e, _ := h.onboarded("fy", "SER-FY", "agent")
		h.scim.SetDown(true)
		before := h.scim.Requests()
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("failed", func() bool { return h.wfState(e.ID, lifecycle.KindOffboarding) == "failed" })
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		st := w.Steps[0]
		if st.Kind != "revoke_apps" || st.State != "failed" || st.Failures != 3 || !strings.Contains(st.LastError, "unavailable") {
			t.Fatalf("step = %+v", st)
		}
		if !strings.Contains(w.Reason, "revoke_apps") {
			t.Fatalf("workflow reason = %q", w.Reason)
		}
		if got := h.scim.Requests() - before; got < 3 {
			t.Fatalf("SCIM saw %d requests, want ≥ 3 attempts", got)
		}
		if n := h.auditCount("lifecycle.step.retrying", st.ID); n != 2 {
			t.Fatalf("retrying audits = %d", n)
		}
		if n := h.auditCount("lifecycle.step.failed", st.ID); n != 1 {
			t.Fatalf("failed audits = %d", n)
		}
		// The admin retries once the target is back.
		h.scim.SetDown(false)
		if err := h.eng.Retry(ctx, h.org.ID, w.ID, "revoke_apps"); err != nil {
			t.Fatal(err)
		}
		h.pump("revoked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps) == "succeeded"
		})
		if u, _ := h.scim.UserByName(e.HR.WorkEmail); u.Active {
			t.Fatal("user still active")
		}
	})
}

// TestRestartMidWorkflow stops the job runner while an offboarding is in flight and
// starts a fresh engine and River client on the same database: the workflow resumes
// and no step's side effects happen twice.
func TestRestartMidWorkflow(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		h.connectSCIM("github", "engineering")
		e, dev := h.onboarded("gi", "SER-GI", "agent")
		// The "crash": River stops; a step is claimed but its runner never finishes.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = h.river.StopAndCancel(sctx)
		cancel()
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		if _, err := h.eng.ConsumeOutbox(ctx); err != nil {
			t.Fatal(err)
		}
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		// Simulate a replica that died holding revoke_apps: claimed with a lease already expired.
		if _, err := db.SQL.ExecContext(ctx, `UPDATE lifecycle_steps SET state = 'running', run_token = 'dead', attempts = 1,
			lease_until = $1, updated_at = $2 WHERE id = $3`, time.Now().Add(-time.Minute).UTC(), time.Now().Add(-6*time.Minute).UTC(), w.Steps[0].ID); err != nil {
			t.Fatal(err)
		}
		// Restart: a new engine and River client.
		eng2 := lifecycle.New(db, lifecycle.WithClock(h.clock), lifecycle.WithCommander(h.cmd), lifecycle.WithEnroller(h.enr),
			lifecycle.WithApps(lifecycle.StoreAppDirectory{DB: db, Keys: h.keys, Builders: testBuilders(db)}),
			lifecycle.WithConfig(lifecycle.Config{Backoff: func(int) time.Duration { return 20 * time.Millisecond }}))
		startRiver(t, db, eng2)
		h.eng = eng2
		h.pump("resumed", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		if n := h.cmd.count("lock", dev.ID); n != 1 {
			t.Fatalf("locks = %d", n)
		}
		for _, s := range h.workflow(e.ID, lifecycle.KindOffboarding).Steps[:3] {
			if n := h.auditCount("lifecycle.step.succeeded", s.ID); n != 1 {
				t.Fatalf("%s succeeded %d times", s.Kind, n)
			}
		}
	})
}

// TestTwoReplicasOnePostgres runs two engines, each with its own River client, over one
// Postgres database and offboards many employees at once: every step succeeds exactly
// once and every device gets exactly one lock.
func TestTwoReplicasOnePostgres(t *testing.T) {
	db := storetest.NewPostgres(t)
	ctx := context.Background()
	h := newHarness(t, db, harnessOpts{})
	h.connectSCIM("github", "engineering")
	eng2 := lifecycle.New(db, lifecycle.WithClock(h.clock), lifecycle.WithCommander(h.cmd), lifecycle.WithEnroller(h.enr),
		lifecycle.WithApps(lifecycle.StoreAppDirectory{DB: db, Keys: h.keys, Builders: testBuilders(db)}),
		lifecycle.WithConfig(lifecycle.Config{Backoff: func(int) time.Duration { return 20 * time.Millisecond }}))
	startRiver(t, db, eng2)
	const n = 12
	var emps []domain.Employee
	var devs []domain.Device
	for i := 0; i < n; i++ {
		dev := h.device("SER-R"+string(rune('A'+i)), domain.PlatformLinux, "agent")
		e := domain.Employee{OrgID: h.org.ID, Source: "manual", HR: domain.HRFields{FirstName: "r" + string(rune('a'+i)),
			WorkEmail: "r" + string(rune('a'+i)) + "@acme.test", Status: domain.StatusActive, Departments: []string{"Engineering"}}}
		if err := store.InsertEmployee(ctx, db.SQL, &e); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AssignDevice(ctx, h.org.ID, dev.ID, e.ID); err != nil {
			t.Fatal(err)
		}
		emps, devs = append(emps, e), append(devs, dev)
	}
	for i := range emps {
		h.hrEvent(&emps[i], domain.EventEmployeeTerminated, nil)
	}
	// Both replicas consume and tick concurrently.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, eng := range []*lifecycle.Engine{h.eng, eng2} {
		wg.Add(1)
		go func(eng *lifecycle.Engine) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = eng.ConsumeOutbox(ctx)
				_, _ = eng.Tick(ctx)
				time.Sleep(10 * time.Millisecond)
			}
		}(eng)
	}
	h.pump("all retrievals open", func() bool {
		for _, e := range emps {
			if h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) != "waiting" {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	for i, e := range emps {
		ws, _, _ := db.ListWorkflows(ctx, h.org.ID, store.WorkflowFilter{EmployeeID: e.ID, Kind: "offboarding"}, store.Page{})
		if len(ws) != 1 {
			t.Fatalf("%s has %d offboardings", e.ID, len(ws))
		}
		if c := h.cmd.count("lock", devs[i].ID); c != 1 {
			t.Fatalf("device %d locked %d times", i, c)
		}
		for _, s := range h.workflow(e.ID, lifecycle.KindOffboarding).Steps[:3] {
			if c := h.auditCount("lifecycle.step.succeeded", s.ID); c != 1 {
				t.Fatalf("%s succeeded %d times", s.Kind, c)
			}
			if c := h.auditCount("lifecycle.step.started", s.ID); c != 1 {
				t.Fatalf("%s started %d times", s.Kind, c)
			}
		}
	}
}

// TestTerminatedBeforeStart: a hire whose onboarding is still scheduled is terminated;
// the onboarding is cancelled (nothing had run) and the offboarding runs.
func TestTerminatedBeforeStart(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := newHarness(t, db, harnessOpts{})
	h.device("SER-TB", domain.PlatformLinux, "agent")
	e := h.hire("tb", domain.NewDate(2027, 2, 1))
	h.pump("onboarding scheduled", func() bool { return h.wfState(e.ID, lifecycle.KindOnboarding) == "scheduled" })
	h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
	h.pump("onboarding cancelled, offboarding done", func() bool {
		return h.wfState(e.ID, lifecycle.KindOnboarding) == "cancelled" && h.wfState(e.ID, lifecycle.KindOffboarding) == "succeeded"
	})
	ob := h.workflow(e.ID, lifecycle.KindOnboarding)
	if ob.Reason != "employee terminated" {
		t.Fatalf("reason = %q", ob.Reason)
	}
	for _, s := range ob.Steps {
		if s.State != "cancelled" {
			t.Fatalf("onboarding step %s = %s", s.Kind, s.State)
		}
	}
}

// TestRetrievalReminders: an open retrieval gets a reminder every ReminderEvery until the
// box arrives.
func TestRetrievalReminders(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	h := newHarness(t, db, harnessOpts{})
	e, _ := h.onboarded("re", "SER-RE", "agent")
	h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
	h.pump("retrieval open", func() bool {
		return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
	})
	rs, _, _ := store.ListRetrievals(ctx, db.SQL, h.org.ID, store.RetrievalFilter{EmployeeID: e.ID}, store.Page{})
	for want := 1; want <= 2; want++ {
		h.nextReminder(e.ID, rs[0].ID, want)
	}
	if n := h.auditCount("retrieval.reminder", rs[0].ID); n != 2 {
		t.Fatalf("reminder audits = %d", n)
	}
}

// nextReminder moves the clock past the reminder interval and waits until the
// retrieval's want-th reminder is sent. The step is "running" while it sends the
// reminder (a background worker may hold it there); it must settle back to
// waiting, not finish.
func (h *harness) nextReminder(employeeID, retrievalID string, want int) {
	h.t.Helper()
	h.clock.Advance(72*time.Hour + time.Minute)
	h.pump("reminder sent and step waiting again", func() bool {
		r, _ := store.GetRetrieval(context.Background(), h.db.SQL, h.org.ID, retrievalID)
		return r.RemindersSent == want &&
			h.stepState(employeeID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
	})
}
