package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestLifecycleEndToEnd: hire → stocked Mac assigned, ADE-enrolled, apps granted on the
// fake SCIM server, first check-in → termination scheduled → at the date (org time zone,
// offboarding hour) apps deactivated, device locked, retrieval opened → receipt at a
// warehouse → wipe → cleaning → ready_for_redeploy → assigned to the next hire.
func TestLifecycleEndToEnd(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		h.connectSCIM("github", "engineering")
		mac := h.device("C02XYZ123", domain.PlatformMacOS, "agent")

		start := domain.NewDate(2026, 12, 14)
		ada := h.hire("ada", start)
		h.pump("onboarding scheduled", func() bool { return h.wfState(ada.ID, lifecycle.KindOnboarding) == "scheduled" })
		w := h.workflow(ada.ID, lifecycle.KindOnboarding)
		// Lead time 5 days before the start date at 09:00 New York.
		if want := time.Date(2026, 12, 9, 14, 0, 0, 0, time.UTC); !w.RunAt.Equal(want) {
			t.Fatalf("onboarding run_at = %s, want %s", w.RunAt, want)
		}
		h.clock.Set(time.Date(2026, 12, 9, 14, 0, 0, 0, time.UTC))
		h.pump("waiting for check-in", func() bool {
			return h.stepState(ada.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitCheckIn) == "waiting"
		})
		if d := h.getDevice(mac.ID); d.AssignedEmployeeID != ada.ID || d.State != domain.StateAssigned {
			t.Fatalf("device after assign = %s %q", d.State, d.AssignedEmployeeID)
		}
		if len(h.enr.ade) != 1 || h.enr.ade[0] != "C02XYZ123" {
			t.Fatalf("ADE assignments = %v", h.enr.ade)
		}
		u, ok := h.scim.UserByName("ada@acme.test")
		if !ok || !u.Active {
			t.Fatalf("SCIM user = %+v %v", u, ok)
		}
		if m := h.scim.GroupMembers("engineering"); len(m) != 1 || m[0] != u.ID {
			t.Fatalf("group members = %v", m)
		}
		h.checkIn(mac.ID)
		h.pump("onboarding done", func() bool { return h.wfState(ada.ID, lifecycle.KindOnboarding) == "succeeded" })
		if d := h.getDevice(mac.ID); d.State != domain.StateInUse {
			t.Fatalf("device after check-in = %s", d.State)
		}

		// Termination scheduled for Dec 31: runs at 17:00 New York (22:00 UTC).
		term := domain.NewDate(2026, 12, 31)
		h.hrEvent(&ada, domain.EventEmployeeTerminationScheduled, func(e *domain.Employee) { e.HR.TerminationDate = &term })
		h.pump("offboarding scheduled", func() bool { return h.wfState(ada.ID, lifecycle.KindOffboarding) == "scheduled" })
		off := h.workflow(ada.ID, lifecycle.KindOffboarding)
		if want := time.Date(2026, 12, 31, 22, 0, 0, 0, time.UTC); !off.RunAt.Equal(want) {
			t.Fatalf("offboarding run_at = %s, want %s", off.RunAt, want)
		}
		h.clock.Set(time.Date(2026, 12, 31, 21, 59, 0, 0, time.UTC))
		if _, err := h.eng.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if s := h.wfState(ada.ID, lifecycle.KindOffboarding); s != "scheduled" {
			t.Fatalf("offboarding started early: %s", s)
		}
		h.clock.Set(time.Date(2026, 12, 31, 22, 0, 0, 0, time.UTC))
		h.pump("waiting for receipt", func() bool {
			return h.stepState(ada.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		if u, _ := h.scim.UserByName("ada@acme.test"); u.Active {
			t.Fatal("SCIM user still active after offboarding")
		}
		if n := h.cmd.count("lock", mac.ID); n != 1 {
			t.Fatalf("lock commands = %d", n)
		}
		if d := h.getDevice(mac.ID); d.State != domain.StateRetrievalReq {
			t.Fatalf("device state = %s", d.State)
		}
		rs, _, err := store.ListRetrievals(ctx, db.SQL, h.org.ID, store.RetrievalFilter{EmployeeID: ada.ID}, store.Page{})
		if err != nil || len(rs) != 1 || rs[0].ShipTo.City != "Brooklyn" {
			t.Fatalf("retrievals = %+v, %v", rs, err)
		}
		wh := store.Warehouse{OrgID: h.org.ID, Name: "NJ"}
		if err := db.InsertWarehouse(ctx, &wh); err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.KitSent(ctx, h.org.ID, rs[0].ID, "1Z999"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.InTransit(ctx, h.org.ID, rs[0].ID, "1Z888"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.Receive(ctx, h.org.ID, rs[0].ID, lifecycle.IntakeInput{WarehouseID: wh.ID, Condition: "good",
			PhotoURLs: []string{"https://photos.test/1.jpg"}, Accessories: []string{"charger"}}); err != nil {
			t.Fatal(err)
		}
		h.pump("cleaning task", func() bool {
			return h.stepState(ada.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices) == "waiting"
		})
		if n := h.cmd.count("wipe", mac.ID); n != 1 {
			t.Fatalf("wipe commands = %d", n)
		}
		if d := h.getDevice(mac.ID); d.State != domain.StateCleaning || d.AssignedEmployeeID != "" {
			t.Fatalf("device = %s %q", d.State, d.AssignedEmployeeID)
		}
		off = h.workflow(ada.ID, lifecycle.KindOffboarding)
		tasks := h.openTasks(off.ID)
		if len(tasks) != 1 || tasks[0].Kind != "clean_device" {
			t.Fatalf("open tasks = %+v", tasks)
		}
		if _, err := h.eng.CompleteTask(ctx, h.org.ID, tasks[0].ID, "wiped down, battery ok"); err != nil {
			t.Fatal(err)
		}
		h.pump("offboarding done", func() bool { return h.wfState(ada.ID, lifecycle.KindOffboarding) == "succeeded" })
		if d := h.getDevice(mac.ID); d.State != domain.StateReadyForRedeploy {
			t.Fatalf("device = %s", d.State)
		}
		counts, err := db.StockCounts(ctx, h.org.ID)
		if err != nil || len(counts) != 1 || counts[0].Count != 1 || counts[0].State != "ready_for_redeploy" {
			t.Fatalf("stock = %+v %v", counts, err)
		}

		// The next hire gets the redeployed Mac.
		bob := h.hire("bob", domain.NewDate(2027, 1, 4))
		h.clock.Set(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC))
		h.pump("bob's device assigned", func() bool {
			return h.stepState(bob.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitCheckIn) == "waiting"
		})
		if d := h.getDevice(mac.ID); d.AssignedEmployeeID != bob.ID {
			t.Fatalf("redeployed device holder = %q", d.AssignedEmployeeID)
		}
		months, err := h.eng.StorageByMonth(ctx, h.org.ID, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC))
		if err != nil || len(months) != 2 || months[0].Devices != 1 || months[1].Month != "2027-01" {
			t.Fatalf("storage by month = %+v %v", months, err)
		}
		// The step metrics count what ran.
		mfs, err := h.metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		succeeded := 0.0
		for _, mf := range mfs {
			if mf.GetName() != "lanyard_lifecycle_step_runs_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == "succeeded" {
						succeeded += m.GetCounter().GetValue()
					}
				}
			}
		}
		if succeeded < 12 {
			t.Fatalf("step_runs_total{outcome=succeeded} = %v, want ≥ 12", succeeded)
		}
		// Every step of both of ada's workflows succeeded exactly once.
		for _, k := range []lifecycle.Kind{lifecycle.KindOnboarding, lifecycle.KindOffboarding} {
			for _, s := range h.workflow(ada.ID, k).Steps {
				if n := h.auditCount("lifecycle.step.succeeded", s.ID); n != 1 {
					t.Fatalf("%s/%s succeeded %d times", k, s.Kind, n)
				}
			}
		}
	})
}
