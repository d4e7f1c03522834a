package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The App orphans page lists open orphans per app with the reason in words and the
// person linked, shows resolved ones behind the toggle, escapes what an app sent, and
// is refused below the API's role.
func TestAppOrphansPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(domain.RoleAdmin)
	if p := admin.get("/apps/orphans"); p.Status != http.StatusOK || !strings.Contains(p.Body, `id="no-orphans"`) ||
		!strings.Contains(p.Body, `href="/apps/orphans" aria-current="page"`) {
		t.Fatalf("empty state: %d %s", p.Status, p.Body)
	}
	evil := `<script>alert(1)</script>`
	leaver := storetest.Employee(t, e.srv.DB, e.org.ID, "Leaver")
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	if _, err := e.srv.DB.SaveAppOrphans(ctx, e.org.ID, "github", []store.AppOrphan{
		{AccountID: "gh-1", UserName: "ghost" + evil, Reason: "no_person", Action: "reported"},
		{AccountID: "gh-2", UserName: leaver.HR.WorkEmail, EmployeeID: leaver.ID, Reason: "terminated", Action: "resuspended"},
	}, t0); err != nil {
		t.Fatal(err)
	}
	// slack's orphan is found, then gone on the next pass: resolved.
	if _, err := e.srv.DB.SaveAppOrphans(ctx, e.org.ID, "slack", []store.AppOrphan{
		{AccountID: "sl-1", UserName: "old-bot", Reason: "no_person", Action: "reported"}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.DB.SaveAppOrphans(ctx, e.org.ID, "slack", nil, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	p := admin.get("/apps/orphans")
	for marker, wants := range map[string][]string{
		"gh-1": {"account of nobody in Lanyard", "ghost&lt;script&gt;", t0.Format("2006-01-02 15:04"), "open"},
		"gh-2": {"active account of a terminated person — suspended again", `<a href="/people/` + leaver.ID + `">Leaver Test</a>`},
	} {
		row := rowOf(t, p.Body, marker)
		for _, want := range wants {
			if !strings.Contains(row, want) {
				t.Errorf("row of %s lacks %q: %s", marker, want, row)
			}
		}
	}
	if !strings.Contains(p.Body, "<h3 id=\"app-0\">github</h3>") {
		t.Errorf("no github group: %s", p.Body)
	}
	if p.Status != http.StatusOK || strings.Contains(p.Body, evil) || strings.Contains(p.Body, "old-bot") || strings.Contains(p.Body, `id="no-orphans"`) {
		t.Fatalf("open list: %d %s", p.Status, p.Body)
	}
	all := admin.get("/apps/orphans?all=true")
	if all.Status != http.StatusOK || !strings.Contains(all.Body, "old-bot") || !strings.Contains(all.Body, t0.Add(time.Minute).Format("2006-01-02 15:04")) ||
		!strings.Contains(all.Body, "Show open ones only") {
		t.Fatalf("all: %d %s", all.Status, all.Body)
	}

	for _, role := range []domain.Role{domain.RoleViewer, domain.RoleIT} {
		if p := e.client(role).get("/apps/orphans"); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "needs the") ||
			!strings.Contains(p.Body, `role="alert"`) || strings.Contains(p.Body, "gh-1") {
			t.Errorf("%s: %d %s", role, p.Status, p.Body)
		}
	}
}

func TestOrphanReasonsInWords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		reason, action, want string
	}{
		{"no_person", "reported", "account of nobody in Lanyard"},
		{"terminated", "resuspended", "active account of a terminated person — suspended again"},
		{"terminated", "resuspend_failed", "active account of a terminated person — suspending it again failed"},
	} {
		app := "app-" + tc.action
		if _, err := e.srv.DB.SaveAppOrphans(ctx, e.org.ID, app, []store.AppOrphan{
			{AccountID: "a-" + tc.action, Reason: tc.reason, Action: tc.action, Detail: "detail-" + tc.action}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		row := rowOf(t, e.client(domain.RoleAdmin).get("/apps/orphans").Body, "a-"+tc.action)
		if !strings.Contains(row, tc.want) || !strings.Contains(row, "detail-"+tc.action) {
			t.Errorf("%s/%s: row %s, want %q", tc.reason, tc.action, row, tc.want)
		}
	}
}

// "Reconcile now" runs the API's reconcile route against a real SCIM app: the ghost
// account appears with the report; without the CSRF token, or below admin, nothing runs.
func TestReconcileNowFindsAGhost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	fake, err := fakescim.Start("tok")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	member := storetest.Employee(t, e.srv.DB, e.org.ID, "Member")
	fake.AddUser(fakescim.User{UserName: member.HR.WorkEmail, Active: true})
	fake.AddUser(fakescim.User{UserName: "ghost@acme.test", Active: true})
	admin := e.client(domain.RoleAdmin)
	ap, err := e.auth.Principal(ctx, admin.sess)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.API.Call(ctx, ap, "POST", "/api/v1/apps/connectors",
		map[string]any{"app": "crm", "kind": "scim", "base_url": fake.URL, "token": "tok"}, nil); err != nil {
		t.Fatalf("save connector: %v", err)
	}
	page := admin.get("/apps/orphans")
	if !strings.Contains(page.Body, `action="/apps/orphans/reconcile"`) || strings.Contains(page.Body, "ghost@acme.test") {
		t.Fatalf("before: %d %s", page.Status, page.Body)
	}

	before := fake.Requests()
	refusals := []struct {
		name string
		cl   *client
		form url.Values
		want string
	}{
		{"no csrf token", admin, url.Values{"csrf": {""}}, "Forbidden"},
		{"wrong csrf token", admin, url.Values{"csrf": {"not-the-token"}}, "Forbidden"},
		{"it role", e.client(domain.RoleIT), nil, "needs the"},
	}
	for _, tc := range refusals {
		if p := tc.cl.post("/apps/orphans/reconcile", tc.form); p.Status != http.StatusForbidden || !strings.Contains(p.Body, tc.want) {
			t.Errorf("%s: %d %s", tc.name, p.Status, p.Body)
		}
	}
	if n := fake.Requests(); n != before {
		t.Fatalf("a refused post reached the app (%d requests)", n-before)
	}

	p := admin.post("/apps/orphans/reconcile", url.Values{"csrf": {csrfOf(t, page)}})
	if p.Status != http.StatusOK {
		t.Fatalf("reconcile: %d %s", p.Status, p.Body)
	}
	for _, want := range []string{`id="report"`, "1 orphan found, 1 new.", "<td>crm</td><td>2</td>"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("report page lacks %q: %s", want, p.Body)
		}
	}
	if row := rowOf(t, p.Body, "ghost@acme.test"); !strings.Contains(row, "account of nobody in Lanyard") {
		t.Errorf("ghost row %s", row)
	}
	if strings.Contains(p.Body, member.HR.WorkEmail) {
		t.Error("a matched account is listed as an orphan")
	}
	got, err := e.srv.DB.ListAppOrphans(ctx, e.org.ID, false)
	if err != nil || len(got) != 1 || got[0].UserName != "ghost@acme.test" || got[0].App != "crm" {
		t.Fatalf("stored orphans = %+v, %v", got, err)
	}
	// The list alone (a reload) shows the ghost without a report.
	if p := admin.get("/apps/orphans"); !strings.Contains(p.Body, "ghost@acme.test") || strings.Contains(p.Body, `id="report"`) {
		t.Fatalf("after: %d %s", p.Status, p.Body)
	}
}

// rowOf returns the table row of a page that holds marker.
func rowOf(t *testing.T, body, marker string) string {
	t.Helper()
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no row holds %q: %s", marker, body)
	}
	start := strings.LastIndex(body[:i], "<tr>")
	end := strings.Index(body[i:], "</tr>")
	if start < 0 || end < 0 {
		t.Fatalf("%q is not in a table row", marker)
	}
	return body[start : i+end]
}
