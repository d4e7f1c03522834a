package console_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/console/internal/browsertest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// Every page and its empty and error states pass axe in a real browser, and the strict
// CSP leaves the page working (htmx and app.js load; no violation reported).
func TestPagesPassAxe(t *testing.T) {
	b := browsertest.Start(t)
	e := newEnv(t)
	ctx := context.Background()
	emp := storetest.Employee(t, e.srv.DB, e.org.ID, "Axe")
	d := storetest.Device(t, e.srv.DB, e.org.ID, "AXE-1")
	if _, err := e.srv.DB.AssignDevice(ctx, e.org.ID, d.ID, emp.ID); err != nil {
		t.Fatal(err)
	}
	tab := b.NewTab(t)
	tab.Visit(e.http.URL + "/signin")
	sess := e.auth.login(e.org.ID, domain.RoleAdmin)
	tab.Do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: auth.CookieName, Value: sess.ID, URL: e.http.URL})
		return err
	}))
	for _, path := range []string{"/", "/devices", "/devices?q=nothing-matches", "/devices/" + d.ID, "/devices/" + d.ID + "/secrets",
		"/people", "/people/" + emp.ID, "/people/" + emp.ID + "/offboard", "/reauth", "/devices/" + domain.NewID(), "/apps/orphans"} {
		tab.Visit(e.http.URL + path)
	}
	// App orphans with rows (a person linked, one resolved) and with a reconcile report.
	if _, err := e.srv.DB.SaveAppOrphans(ctx, e.org.ID, "github", []store.AppOrphan{
		{AccountID: "gh-1", UserName: "ghost@example.com", Reason: "no_person", Action: "reported"},
		{AccountID: "gh-2", UserName: emp.HR.WorkEmail, EmployeeID: emp.ID, Reason: "terminated", Action: "resuspend_failed", Detail: "503 from the app"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.DB.SaveAppOrphans(ctx, e.org.ID, "slack", []store.AppOrphan{{AccountID: "sl-1", Reason: "no_person", Action: "reported"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.DB.SaveAppOrphans(ctx, e.org.ID, "slack", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	tab.Visit(e.http.URL + "/apps/orphans?all=true")
	tab.Submit("#reconcile-form button")
	tab.WaitTrue(`document.querySelector("#report") !== null`)
	tab.Check()
}
