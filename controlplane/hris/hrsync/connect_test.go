package hrsync_test

import (
	"net/http"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// First connect imports every active member (US only by default, EDGE_CASES 8),
// emits one employee.hired each, and the REST routes report it.
func TestConnectImportsActiveMembers(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		members := gen(60, false)
		h := newHarness(t, db, hopts{members: members})
		res, run := h.connect()
		want := expectedImport(members, false)
		if run.Status != store.HRRunSucceeded || run.Kind != hrsync.KindInitial || run.Created != want {
			t.Fatalf("run %+v, want %d created", run, want)
		}
		if res.CompanyName != "Acme Fake Co" || res.Scopes != "member.detail:read member.employment:read company.basic:read" {
			t.Fatalf("callback %+v", res)
		}
		evs := h.events()
		if c := countTypes(evs); c[domain.EventEmployeeHired] != want {
			t.Fatalf("events %v, want %d hired", c, want)
		}
		// Some generated members are international and were skipped with a reason.
		excluded := 0
		for _, e := range run.Errors {
			if e.Kind == "excluded" {
				excluded++
			}
		}
		if excluded == 0 || run.Skipped != excluded {
			t.Fatalf("skipped %d, excluded errors %d", run.Skipped, excluded)
		}
		// A known member is mapped completely; identity is the member id.
		m := members[0]
		e := h.employee(m.ID)
		if e.Source != "justworks" || e.HR.FirstName != m.Name.GivenName || e.HR.WorkEmail != m.WorkEmail() ||
			e.HR.Title != m.JobTitle || len(e.HR.Departments) != 1 || e.HR.Departments[0] != m.Department.Name ||
			e.HR.StartDate == nil || e.HR.StartDate.String() != m.EmploymentStartDate || e.HR.Address.City == "" || e.HR.Phone == "" ||
			e.HR.SourceUpdatedAt == nil {
			t.Fatalf("employee %+v from %+v", e, m)
		}
		// A second sync with nothing changed writes no event.
		run2 := h.sync("")
		if run2.Status != store.HRRunSucceeded || run2.Created+run2.Updated+run2.Terminated != 0 || len(h.events()) != 0 {
			t.Fatalf("idle sync %+v", run2)
		}

		var st hrsync.Status
		if code := h.call(domain.RoleViewer, "GET", "/api/v1/hr/connection", nil, &st); code != 200 || !st.Connected ||
			st.LastRun == nil || st.Employees["active"]+st.Employees["pending"] != want || st.WebhookURL == "" {
			t.Fatalf("status %d %+v", code, st)
		}
		var list struct {
			Items []store.HRSyncRun `json:"items"`
		}
		if code := h.call(domain.RoleViewer, "GET", "/api/v1/hr/sync-runs", nil, &list); code != 200 || len(list.Items) != 2 || list.Items[0].ID != run2.ID {
			t.Fatalf("runs %d %+v", code, list)
		}
		var got store.HRSyncRun
		if code := h.call(domain.RoleViewer, "GET", "/api/v1/hr/sync-runs/"+run.ID, nil, &got); code != 200 || got.Created != want {
			t.Fatalf("run %d %+v", code, got)
		}
		// Roles: viewer cannot connect or sync; it cannot approve terminations; a second connect conflicts.
		if code := h.call(domain.RoleViewer, "POST", "/api/v1/hr/connection", map[string]any{}, nil); code != http.StatusForbidden {
			t.Fatalf("viewer connect %d", code)
		}
		if code := h.call(domain.RoleIT, "POST", "/api/v1/hr/connection/sync", map[string]any{"approve_terminations": true}, nil); code != http.StatusForbidden {
			t.Fatalf("it approve %d", code)
		}
		if code := h.call(domain.RoleAdmin, "POST", "/api/v1/hr/connection", map[string]any{}, nil); code != http.StatusConflict {
			t.Fatalf("second connect %d", code)
		}
		if code := h.call(domain.RoleIT, "POST", "/api/v1/hr/connection/sync", map[string]any{"kind": "incremental"}, &got); code != http.StatusAccepted {
			t.Fatalf("manual sync %d", code)
		}
		if r, err := h.eng.WaitRun(h.ctx, h.org.ID, got.ID, 10e9); err != nil || r.Status != store.HRRunSucceeded || r.Kind != hrsync.KindIncremental {
			t.Fatalf("manual run %+v %v", r, err)
		}
		if h.audits("hr.connection.connected") != 1 || h.audits("employee.hr_created") != want {
			t.Fatal("audit rows missing")
		}
	})
}

func TestIncludeInternationalSetting(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *store.DB) {
		members := gen(60, false)
		h := newHarness(t, db, hopts{members: members, settings: domain.OrgSettings{IncludeInternational: true}})
		_, run := h.connect()
		if want := expectedImport(members, true); run.Created != want || run.Skipped != 0 {
			t.Fatalf("run %+v want %d", run, want)
		}
		intl := 0
		for _, m := range members {
			if (m.Type == "employee_eor" || m.Type == "international_employee") && m.Active {
				if e := h.employee(m.ID); !e.HR.International || e.HR.Address.Country == "US" {
					t.Fatalf("international %+v", e.HR)
				}
				intl++
			}
		}
		if intl == 0 {
			t.Fatal("fixture has no international member")
		}
	})
}

// The plan gate: an org on a plan without HR sync gets a problem, not a crash.
// (Every plan includes hr today; this checks the route declares the feature.)
func TestRoutesDeclarePlanAndRoles(t *testing.T) {
	t.Parallel()
	e, err := hrsync.New(hrsync.Config{DB: &store.DB{}, Keyring: mustKeyring(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Routes() {
		switch {
		case r.Public:
			if r.Path != hrsync.WebhookPath && r.Path != hrsync.CallbackPath {
				t.Fatalf("unexpected public route %s", r.Path)
			}
		case r.Feature != domain.FeatureHRSync:
			t.Fatalf("%s %s lacks the hr_sync feature gate", r.Method, r.Path)
		case (r.Method == "POST" && r.Path == "/api/v1/hr/connection") || r.Method == "DELETE":
			if r.Role != domain.RoleAdmin {
				t.Fatalf("%s %s role %s", r.Method, r.Path, r.Role)
			}
		}
	}
}

var _ = fakejustworks.MemberID
