package hrsync_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Polling EDGE_CASES: 4 (both rehire variants), 7, 9, 18 and partial scans.
func TestReconcileEdgeCases(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		members := gen(60, true)
		h := newHarness(t, db, hopts{members: members})
		h.connect()
		h.events()

		t.Run("4 rehire under the same id", func(t *testing.T) {
			h.fake.ScheduleTermination(mid(3), date(-10))
			h.deliver()
			if c := countTypes(h.events()); c[domain.EventEmployeeTerminated] != 1 {
				t.Fatalf("events %v", c)
			}
			if _, err := h.fake.Rehire(mid(3), date(0)); err != nil { // no webhook for a rehire
				t.Fatal(err)
			}
			run := h.sync("incremental")
			evs := h.events()
			if run.Status != store.HRRunSucceeded || len(evs) != 1 || evs[0].Type != domain.EventEmployeeRehired {
				t.Fatalf("run %+v events %v", run, countTypes(evs))
			}
			if e := h.employee(mid(3)); e.HR.Status != domain.StatusActive || e.HR.StartDate.String() != date(0) || e.HR.TerminationDate != nil {
				t.Fatalf("hr %+v", e.HR)
			}
		})
		t.Run("4 rehire under a new id reactivates the old employee", func(t *testing.T) {
			h.fake.ScheduleTermination(mid(4), date(-30))
			h.deliver()
			h.events()
			old := h.employee(mid(4))
			nm, err := h.fake.RehireAsNew(mid(4), date(0))
			if err != nil {
				t.Fatal(err)
			}
			h.deliver()
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeRehired || !contains(string(evs[0].Payload), `"previous_external_id":"`+mid(4)+`"`) {
				t.Fatalf("events %v", countTypes(evs))
			}
			e := h.employee(nm.ID)
			if e.ID != old.ID || e.HR.Status != domain.StatusActive {
				t.Fatalf("relinked %+v (old %s)", e, old.ID)
			}
		})
		t.Run("7 type changes without webhook", func(t *testing.T) {
			h.fake.UpdateMember(mid(5), func(m *fakejustworks.Member) { m.Type = "contractor"; m.CurrentEmployment = nil }, true)
			h.fake.UpdateMember(mid(6), func(m *fakejustworks.Member) {
				m.CurrentEmployment = map[string]fakejustworks.Employment{"US": {EmploymentType: "part_time"}}
			}, true)
			h.fake.UpdateMember(mid(7), func(m *fakejustworks.Member) {
				m.Type = "international_employee"
				m.Addresses = []fakejustworks.Address{{Line1: "1 Rue", City: "Paris", PostalCode: "75001", Country: "FR"}}
				m.CurrentEmployment = map[string]fakejustworks.Employment{"FR": {EmploymentType: "full_time"}}
			}, true)
			run := h.sync("incremental")
			evs := h.events()
			if run.Updated != 3 || len(evs) != 3 {
				t.Fatalf("run %+v events %v", run, countTypes(evs))
			}
			if h.employee(mid(5)).HR.MemberType != domain.MemberContractor || h.employee(mid(6)).HR.MemberType != domain.MemberPartTime {
				t.Fatal("member types not updated")
			}
			// An employee who moves abroad stays managed (policy is re-evaluated downstream).
			// ...and full time: "international_employee" is not an "intern".
			if e := h.employee(mid(7)); !e.HR.International || e.HR.Address.Country != "FR" || e.HR.MemberType != domain.MemberFullTime {
				t.Fatalf("international %+v", e.HR)
			}
		})
		t.Run("9 members edited between pages: one event per change", func(t *testing.T) {
			first := true
			h.fake.OnMembersPage(func(int) {
				if first {
					first = false
					return
				}
				for _, i := range []int{1, 2, 40} { // members on earlier and later pages
					h.fake.UpdateMember(mid(i), func(m *fakejustworks.Member) { m.JobTitle += " II" }, true)
				}
				h.fake.OnMembersPage(nil)
			})
			run := h.sync("full")
			evs := h.events()
			if run.Status != store.HRRunSucceeded || len(evs) != 3 || countTypes(evs)[domain.EventEmployeeUpdated] != 3 {
				t.Fatalf("run %+v events %v", run, countTypes(evs))
			}
			if run.Seen <= 61 {
				t.Fatalf("edited members should be seen twice under keyset order: seen %d", run.Seen)
			}
		})
		t.Run("9 stale cursor restarts the scan", func(t *testing.T) {
			n := 0
			h.fake.OnMembersPage(func(int) {
				n++
				if n == 2 {
					h.fake.InvalidateCursors()
				}
			})
			defer h.fake.OnMembersPage(nil)
			run := h.sync("full")
			if run.Status != store.HRRunSucceeded || len(h.events()) != 0 || len(run.Errors) == 0 || run.Errors[0].Kind != "stale_cursor" {
				t.Fatalf("run %+v", run)
			}
		})
		t.Run("18 429 with Retry-After and a 5xx burst are retried", func(t *testing.T) {
			h.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 429, RetryAfter: "1"})
			h.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Status: 503})
			h.fake.UpdateMember(mid(9), func(m *fakejustworks.Member) { m.JobTitle = "Retried" }, true)
			run := h.sync("incremental")
			if run.Status != store.HRRunSucceeded || run.Updated != 1 {
				t.Fatalf("run %+v", run)
			}
			h.events()
		})
		t.Run("18 partial scan is never a full roster", func(t *testing.T) {
			before := h.conn().Checkpoint
			h.fake.UpdateMember(mid(11), func(m *fakejustworks.Member) { m.Active = false; m.EmploymentTerminationDate = date(-1) }, true)
			h.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Skip: 1, Status: 503, Times: 50})
			run := h.sync("full")
			if run.Status != store.HRRunPartial || run.Terminated != 0 || len(h.events()) != 0 {
				t.Fatalf("run %+v", run)
			}
			if after := h.conn().Checkpoint; !after.Equal(*before) {
				t.Fatalf("checkpoint moved %v -> %v", before, after)
			}
			if h.employee(mid(11)).HR.Status != domain.StatusActive {
				t.Fatal("terminated from a partial scan")
			}
			h.fake.ClearFaults()
			gets := h.fake.Stats().MemberGets
			run = h.sync("incremental")
			evs := h.events()
			if run.Status != store.HRRunSucceeded || run.Terminated != 1 || len(evs) != 1 || evs[0].Type != domain.EventEmployeeTerminated {
				t.Fatalf("run %+v events %v", run, countTypes(evs))
			}
			if h.fake.Stats().MemberGets != gets+1 {
				t.Fatal("termination not confirmed by GET /v1/members/{id}")
			}
		})
		t.Run("13 webhook closed after failures is resumed and backfilled", func(t *testing.T) {
			h.fake.SetChaos(fakejustworks.Chaos{WrongSecret: true})
			for i := 0; i < 5; i++ {
				h.fake.UpdateMember(mid(20+i), func(m *fakejustworks.Member) { m.JobTitle = "Missed" }, false)
				h.fake.Flush(h.ctx)
			}
			h.fake.SetChaos(fakejustworks.Chaos{})
			h.fake.UpdateMember(mid(30), func(m *fakejustworks.Member) { m.JobTitle = "Missed" }, false) // dropped: webhook closed
			if h.fake.Pending() != 0 {
				t.Fatalf("closed webhook still queues %d", h.fake.Pending())
			}
			c := h.conn()
			if err := h.eng.Reconcile(h.ctx, h.org.ID, c.ID); err != nil {
				t.Fatal(err)
			}
			evs := h.events()
			if c := countTypes(evs); c[domain.EventEmployeeUpdated] != 6 || len(evs) != 6 {
				t.Fatalf("backfill events %v", c)
			}
			h.fake.UpdateMember(mid(31), func(m *fakejustworks.Member) { m.JobTitle = "Live again" }, false)
			if res := h.deliver(); len(res) != 1 || res[0].Status != 202 {
				t.Fatalf("webhook not resumed: %+v", res)
			}
		})
	})
}

// The mass-termination breaker holds every termination of a run over the
// threshold, keeps applying other changes, and waits for an admin.
func TestMassTerminationBreaker(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(50, true)})
		h.connect()
		h.events()
		for i := 1; i <= 15; i++ { // 30% > 20%
			h.fake.UpdateMember(mid(i), func(m *fakejustworks.Member) { m.Active = false; m.EmploymentTerminationDate = date(-1) }, true)
		}
		h.fake.UpdateMember(mid(40), func(m *fakejustworks.Member) { m.JobTitle = "Still applied" }, true)
		run := h.sync("incremental")
		evs := h.events()
		if c := countTypes(evs); run.Status != store.HRRunBlocked || run.Held != 15 || run.Terminated != 0 || len(evs) != 2 ||
			c[domain.EventEmployeeUpdated] != 1 || c[domain.EventHRTerminationsHeld] != 1 {
			t.Fatalf("run %+v events %v", run, c)
		}
		// The hold prompts the admins with the count.
		held := heldPayload(t, evs, domain.EventHRTerminationsHeld)
		if held.Count != 15 || held.Threshold != 20 || held.ConnectionID != h.conn().ID || held.Provider == "" {
			t.Fatalf("held payload %+v", held)
		}
		if c := h.conn(); c.Attention == "" || h.countEmployees(domain.StatusTerminated) != 0 {
			t.Fatalf("connection %+v", c)
		}
		if h.audits("hr.sync.blocked") != 1 {
			t.Fatal("block not audited")
		}
		// While held, a webhook termination is held too.
		h.fake.ScheduleTermination(mid(45), date(-2))
		h.deliver()
		if rows := h.webhookRows(); rows["held"] != 1 || len(h.events()) != 0 {
			t.Fatalf("rows %v", rows)
		}
		// The next scheduled run trips again; the admin approves.
		if again := h.sync("incremental"); again.Status != store.HRRunBlocked {
			t.Fatalf("again %+v", again)
		}
		if evs := h.events(); len(evs) != 0 { // the same hold prompts once
			t.Fatalf("re-tripped breaker wrote %v", countTypes(evs))
		}
		var started store.HRSyncRun
		if code := h.call(domain.RoleAdmin, "POST", "/api/v1/hr/connection/sync", map[string]any{"approve_terminations": true}, &started); code != 202 {
			t.Fatalf("approve %d", code)
		}
		done, err := h.eng.WaitRun(h.ctx, h.org.ID, started.ID, 20*time.Second)
		if err != nil || done.Status != store.HRRunSucceeded || done.Terminated != 16 {
			t.Fatalf("approved run %+v %v", done, err)
		}
		after := h.events()
		if c := countTypes(after); c[domain.EventEmployeeTerminated] != 16 || c[domain.EventHRTerminationsReleased] != 1 ||
			c[domain.EventHRTerminationsHeld] != 0 {
			t.Fatalf("events %v", c)
		}
		if rel := heldPayload(t, after, domain.EventHRTerminationsReleased); rel.Count != 16 {
			t.Fatalf("released payload %+v", rel)
		}
		if c := h.conn(); c.Attention != "" || c.ApproveTerminations {
			t.Fatalf("approval not consumed: %+v", c)
		}
		if h.audits("hr.terminations.approved") != 1 {
			t.Fatal("approval not audited")
		}
	})
}

// A crash mid-import resumes from the persisted cursor without duplicates.
func TestCrashMidImportResumes(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		// Offset ordering: a member edited after its page was read does not
		// move to the end of the listing, so only the catch-up can see it.
		h := newHarness(t, db, hopts{members: gen(120, true), fake: fakejustworks.Options{Ordering: "offset"}})
		// The import dies after two pages (25 each): the server keeps failing.
		h.fake.InjectFault(fakejustworks.Fault{Path: "/v1/members", Skip: 2, Status: 503, Times: 1000})
		_, run := h.connect()
		if run.Status != store.HRRunPartial || run.Created != 50 || run.Pages != 2 {
			t.Fatalf("first run %+v", run)
		}
		c := h.conn()
		if c.ImportDone || c.ImportCursor == "" {
			t.Fatalf("cursor not persisted: %+v", c)
		}
		// A process that died leaves a running run behind; its heartbeat is old.
		stale := store.HRSyncRun{OrgID: h.org.ID, ConnectionID: c.ID, Kind: hrsync.KindInitial, Trigger: "test", Status: store.HRRunRunning,
			StartedAt: time.Now().Add(-time.Hour), HeartbeatAt: time.Now().Add(-time.Hour)}
		if err := store.InsertHRSyncRun(context.Background(), db.SQL, &stale); err != nil {
			t.Fatal(err)
		}
		h.fake.ClearFaults()
		// A member already imported changes before the resume: the catch-up sees it.
		h.fake.UpdateMember(mid(3), func(m *fakejustworks.Member) { m.JobTitle = "Changed during the outage" }, true)
		h.advance(10 * time.Minute) // longer than the catch-up skew
		n := len(h.fake.Requests())
		run2 := h.sync("")
		if run2.Status != store.HRRunSucceeded || run2.Kind != hrsync.KindInitial || run2.Created != 70 {
			t.Fatalf("resumed run %+v", run2)
		}
		if first := h.fake.Requests()[n]; !contains(first.Query, "cursor=") {
			t.Fatalf("resume did not start at the cursor: %+v", first)
		}
		if c := countTypes(h.events()); c[domain.EventEmployeeHired] != 120 || c[domain.EventEmployeeUpdated] != 1 {
			t.Fatalf("events %v", c)
		}
		if e := h.employee(mid(3)); e.HR.Title != "Changed during the outage" {
			t.Fatalf("title %q", e.HR.Title)
		}
		if got, _ := store.GetHRSyncRun(context.Background(), db.SQL, h.org.ID, stale.ID); got.Status != store.HRRunFailed {
			t.Fatalf("stale run %+v", got)
		}
		if c := h.conn(); !c.ImportDone || c.ImportCursor != "" || c.Checkpoint == nil {
			t.Fatalf("connection %+v", c)
		}
	})
}

// EDGE_CASES 3 (late) and 12 (delays): a cancel after the termination took
// effect, and webhooks racing a scan over the same members.
func TestLateCancelAndRaces(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(120, true)})
		h.connect()
		h.events()

		t.Run("3 canceled after it took effect", func(t *testing.T) {
			h.fake.ScheduleTermination(mid(2), date(-1))
			h.deliver()
			if c := countTypes(h.events()); c[domain.EventEmployeeTerminated] != 1 {
				t.Fatalf("events %v", c)
			}
			h.fake.CancelTermination(mid(2)) // reactivates the same employment
			h.deliver()
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeTerminationCanceled || !contains(string(evs[0].Payload), `"after_effective":true`) {
				t.Fatalf("events %v", evs)
			}
			if e := h.employee(mid(2)); e.HR.Status != domain.StatusActive {
				t.Fatalf("status %s", e.HR.Status)
			}
		})
		t.Run("12 delayed webhooks racing a full scan give one event per change", func(t *testing.T) {
			for i := 10; i < 40; i++ {
				h.fake.UpdateMember(mid(i), func(m *fakejustworks.Member) { m.JobTitle = "Raced" }, false)
			}
			h.fake.SetChaos(fakejustworks.Chaos{Delay: 2 * time.Millisecond, Shuffle: true, Seed: 3, Duplicates: 1})
			defer h.fake.SetChaos(fakejustworks.Chaos{})
			done := make(chan store.HRSyncRun)
			go func() {
				run, _ := h.eng.SyncNow(context.Background(), h.org.ID, hrsync.SyncOptions{Kind: hrsync.KindFull, Trigger: "test"})
				done <- run
			}()
			h.deliver()
			run := <-done
			h.waitProcessed()
			evs := h.events()
			if run.Status != store.HRRunSucceeded || len(evs) != 30 || countTypes(evs)[domain.EventEmployeeUpdated] != 30 {
				t.Fatalf("run %+v events %v", run, countTypes(evs))
			}
		})
	})
}

// heldPayload decodes the payload of the one event of typ in evs.
func heldPayload(t *testing.T, evs []domain.Event, typ string) domain.HRTerminationsHeldPayload {
	t.Helper()
	var p domain.HRTerminationsHeldPayload
	for _, e := range evs {
		if e.Type == typ {
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatalf("no %s in %v", typ, countTypes(evs))
	return p
}
