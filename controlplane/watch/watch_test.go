package watch_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/seed"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/controlplane/watch"
)

// clock is a settable test clock shared by the watchers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func typesOf(t *testing.T, db *store.DB, orgID string) map[string][]domain.Event {
	t.Helper()
	all, err := db.ListEvents(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]domain.Event{}
	for _, e := range all {
		if e.OrgID == orgID {
			m[e.Type] = append(m[e.Type], e)
		}
	}
	return m
}

func decode[T any](t *testing.T, e domain.Event) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(e.Payload, &v); err != nil {
		t.Fatalf("%s payload %s: %v", e.Type, e.Payload, err)
	}
	return v
}

// TestWatcher: each time-based fact is one event with its payload; re-running and a
// second replica scanning at the same time emit nothing new; a device that checks in and
// goes silent again is prompted again; a renewed APNs certificate starts over.
func TestWatcher(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		org.TimeZone = "America/New_York"
		if _, err := db.UpdateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		// 07:00 in New York on a winter day: before the digest hour.
		t0 := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
		clk := &clock{t: t0}
		replicas := []*watch.Watcher{watch.New(db, watch.Options{Now: clk.now}), watch.New(db, watch.Options{Now: clk.now})}
		scanAll := func() watch.Result {
			t.Helper()
			var wg sync.WaitGroup
			res := make([]watch.Result, len(replicas))
			for i, w := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := w.Scan(ctx)
					if err != nil {
						t.Error(err)
					}
					res[i] = r
				}()
			}
			wg.Wait()
			var sum watch.Result
			for _, r := range res {
				sum.Overdue += r.Overdue
				sum.Silent += r.Silent
				sum.APNs += r.APNs
				sum.Digests += r.Digests
			}
			return sum
		}

		emp := storetest.Employee(t, db, org.ID, "Ada")
		due := t0.Add(2 * time.Hour)
		var task store.LifecycleTask
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			w := store.Workflow{OrgID: org.ID, Kind: "offboarding", EmployeeID: emp.ID, State: "running", RunAt: t0}
			if err := store.InsertWorkflow(ctx, tx, &w, []string{"manual"}); err != nil {
				return err
			}
			task = store.LifecycleTask{OrgID: org.ID, WorkflowID: w.ID, StepID: w.Steps[0].ID, Kind: "confirm_receipt",
				Title: "Confirm the laptop arrived", Assignee: "it", DueAt: &due, SubjectID: emp.ID}
			return store.InsertTask(ctx, tx, &task)
		}); err != nil {
			t.Fatal(err)
		}
		quiet := storetest.Report{Serial: "SN-QUIET", Hostname: "quiet-mac", Platform: domain.PlatformMacOS, At: t0}
		agentID, out := storetest.AgentReports(t, db, org.ID, quiet)
		if err := db.MDMPutPushCert(ctx, store.MDMPushCert{OrgID: org.ID, Topic: "com.apple.mgmt.test", NotAfter: t0.Add(45 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}

		if r := scanAll(); r != (watch.Result{}) {
			t.Fatalf("nothing is due yet: %+v", r)
		}

		// 8 days later, 09:00 local: the task is overdue, the device silent, the digest due,
		// and the certificate 37 days from expiry (no prompt yet).
		clk.set(t0.Add(8*24*time.Hour + 2*time.Hour))
		if r := scanAll(); r != (watch.Result{Overdue: 1, Silent: 1, Digests: 1}) {
			t.Fatalf("first due scan %+v", r)
		}
		if r := scanAll(); r != (watch.Result{}) {
			t.Fatalf("re-run emitted %+v", r)
		}
		evs := typesOf(t, db, org.ID)
		if p := decode[domain.TaskOverduePayload](t, evs[domain.EventTaskOverdue][0]); p.TaskID != task.ID || p.Title != task.Title ||
			!p.DueAt.Equal(due) || p.Assignee != "it" {
			t.Fatalf("overdue %+v", p)
		}
		if p := decode[domain.DeviceSilentPayload](t, evs[domain.EventDeviceSilent][0]); p.DeviceID != out.DeviceID || p.Serial != "SN-QUIET" ||
			p.Hostname != "quiet-mac" || p.Days != watch.DefaultSilentDays || !p.LastSeenAt.Equal(t0) {
			t.Fatalf("silent %+v", p)
		}
		if p := decode[domain.DigestDuePayload](t, evs[domain.EventDigestDue][0]); p.Date != "2026-01-18" || p.TimeZone != "America/New_York" {
			t.Fatalf("digest %+v", p)
		}

		// The device checks in, then stays quiet 8 more days: a new silence, a new prompt; by
		// then the certificate is inside 30 days, and it is the next digest's local day.
		checkIn := clk.now()
		quiet.At = checkIn
		if _, err := db.ApplyInventory(ctx, org.ID, agentID, seed.InventoryReport(quiet)); err != nil {
			t.Fatal(err)
		}
		clk.set(checkIn.Add(8 * 24 * time.Hour))
		if r := scanAll(); r != (watch.Result{Silent: 1, APNs: 1, Digests: 1}) {
			t.Fatalf("re-armed scan %+v", r)
		}
		// 07:00 local, 6 days before expiry: the 7-day prompt, no digest before 08:00.
		clk.set(t0.Add(39 * 24 * time.Hour))
		if r := scanAll(); r != (watch.Result{APNs: 1}) {
			t.Fatalf("7-day scan %+v", r)
		}
		evs = typesOf(t, db, org.ID)
		if s := evs[domain.EventDeviceSilent]; len(s) != 2 || !decode[domain.DeviceSilentPayload](t, s[1]).LastSeenAt.Equal(checkIn) {
			t.Fatalf("silences %d", len(s))
		}
		var days []int
		for _, e := range evs[domain.EventMDMAPNsExpiring] {
			days = append(days, decode[domain.APNsExpiringPayload](t, e).DaysLeft)
		}
		if len(days) != 2 || days[0] != 30 || days[1] != 7 {
			t.Fatalf("apns thresholds %v", days)
		}
		// A renewed certificate (new expiry) starts over; the old one's prompts are not repeated.
		if err := db.MDMPutPushCert(ctx, store.MDMPushCert{OrgID: org.ID, Topic: "com.apple.mgmt.test", NotAfter: clk.now().Add(20 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if r := scanAll(); r != (watch.Result{APNs: 1}) {
			t.Fatalf("renewed scan %+v", r)
		}
	})
}
