package hrsync_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// EDGE_CASES 10 and the ends of a connection: token expiry mid-sync, a revoked
// grant, reconnect, admin disconnect, and a company that left Justworks.
func TestGrantLifecycle(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(80, true), fake: fakejustworks.Options{AccessTTL: time.Hour}})
		h.connect()
		h.events()
		employees := h.countEmployees(domain.StatusActive)

		t.Run("10 token expires mid-sync: one refresh, same cursor", func(t *testing.T) {
			grant := h.conn().GrantSealed
			n := 0
			h.fake.OnMembersPage(func(int) {
				if n++; n == 2 {
					h.advance(2 * time.Hour)
				}
			})
			defer h.fake.OnMembersPage(nil)
			refreshes := h.fake.Stats().TokenRefreshes
			run := h.sync("full")
			if run.Status != store.HRRunSucceeded || run.Seen != 80 || h.fake.Stats().TokenRefreshes != refreshes+1 {
				t.Fatalf("run %+v refreshes %d", run, h.fake.Stats().TokenRefreshes-refreshes)
			}
			if h.conn().GrantSealed == grant {
				t.Fatal("rotated grant not persisted")
			}
		})
		t.Run("10 revoked grant ends the connection, nobody is offboarded", func(t *testing.T) {
			h.fake.UpdateMember(mid(5), func(m *fakejustworks.Member) { m.Active = false }, true)
			h.fake.RevokeAllGrants()
			h.advance(2 * time.Hour)
			run := h.sync("incremental")
			c := h.conn()
			if run.Status != store.HRRunFailed || c.State != store.HRStateTerminated || c.Reason != hrsync.ReasonGrantRevoked || c.TerminatedAt == nil {
				t.Fatalf("run %+v conn %+v", run, c)
			}
			evs := h.events()
			if h.countEmployees(domain.StatusActive) != employees || len(evs) != 1 || h.audits("hr.connection.terminated") != 1 {
				t.Fatalf("a revoked grant must not change people: %v", countTypes(evs))
			}
			// The only event is the admins' prompt that the connection ended.
			var ended domain.HRConnectionPayload
			if err := json.Unmarshal(evs[0].Payload, &ended); err != nil || evs[0].Type != domain.EventHRConnectionEnded ||
				ended.ConnectionID != c.ID || ended.Provider != c.Provider || !strings.HasPrefix(ended.Reason, hrsync.ReasonGrantRevoked) {
				t.Fatalf("ended event %s %s %v", evs[0].Type, evs[0].Payload, err)
			}
			// Webhooks for the ended connection are refused; sync is a conflict.
			m, _ := h.fake.Member(mid(6))
			if d := h.fake.Deliver(h.ctx, h.eng.WebhookURL(c.ID), h.secret, h.fake.NewEvent("member.profile.updated", m), fakejustworks.DeliverOptions{}); d.Status != 404 {
				t.Fatalf("webhook to ended connection: %+v", d)
			}
			if code := h.call(domain.RoleIT, "POST", "/api/v1/hr/connection/sync", nil, nil); code != 404 {
				t.Fatalf("sync on ended connection %d", code)
			}
			var st hrsync.Status
			h.call(domain.RoleViewer, "GET", "/api/v1/hr/connection", nil, &st)
			if st.Connected || st.Connection == nil || st.Connection.Reason != hrsync.ReasonGrantRevoked {
				t.Fatalf("status %+v", st)
			}
		})
		t.Run("reconnect works and duplicates nobody", func(t *testing.T) {
			_, run := h.connect()
			evs := h.events()
			if run.Status != store.HRRunSucceeded || run.Created != 0 || len(evs) != 1 || evs[0].Type != domain.EventEmployeeTerminated {
				// mem 5 became inactive while disconnected: the reconnect's catch-up sees it.
				t.Fatalf("run %+v events %v", run, countTypes(evs))
			}
		})
		t.Run("admin disconnect revokes the grant; people stay", func(t *testing.T) {
			rev := h.fake.Stats().Revocations
			var c store.HRConnection
			if code := h.call(domain.RoleIT, "DELETE", "/api/v1/hr/connection", nil, nil); code != 403 {
				t.Fatalf("it disconnect %d", code)
			}
			if code := h.call(domain.RoleAdmin, "DELETE", "/api/v1/hr/connection", nil, &c); code != 200 || c.State != store.HRStateTerminated || c.Reason == "" {
				t.Fatalf("disconnect %d %+v", code, c)
			}
			if h.fake.Stats().Revocations != rev+2 {
				t.Fatalf("revocations %d", h.fake.Stats().Revocations-rev)
			}
			if h.countEmployees(domain.StatusActive) != employees-1 {
				t.Fatal("people removed on disconnect")
			}
			if code := h.call(domain.RoleAdmin, "DELETE", "/api/v1/hr/connection", nil, nil); code != 404 {
				t.Fatalf("second disconnect %d", code)
			}
		})
		t.Run("company left Justworks ends the connection", func(t *testing.T) {
			h.connect()
			h.events()
			h.fake.LeaveCompany()
			run := h.sync("incremental")
			c := h.conn()
			if run.Status != store.HRRunFailed || c.State != store.HRStateTerminated || c.Reason != hrsync.ReasonCompanyLeft {
				t.Fatalf("run %+v conn %+v", run, c)
			}
			if evs := countTypes(h.events()); len(evs) != 1 || evs[domain.EventHRConnectionEnded] != 1 {
				t.Fatalf("company left wrote %v, want only the admins' prompt", evs)
			}
		})
	})
}

// EDGE_CASES 15: fields hidden by a narrower grant are not read as cleared.
func TestNarrowScopesKeepHiddenFields(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(20, true)})
		h.connect()
		h.events()
		before := h.employee(mid(2))
		if code := h.call(domain.RoleAdmin, "DELETE", "/api/v1/hr/connection", nil, nil); code != 200 {
			t.Fatal(code)
		}
		if evs := countTypes(h.events()); len(evs) != 1 || evs[domain.EventHRConnectionEnded] != 1 {
			t.Fatalf("disconnect wrote %v, want only the admins' prompt", evs)
		}
		h.fake.SetGrantScopes([]string{"member.basic:read", "company.basic:read"})
		_, run := h.connect()
		if h.conn().Scopes != "member.basic:read company.basic:read" || run.Updated != 0 || len(h.events()) != 0 {
			t.Fatalf("narrow import changed people: %+v", run)
		}
		after := h.employee(mid(2))
		if after.HR.Address != before.HR.Address || after.HR.StartDate.String() != before.HR.StartDate.String() || len(after.HR.Departments) != 1 || after.HR.Phone == "" {
			t.Fatalf("hidden fields cleared: %+v", after.HR)
		}
		h.fake.UpdateMember(mid(2), func(m *fakejustworks.Member) {
			m.Phones[0].Number = "+15550000000"
			m.Name.GivenName = "Renamed"
		}, false)
		h.deliver()
		evs := h.events()
		if len(evs) != 1 || !contains(string(evs[0].Payload), `"changed":["first_name"]`) {
			t.Fatalf("events %v", evs)
		}
	})
}

// Malformed records are skipped and reported, never fatal.
func TestMalformedRecordsSkipped(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(10, true)})
		h.fake.PutRaw("mem_bad1", []byte(`{"id":"mem_bad1","company_id":"co_fake","active":"yes"}`))
		h.fake.PutRaw("mem_bad2", []byte(`{"id":"mem_bad2","company_id":"co_fake","active":true,"employment_start_date":"tomorrow"}`))
		_, run := h.connect()
		if run.Status != store.HRRunSucceeded || run.Created != 10 || run.Skipped != 2 {
			t.Fatalf("run %+v", run)
		}
		ids := map[string]string{}
		for _, e := range run.Errors {
			ids[e.ExternalID] = e.Kind
		}
		if ids["mem_bad1"] != "malformed" || ids["mem_bad2"] != "malformed" {
			t.Fatalf("errors %+v", run.Errors)
		}
		// A webhook about a malformed member is recorded as failed, not retried forever.
		url := h.eng.WebhookURL(h.conn().ID)
		if d := h.fake.Deliver(h.ctx, url, h.secret, h.fake.NewEvent("member.profile.updated", fakejustworks.Member{ID: "mem_bad1"}), fakejustworks.DeliverOptions{}); d.Status != 202 {
			t.Fatalf("%+v", d)
		}
		h.waitProcessed()
		if rows := h.webhookRows(); rows["failed"] != 1 {
			t.Fatalf("rows %v", rows)
		}
	})
}

// The River periodic job reconciles every connection, and reconcile jobs are
// unique per connection.
func TestPeriodicReconcileJob(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{members: gen(10, true), cfg: func(c *hrsync.Config) { c.ReconcileInterval = time.Hour }})
		h.connect()
		ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
		defer cancel()
		if err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		// Uniqueness, on an insert-only client.
		ins, err := jobs.NewClient(db, nil, jobs.Options{InsertOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		args := hrsync.ReconcileArgs{OrgID: h.org.ID, ConnectionID: h.conn().ID}
		r1, err := ins.Insert(ctx, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ins.Insert(ctx, args, nil)
		if err != nil || r1.UniqueSkippedAsDuplicate || !r2.UniqueSkippedAsDuplicate {
			t.Fatalf("unique: %v %v %v", r1.UniqueSkippedAsDuplicate, r2.UniqueSkippedAsDuplicate, err)
		}
		reg := jobs.NewRegistry()
		h.eng.RegisterJobs(reg)
		c, err := jobs.NewClient(db, reg, jobs.Options{PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Stop(context.Background()) }()
		// The queued job and the periodic one (run on start) both run; a
		// schedule-triggered run appears.
		for {
			runs, _, err := db.ListHRSyncRuns(ctx, h.org.ID, store.Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			sched := 0
			for _, r := range runs {
				if r.Trigger == "schedule" && r.Status == store.HRRunSucceeded {
					sched++
				}
			}
			if sched > 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("no scheduled reconcile ran")
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// The demo helper connects an org to an in-process fake and imports it.
func TestConnectDemo(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, hopts{})
		ctx, cancel := context.WithCancel(h.ctx)
		defer cancel()
		for round := 0; round < 2; round++ { // a restart of `make run` starts a new fake
			fake, err := fakejustworks.StartDemo(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			eng := demoEngine(t, h, fake)
			c, err := hrsync.ConnectDemo(ctx, eng, h.org.ID, fake)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != store.HRStateActive || !c.ImportDone || c.CompanyName != "Acme Demo Co" {
				t.Fatalf("round %d: %+v", round, c)
			}
			n := h.countEmployees(domain.StatusActive) + h.countEmployees(domain.StatusPending)
			hired := countTypes(h.events())[domain.EventEmployeeHired]
			if round == 0 && (n < 25 || hired != n) || round == 1 && hired != 0 {
				t.Fatalf("round %d: %d employees, %d hired events", round, n, hired)
			}
			eng.Close()
		}
	})
}
