package hrsync_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

func mid(i int) string { return fakejustworks.MemberID(i) }

// Webhook-driven EDGE_CASES, in order on one connection per database: 1, 2, 3,
// 5, 6, 11, 12, 14, 16, 17 (and 1/16 again once the clock passes the dates).
func TestWebhookEdgeCases(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		members := gen(30, true)
		h := newHarness(t, db, hopts{members: members})
		h.connect()
		h.events()

		t.Run("1 future termination scheduled, 11 delivered three times", func(t *testing.T) {
			h.fake.SetChaos(fakejustworks.Chaos{Duplicates: 2})
			defer h.fake.SetChaos(fakejustworks.Chaos{})
			if _, err := h.fake.ScheduleTermination(mid(2), date(10)); err != nil {
				t.Fatal(err)
			}
			res := h.deliver()
			if len(res) != 3 || res[1].Status != http.StatusOK || res[0].Status != http.StatusAccepted {
				t.Fatalf("deliveries %+v", res)
			}
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeTerminationScheduled {
				t.Fatalf("events %v", countTypes(evs))
			}
			e := h.employee(mid(2))
			if e.HR.Status != domain.StatusActive || e.HR.TerminationDate == nil || e.HR.TerminationDate.String() != date(10) {
				t.Fatalf("hr %+v", e.HR)
			}
		})
		t.Run("3 termination canceled", func(t *testing.T) {
			if _, err := h.fake.CancelTermination(mid(2)); err != nil {
				t.Fatal(err)
			}
			h.deliver()
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeTerminationCanceled {
				t.Fatalf("events %v", countTypes(evs))
			}
			if e := h.employee(mid(2)); e.HR.TerminationDate != nil {
				t.Fatalf("date kept: %v", e.HR.TerminationDate)
			}
		})
		t.Run("2 retroactive termination offboards now, 17 reports unaffected", func(t *testing.T) {
			// mem 1 manages others in the generated fixture.
			if _, err := h.fake.ScheduleTermination(mid(1), date(-3)); err != nil {
				t.Fatal(err)
			}
			h.deliver()
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeTerminated || evs[0].SubjectID != h.employee(mid(1)).ID {
				t.Fatalf("events %v", countTypes(evs))
			}
			if e := h.employee(mid(1)); e.HR.Status != domain.StatusTerminated || e.HR.TerminationDate.String() != date(-3) {
				t.Fatalf("hr %+v", e.HR)
			}
			var reports int
			if err := db.SQL.QueryRowContext(h.ctx, `SELECT COUNT(*) FROM hr_members WHERE org_id = $1 AND manager_external_id = $2`, h.org.ID, mid(1)).Scan(&reports); err != nil || reports == 0 {
				t.Fatalf("reporting line lost: %d %v", reports, err)
			}
		})
		t.Run("12 out-of-order events decide from current state", func(t *testing.T) {
			h.fake.SetChaos(fakejustworks.Chaos{Reverse: true})
			defer h.fake.SetChaos(fakejustworks.Chaos{})
			h.fake.ScheduleTermination(mid(5), date(20))
			h.fake.CancelTermination(mid(5))
			h.fake.UpdateMember(mid(6), func(m *fakejustworks.Member) { m.JobTitle = "First" }, false)
			h.fake.UpdateMember(mid(6), func(m *fakejustworks.Member) { m.JobTitle = "Second" }, false)
			h.deliver()
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeUpdated {
				t.Fatalf("events %v", countTypes(evs))
			}
			if e := h.employee(mid(5)); e.HR.TerminationDate != nil {
				t.Fatalf("mem5 %+v", e.HR)
			}
			if e := h.employee(mid(6)); e.HR.Title != "Second" {
				t.Fatalf("mem6 title %q", e.HR.Title)
			}
		})
		t.Run("5 work email change keeps identity", func(t *testing.T) {
			before := h.employee(mid(7))
			h.fake.UpdateMember(mid(7), func(m *fakejustworks.Member) { m.Emails[0].Address = "renamed@acme.example.com" }, false)
			h.deliver()
			evs := h.events()
			after := h.employee(mid(7))
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeUpdated || after.ID != before.ID || after.HR.WorkEmail != "renamed@acme.example.com" {
				t.Fatalf("events %v employee %+v", countTypes(evs), after.HR)
			}
			if string(evs[0].Payload) == "" || !contains(string(evs[0].Payload), `"changed":["work_email"]`) {
				t.Fatalf("payload %s", evs[0].Payload)
			}
		})
		t.Run("5 new hire without work email yet", func(t *testing.T) {
			m := h.fake.AddMember(fakejustworks.Member{Active: true, Type: "employee", Name: &fakejustworks.Name{GivenName: "New", FamilyName: "Hire"},
				Emails: []fakejustworks.Email{{Type: "PERSONAL", Address: "new@example.org"}}, EmploymentStartDate: date(-1)})
			h.deliver()
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeHired {
				t.Fatalf("events %v", countTypes(evs))
			}
			if e := h.employee(m.ID); e.HR.WorkEmail != "" || e.HR.PersonalEmail != "new@example.org" || e.HR.Status != domain.StatusActive {
				t.Fatalf("hr %+v", e.HR)
			}
		})
		t.Run("16 future start date: hired early as pending", func(t *testing.T) {
			m := h.fake.AddMember(fakejustworks.Member{ID: "mem_future", Active: true, Type: "employee", Name: &fakejustworks.Name{GivenName: "Soon", FamilyName: "Starter"},
				Emails: []fakejustworks.Email{{Type: "WORK", Address: "soon@acme.example.com"}}, EmploymentStartDate: date(2)})
			h.deliver()
			evs := h.events()
			if len(evs) != 1 || evs[0].Type != domain.EventEmployeeHired || !contains(string(evs[0].Payload), `"status":"pending"`) {
				t.Fatalf("events %v %s", countTypes(evs), evs[0].Payload)
			}
			if e := h.employee(m.ID); e.HR.Status != domain.StatusPending {
				t.Fatalf("status %s", e.HR.Status)
			}
		})
		t.Run("6 department renamed then deleted", func(t *testing.T) {
			dep := members[9].Department.ID
			ids, err := store.ListHRMemberIDsByDepartment(h.ctx, db.SQL, h.org.ID, "justworks", dep)
			if err != nil || len(ids) == 0 {
				t.Fatalf("members of %s: %v %v", dep, ids, err)
			}
			h.fake.RenameDepartment(dep, "Renamed Dept")
			h.deliver()
			evs := h.events()
			if c := countTypes(evs); c[domain.EventEmployeeUpdated] != len(ids) || len(evs) != len(ids) {
				t.Fatalf("rename events %v for %d members", c, len(ids))
			}
			if e := h.employee(ids[0]); len(e.HR.Departments) != 1 || e.HR.Departments[0] != "Renamed Dept" {
				t.Fatalf("departments %v", e.HR.Departments)
			}
			h.fake.DeleteDepartment(dep)
			h.deliver()
			if evs := h.events(); len(evs) != len(ids) {
				t.Fatalf("delete events %v", countTypes(evs))
			}
			if e := h.employee(ids[0]); len(e.HR.Departments) != 0 {
				t.Fatalf("departments after delete %v", e.HR.Departments)
			}
		})
		t.Run("14 bad signatures are 401 and never processed", func(t *testing.T) {
			before := h.webhookRows()
			url := h.eng.WebhookURL(h.conn().ID)
			m, _ := h.fake.Member(mid(8))
			body := h.fake.NewEvent("member.profile.updated", m)
			stale := strconv.FormatInt(h.fake.Now().Add(-10*time.Minute).Unix(), 10)
			for name, o := range map[string]fakejustworks.DeliverOptions{
				"wrong secret":    {Secret: []byte("guess")},
				"stale timestamp": {Timestamp: stale},
				"future":          {Timestamp: strconv.FormatInt(h.fake.Now().Add(time.Hour).Unix(), 10)},
				"tampered body":   {TamperBody: true},
				"no headers":      {NoHeaders: true},
			} {
				if d := h.fake.Deliver(h.ctx, url, h.secret, body, o); d.Status != http.StatusUnauthorized {
					t.Fatalf("%s: %+v", name, d)
				}
			}
			if after := h.webhookRows(); after["processed"] != before["processed"] || after["received"] != 0 || len(after) != len(before) {
				t.Fatalf("rows %v -> %v", before, after)
			}
			if d := h.fake.Deliver(h.ctx, url, h.secret, body, fakejustworks.DeliverOptions{}); d.Status != http.StatusAccepted {
				t.Fatalf("good delivery %+v", d)
			}
			if d := h.fake.Deliver(h.ctx, url, h.secret, body, fakejustworks.DeliverOptions{}); d.Status != http.StatusOK {
				t.Fatalf("duplicate delivery %+v", d)
			}
			if h.conn().LastWebhookAt == nil {
				t.Fatal("last_webhook_at not recorded")
			}
			if h.metric("lanyard_hr_webhooks_total") < 8 || h.metric("lanyard_hr_webhook_processing_seconds") == 0 || h.metric("lanyard_hr_sync_runs_total") == 0 {
				t.Fatalf("metrics: webhooks %v processed %v runs %v", h.metric("lanyard_hr_webhooks_total"),
					h.metric("lanyard_hr_webhook_processing_seconds"), h.metric("lanyard_hr_sync_runs_total"))
			}
			h.waitProcessed()
			if evs := h.events(); len(evs) != 0 {
				t.Fatalf("unchanged member produced %v", countTypes(evs))
			}
		})
		t.Run("1 and 16: dates pass with no webhook; the reconcile catches both", func(t *testing.T) {
			h.fake.ScheduleTermination(mid(10), date(1))
			h.deliver()
			if c := countTypes(h.events()); c[domain.EventEmployeeTerminationScheduled] != 1 {
				t.Fatalf("events %v", c)
			}
			h.advance(72 * time.Hour) // both clocks; access tokens expire too
			run := h.sync("incremental")
			evs := h.events()
			c := countTypes(evs)
			if run.Status != store.HRRunSucceeded || c[domain.EventEmployeeTerminated] != 1 || c[domain.EventEmployeeUpdated] != 1 || len(evs) != 2 {
				t.Fatalf("run %+v events %v", run, c)
			}
			if e := h.employee("mem_future"); e.HR.Status != domain.StatusActive {
				t.Fatalf("future starter %s", e.HR.Status)
			}
			if e := h.employee(mid(10)); e.HR.Status != domain.StatusTerminated {
				t.Fatalf("mem10 %s", e.HR.Status)
			}
			if n, err := store.PruneHRWebhookEvents(h.ctx, db.SQL, h.conn().ID, h.now()); err != nil || n == 0 || h.webhookRows()["processed"] != 0 {
				t.Fatalf("prune: %d %v", n, err)
			}
		})
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
