package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// connectFake configures s as app name (bearer s.Token) with an Engineering rule for
// groups, which the fake may or may not have.
func (h *harness) connectFake(name string, s *fakescim.Server, groups ...string) {
	h.t.Helper()
	ctx := context.Background()
	sealed, err := h.keys.Seal([]byte(s.Token), lifecycle.TokenAAD(h.org.ID, name))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.db.UpsertAppConnector(ctx, &store.AppConnector{OrgID: h.org.ID, App: name, Kind: "scim", BaseURL: s.URL,
		TokenSealed: sealed, RevokeMode: "deactivate"}); err != nil {
		h.t.Fatal(err)
	}
	b, _ := json.Marshal([]map[string]any{{"app": name, "groups": groups}})
	if err := h.db.InsertAppRule(ctx, &store.AppRule{OrgID: h.org.ID, Department: "Engineering", Apps: string(b)}); err != nil {
		h.t.Fatal(err)
	}
}

func startFakes(t *testing.T, n int) []*fakescim.Server {
	t.Helper()
	var out []*fakescim.Server
	for i := 0; i < n; i++ {
		s, err := fakescim.Start("tok")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out = append(out, s)
	}
	return out
}

func (h *harness) stepOf(employeeID string, kind lifecycle.Kind, step lifecycle.StepKind) store.WorkflowStep {
	for _, s := range h.workflow(employeeID, kind).Steps {
		if s.Kind == string(step) {
			return s
		}
	}
	return store.WorkflowStep{}
}

func stepApps(t *testing.T, s store.WorkflowStep) map[string]lifecycle.AppResult {
	t.Helper()
	var o struct {
		Apps []lifecycle.AppResult `json:"apps"`
	}
	if err := json.Unmarshal(s.Output, &o); err != nil {
		t.Fatalf("step output %s: %v", s.Output, err)
	}
	m := map[string]lifecycle.AppResult{}
	for _, r := range o.Apps {
		m[r.App] = r
	}
	return m
}

// TestGrantMissingGroupIsAManualTaskAtOnce: a group that does not exist on the app
// is not "apps unavailable" retried eight times: the step blocks on its first run
// with a task naming the app and the target's reason, and the other app is granted.
func TestGrantMissingGroupIsAManualTaskAtOnce(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{})
		fakes := startFakes(t, 2)
		fakes[0].AddGroup("engineering")
		h.connectFake("github", fakes[0], "engineering")
		h.connectFake("wiki", fakes[1], "nope")
		h.device("SER-MG", domain.PlatformLinux, "agent")
		e := h.hire("mg", domain.NewDate(2026, 12, 1))
		h.pump("grant blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOnboarding, lifecycle.StepGrantApps) == "blocked"
		})
		st := h.stepOf(e.ID, lifecycle.KindOnboarding, lifecycle.StepGrantApps)
		if n := h.auditCount("lifecycle.step.retrying", st.ID); n != 0 {
			t.Fatalf("a missing group was retried %d times", n)
		}
		res := stepApps(t, st)
		if res["github"].Outcome != "done" || res["github"].Action != "created" || res["wiki"].Outcome != "blocked" ||
			!strings.Contains(res["wiki"].Error, `group "nope" does not exist`) {
			t.Fatalf("results = %+v", res)
		}
		w := h.workflow(e.ID, lifecycle.KindOnboarding)
		tasks := h.openTasks(w.ID)
		if len(tasks) != 1 || tasks[0].Kind != "manual_app_access" || tasks[0].SubjectID != "wiki" ||
			!strings.Contains(tasks[0].Detail, `group "nope" does not exist`) || tasks[0].ID != res["wiki"].ManualTask {
			t.Fatalf("tasks = %+v", tasks)
		}
		// A person grants it by hand: the step counts it done by hand and moves on.
		ctx := domain.WithActor(context.Background(), domain.Actor{ID: "user:admin-1"})
		if _, err := h.eng.CompleteTask(ctx, h.org.ID, tasks[0].ID, "added to the wiki by hand"); err != nil {
			t.Fatal(err)
		}
		h.pump("grant done", func() bool {
			return h.stepState(e.ID, lifecycle.KindOnboarding, lifecycle.StepGrantApps) == "succeeded"
		})
		if r := stepApps(t, h.stepOf(e.ID, lifecycle.KindOnboarding, lifecycle.StepGrantApps))["wiki"]; r.Outcome != "done_by_hand" || r.Note == "" {
			t.Fatalf("wiki after the task = %+v", r)
		}
	})
}

// TestOffboardingFiveAppsPartialFailure: five apps, one throttled (429 with
// Retry-After, then fine), one whose credentials expired (401, permanent). The step
// keeps every app's result, never reports access removed while the expired one still
// has the person active, and suspends the other four.
func TestOffboardingFiveAppsPartialFailure(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{})
		fakes := startFakes(t, 5)
		for i, s := range fakes {
			h.connectFake(fmt.Sprintf("app%d", i+1), s)
		}
		e, _ := h.onboarded("pf", "SER-PF", "agent")
		for i, s := range fakes {
			if u, ok := s.UserByName("pf@acme.test"); !ok || !u.Active {
				t.Fatalf("app%d not granted: %+v", i+1, u)
			}
		}
		fakes[1].FailNext(1, 429, "0", "", "rate limited")
		fakes[2].FailNext(1000, 401, "", "", "token expired")
		h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
		h.pump("revoke blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps) == "blocked"
		})
		st := h.stepOf(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps)
		res := stepApps(t, st)
		if len(res) != 5 {
			t.Fatalf("results = %+v", res)
		}
		for i, s := range fakes {
			app := fmt.Sprintf("app%d", i+1)
			u, _ := s.UserByName("pf@acme.test")
			if i == 2 {
				if !u.Active || res[app].Outcome != "blocked" || !strings.Contains(res[app].Error, "token expired") {
					t.Fatalf("%s = %+v (active %v)", app, res[app], u.Active)
				}
				continue
			}
			if u.Active || res[app].Action != "suspended" || res[app].Outcome != "done" {
				t.Fatalf("%s = %+v (active %v)", app, res[app], u.Active)
			}
		}
		if h.auditCount("lifecycle.step.retrying", st.ID) != 1 {
			t.Fatalf("the 429 was not retried once\n%s", h.dump())
		}
		if !strings.Contains(st.LastError, "app3") || h.wfState(e.ID, lifecycle.KindOffboarding) == "succeeded" {
			t.Fatalf("step error %q, workflow %s", st.LastError, h.wfState(e.ID, lifecycle.KindOffboarding))
		}
		tasks := h.openTasks(h.workflow(e.ID, lifecycle.KindOffboarding).ID)
		if len(tasks) != 1 || tasks[0].SubjectID != "app3" || !strings.Contains(tasks[0].Detail, "credentials") {
			t.Fatalf("tasks = %+v", tasks)
		}
	})
}

// TestCanceledTerminationReactivates: the accounts the offboarding suspended come
// back when the termination is canceled; the audit says so.
func TestCanceledTerminationReactivates(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{})
		h.connectSCIM("github", "engineering")
		e, _ := h.onboarded("rc", "SER-RC", "agent")
		h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
		h.pump("suspended", func() bool {
			u, ok := h.scim.UserByName("rc@acme.test")
			return ok && !u.Active && h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps) == "succeeded"
		})
		h.hrEvent(&e, domain.EventEmployeeTerminationCanceled, func(e *domain.Employee) { e.HR.Status = domain.StatusActive })
		// The reactivation is a job after the cancel's commit: wait for its audit too.
		h.pump("reactivated", func() bool {
			u, _ := h.scim.UserByName("rc@acme.test")
			return u.Active && h.wfState(e.ID, lifecycle.KindOffboarding) == "cancelled" &&
				h.auditCount("lifecycle.apps.reactivated", h.workflow(e.ID, lifecycle.KindOffboarding).ID) > 0
		})
		h.waitReactivationJobs()
		if n := h.auditCount("lifecycle.apps.reactivated", h.workflow(e.ID, lifecycle.KindOffboarding).ID); n != 1 {
			t.Fatalf("reactivation audits = %d", n)
		}
	})
}

// TestSaveConnectorValidatesThroughTheBuilder: a config the kind's Builder refuses is
// refused on save with problem+json naming the field; a good one is stored with its
// settings and auth kind, and the secret never comes back.
func TestSaveConnectorValidatesThroughTheBuilder(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{noRiver: true})
		a := apiHarness(t, h)
		tok := a.Token(h.org.ID, domain.RoleAdmin)
		cases := []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"app": "crm", "kind": "scim", "base_url": "https://crm.test/scim", "auth_kind": "basic", "token": "pw"}, "settings.username"},
			{map[string]any{"app": "crm", "kind": "scim", "base_url": "https://crm.test/scim", "auth_kind": "oauth", "settings": map[string]any{"client_id": "c"}, "token": "s"}, "settings.token_url"},
			{map[string]any{"app": "crm", "kind": "salesforce", "base_url": "https://x.test"}, "kind"},
			// A native kind's own builder names its field.
			{map[string]any{"app": "gw", "kind": "google", "base_url": "https://x.test"}, "settings.domain"},
			{map[string]any{"app": "gh", "kind": "github", "base_url": "https://x.test", "token": "t"}, "settings.org"},
			{map[string]any{"app": "crm", "base_url": "ftp://x"}, "base_url"},
			{map[string]any{"app": "crm", "base_url": "https://x.test", "settings": map[string]any{"tenant": "t"}}, "settings"},
		}
		for _, tc := range cases {
			resp := a.Do("POST", "/api/v1/apps/connectors", tok, tc.body)
			if resp.Status != http.StatusUnprocessableEntity || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") ||
				resp.Map(t)["field"] != tc.field {
				t.Fatalf("%v: status %d %s", tc.body, resp.Status, resp.Body)
			}
		}
		resp := a.Do("POST", "/api/v1/apps/connectors", tok, map[string]any{"app": "crm", "base_url": "https://crm.test/scim", "auth_kind": "basic",
			"settings": map[string]any{"username": "lanyard"}, "token": "hunter2"})
		if resp.Status != http.StatusCreated || strings.Contains(string(resp.Body), "hunter2") {
			t.Fatalf("save: %d %s", resp.Status, resp.Body)
		}
		cs, err := h.db.ListAppConnectors(context.Background(), h.org.ID)
		if err != nil || len(cs) != 1 || cs[0].AuthKind != "basic" || !strings.Contains(cs[0].Settings, "lanyard") || cs[0].TokenSealed == "" || strings.Contains(cs[0].TokenSealed, "hunter2") {
			t.Fatalf("stored = %+v, %v", cs, err)
		}
	})
}

// TestReconcileOrphans: an account of nobody is reported; a terminated person whose
// account is active again (an admin turned it back on) is suspended again and
// reported; a second pass keeps first_seen; a resolved one is marked so.
func TestReconcileOrphans(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		h.connectSCIM("github", "engineering")
		e, _ := h.onboarded("ro", "SER-RO", "agent")
		h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
		h.pump("suspended", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps) == "succeeded"
		})
		u, _ := h.scim.UserByName("ro@acme.test")
		h.scim.AddUser(fakescim.User{UserName: "ghost@acme.test", Active: true})
		// Someone reactivates the leaver in the app.
		reactivate(t, h.scim, u.ID)
		rep, err := h.eng.ReconcileApps(ctx, h.org.ID)
		if err != nil || rep.Orphans != 2 || rep.New != 2 || rep.Apps["github"] != 2 {
			t.Fatalf("report = %+v, %v", rep, err)
		}
		if u, _ := h.scim.UserByName("ro@acme.test"); u.Active {
			t.Fatal("the terminated person's account was not suspended again")
		}
		os, err := h.db.ListAppOrphans(ctx, h.org.ID, false)
		if err != nil || len(os) != 2 {
			t.Fatalf("orphans = %+v, %v", os, err)
		}
		by := map[string]store.AppOrphan{}
		for _, o := range os {
			by[o.UserName] = o
		}
		if by["ghost@acme.test"].Reason != "no_person" || by["ro@acme.test"].Reason != "terminated" || by["ro@acme.test"].Action != "resuspended" ||
			by["ro@acme.test"].EmployeeID != e.ID {
			t.Fatalf("orphans = %+v", by)
		}
		// Second pass: the leaver is suspended now (resolved), the ghost is still there.
		rep, err = h.eng.ReconcileApps(ctx, h.org.ID)
		if err != nil || rep.Orphans != 1 || rep.New != 0 {
			t.Fatalf("second report = %+v, %v", rep, err)
		}
		os, _ = h.db.ListAppOrphans(ctx, h.org.ID, false)
		if len(os) != 1 || os[0].UserName != "ghost@acme.test" || !os[0].FirstSeenAt.Equal(by["ghost@acme.test"].FirstSeenAt) {
			t.Fatalf("open orphans after the second pass = %+v", os)
		}
		// Visible by API, and audited.
		a := apiHarness(t, h)
		resp := a.Do("GET", "/api/v1/apps/orphans?all=true", a.Token(h.org.ID, domain.RoleAdmin), nil)
		if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), "ghost@acme.test") || !strings.Contains(string(resp.Body), "resolved_at") {
			t.Fatalf("GET orphans: %d %s", resp.Status, resp.Body)
		}
		if h.auditCount("app.account.resuspended", by["ro@acme.test"].ID) != 1 || h.auditCount("app.orphan.found", by["ghost@acme.test"].ID) != 1 {
			t.Fatal("orphans not audited")
		}
	})
}

// reactivate turns an account back on through the fake's own SCIM API, as an app
// admin would.
func reactivate(t *testing.T, s *fakescim.Server, id string) {
	t.Helper()
	body := strings.NewReader(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":true}]}`)
	req, _ := http.NewRequest(http.MethodPatch, s.URL+"/Users/"+id, body)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reactivate in the app: %v %v", resp, err)
	}
	resp.Body.Close()
}
