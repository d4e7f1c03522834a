package hrsync_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// A browser coming back from the consent page lands on the console (with the initial
// import's run id to watch), not on JSON; a replayed or failed callback lands there with
// the API's message. API clients (no text/html in Accept) still get JSON.
func TestCallbackSendsABrowserBackToTheConsole(t *testing.T) {
	t.Parallel()
	db := storetest.NewSQLite(t)
	h := newHarness(t, db, hopts{members: gen(5, true), cfg: func(c *hrsync.Config) { c.ConsoleReturn = "/justworks/connected" }})
	var cr hrsync.ConnectResponse
	if st := h.call(domain.RoleAdmin, "POST", "/api/v1/hr/connection", map[string]any{}, &cr); st != http.StatusCreated {
		t.Fatalf("connect status %d", st)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(cr.AuthorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	browser := func() *http.Response {
		req, _ := http.NewRequest("GET", callback, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp = browser()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/justworks/connected" || loc.Query().Get("run") == "" {
		t.Fatalf("callback answered %d %q, want 303 to /justworks/connected?run=…", resp.StatusCode, resp.Header.Get("Location"))
	}
	run, err := h.eng.WaitRun(h.ctx, h.org.ID, loc.Query().Get("run"), 30*time.Second)
	if err != nil || run.Status != store.HRRunSucceeded {
		t.Fatalf("initial import %+v: %v", run, err)
	}
	resp = browser() // the same consent again: the state was used
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") == "" || loc.Query().Get("run") != "" {
		t.Fatalf("replayed callback answered %d %q, want 303 with the error", resp.StatusCode, resp.Header.Get("Location"))
	}
	api, err := http.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	api.Body.Close()
	if api.StatusCode != http.StatusBadRequest || api.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("API client: %d %s, want the 400 problem", api.StatusCode, api.Header.Get("Content-Type"))
	}
}
