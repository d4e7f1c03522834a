package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/console/internal/browsertest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring/agentsim"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// flowsPassword is the demo admins' password in these tests.
const flowsPassword = "correct horse battery staple"

// screenshotDir is docs/screenshots, from this package's directory.
var screenshotDir = filepath.Join("..", "..", "docs", "screenshots")

// flowsEnv is the whole control plane as `make run` wires it (server.New with --demo:
// the real auth service, the demo fleet, its people from the fake Justworks) on one
// loopback address, plus the agent API with a simulated agent for the lock and the wipe.
type flowsEnv struct {
	t     *testing.T
	srv   *server.Server
	org   domain.Org
	base  string
	agent *agentsim.Server
}

func newFlowsEnv(t *testing.T) *flowsEnv {
	t.Helper()
	cfg, ln := loopbackConfig(t)
	cfg.Demo = true
	ctx := context.Background()
	s, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	org, _, err := s.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, ln, s.Handler)
	ag, err := agentsim.Start(ctx, s.DB, s.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ag.Close)
	return &flowsEnv{t: t, srv: s, org: org, base: cfg.PublicURL, agent: ag}
}

// admin is a person of the demo org with a password and TOTP, signing in like anyone.
type admin struct {
	user   store.User
	secret string
	// step is the last TOTP step used: the auth service refuses a step twice.
	step int64
}

// onboard takes a demo admin through their one-time link (password, TOTP setup) with
// the auth service, as the first sign-in in a browser would.
func (e *flowsEnv) onboard(email string) *admin {
	e.t.Helper()
	ctx := context.Background()
	us, err := e.srv.DB.FindUsersByEmail(ctx, e.org.ID, email)
	if err != nil || len(us) != 1 {
		e.t.Fatalf("demo user %s: %v %v", email, us, err)
	}
	link, err := e.srv.Auth.NewSignInLink(ctx, e.org.ID, us[0].ID, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	meta := auth.ClientMeta{IP: "127.0.0.1", UserAgent: "onboarding"}
	st, err := e.srv.Auth.SignInLink(ctx, strings.TrimPrefix(link, "/signin/link/"), meta)
	if err != nil {
		e.t.Fatal(err)
	}
	if st, err = e.srv.Auth.SetPassword(ctx, st.Challenge, flowsPassword, meta); err != nil || st.Need != auth.NeedTOTPSetup {
		e.t.Fatalf("set password: %+v %v", st, err)
	}
	a := &admin{user: us[0], secret: st.TOTPSecret}
	// Set up with the previous step's code, so the browser sign-in (this step) and a
	// re-authentication (the next step) each have a code of their own within the skew.
	a.step = time.Now().Unix()/30 - 1
	if _, _, err := e.srv.Auth.VerifyTOTP(ctx, st.Challenge, a.codeAt(a.step), meta); err != nil {
		e.t.Fatalf("totp setup: %v", err)
	}
	return a
}

func (a *admin) codeAt(step int64) string {
	c, err := totp.GenerateCodeCustom(a.secret, time.Unix(step*30, 0), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		panic(err)
	}
	return c
}

// nextCode is a code for a step not used yet and accepted now (the current or next step).
func (a *admin) nextCode(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for a.step+1 > time.Now().Unix()/30+1 {
		// Every accepted step is used: wait for the clock to reach the next one.
		if time.Now().After(deadline) {
			t.Fatal("no TOTP step left")
		}
		<-time.After(time.Until(time.Unix((a.step)*30, 0)))
	}
	a.step = max(a.step+1, time.Now().Unix()/30)
	return a.codeAt(a.step)
}

// wrongCode is six digits no step around now accepts.
func (a *admin) wrongCode() string {
	cur := time.Now().Unix() / 30
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if c != a.codeAt(cur-1) && c != a.codeAt(cur) && c != a.codeAt(cur+1) && c != a.codeAt(cur+2) {
			return c
		}
	}
	panic("unreachable")
}

// signIn signs a in on tab through the sign-in page: password, then a wrong code (refused
// on the page), then the right one; the tab ends on the home page.
func (e *flowsEnv) signIn(t *testing.T, tab *browsertest.Tab, a *admin) {
	t.Helper()
	tab.Visit(e.base + "/signin")
	tab.Do(chromedp.SendKeys(chromedp.ID("email"), a.user.Email), chromedp.SendKeys(chromedp.ID("password"), flowsPassword))
	tab.Submit("#signin")
	tab.Check()
	if !strings.HasPrefix(pathOf(t, tab), "/signin/totp") {
		t.Fatalf("after the password: %s\n%s", tab.Location(), tab.Body())
	}
	tab.Do(chromedp.SendKeys(chromedp.ID("code"), a.wrongCode()))
	tab.Submit("#verify")
	tab.Check()
	if got := tab.Text(`[role=alert]`); !strings.Contains(strings.ToLower(got), "code") {
		t.Fatalf("a wrong code: alert %q", got)
	}
	if pathOf(t, tab) != "/signin/totp" {
		t.Fatalf("a wrong code signed in: %s", tab.Location())
	}
	tab.Do(chromedp.SendKeys(chromedp.ID("code"), a.nextCode(t)))
	tab.Submit("#verify")
	tab.Check()
	if pathOf(t, tab) != "/" {
		t.Fatalf("after the code: %s\n%s", tab.Location(), tab.Body())
	}
}

func pathOf(t *testing.T, tab *browsertest.Tab) string {
	t.Helper()
	u, err := url.Parse(tab.Location())
	if err != nil {
		t.Fatal(err)
	}
	if u.RawQuery != "" {
		return u.Path + "?" + u.RawQuery
	}
	return u.Path
}

func (e *flowsEnv) device(serial string) domain.Device {
	e.t.Helper()
	ds, err := e.srv.DB.FindDevicesBySerial(context.Background(), e.org.ID, serial)
	if err != nil || len(ds) != 1 {
		e.t.Fatalf("device %s: %v %v", serial, ds, err)
	}
	return ds[0]
}

// eval is a JavaScript expression's string value on tab.
func eval(t *testing.T, tab *browsertest.Tab, expr string) string {
	t.Helper()
	s, err := chromedp.Run(tab.Context(), chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return s
}

// waitCommandState reloads a device page until the command's row shows state (a page
// is rendered once: only a reload shows what changed), failing after a deadline.
func (e *flowsEnv) waitCommandState(t *testing.T, tab *browsertest.Tab, deviceID, commandID, state string) {
	t.Helper()
	sel := `tr[data-command="` + commandID + `"] .cmd-state`
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tab.Do(chromedp.Navigate(e.base+"/devices/"+deviceID), chromedp.WaitReady(chromedp.CSS("main")))
		got := tab.Text(sel)
		if strings.EqualFold(strings.TrimSpace(got), state) {
			tab.Check()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s is %q, want %q", commandID, got, state)
		}
		<-tick.C
	}
}

// The console's main flows in a real browser, signed in for real (password + TOTP
// through the auth service), on the demo org: home, people search, a person's
// offboarding dry-run and schedule, a lock acked by a connected agent, a wipe with the
// typed serial approved by a second admin, and a PIN reveal behind re-authentication.
// Every page visited passes axe and the CSP check.
func TestBrowserFlows(t *testing.T) {
	b := browsertest.Start(t)
	e := newFlowsEnv(t)
	ctx := context.Background()
	owner := e.onboard(server.DemoOwnerEmail)
	second := e.onboard(server.DemoSecondAdminEmail)
	tab := b.NewTab(t)

	step(t, "sign in with password and TOTP")
	{
		e.signIn(t, tab, owner)
	}

	step(t, "home shows counts")
	{
		tab.Visit(e.base + "/")
		if got := tab.Text(`section[aria-labelledby="h-devices"] .stat`); !strings.Contains(got, "devices") || strings.HasPrefix(got, "0") {
			t.Fatalf("devices card %q", got)
		}
		if got := tab.Text(`section[aria-labelledby="h-approvals"]`); !strings.Contains(got, "Wipe") {
			t.Fatalf("approvals card %q: the demo's wipe waits for a second admin", got)
		}
		tab.Screenshot(screenshotDir, "home")
		tab.Visit(e.base + "/devices")
		tab.Screenshot(screenshotDir, "devices")
	}

	// A demo person with no device and no workflow (a new hire waiting for a laptop).
	var person domain.Employee
	{
		var list api.List[domain.Employee]
		if err := e.srv.API.Call(ctx, mustPrincipal(t, e, owner), "GET", "/api/v1/employees?status=active&sort=email&order=desc&limit=1", nil, &list); err != nil || len(list.Items) != 1 {
			t.Fatalf("demo people: %v %v", list, err)
		}
		person = list.Items[0]
	}
	name := person.HR.FirstName + " " + person.HR.LastName

	step(t, "find a person")
	{
		tab.Visit(e.base + "/people")
		tab.Screenshot(screenshotDir, "people")
		tab.Do(chromedp.SendKeys(chromedp.ID("q"), person.HR.LastName))
		// htmx swaps the results in place as the search is typed.
		tab.WaitTrue(`[...document.querySelectorAll("#people-table tbody tr")].length > 0 &&
			[...document.querySelectorAll("#people-table tbody tr")].every(r => r.innerText.includes(` + jsString(person.HR.LastName) + `))`)
		tab.Check()
		tab.Submit(`#people-table a[href="/people/` + person.ID + `"]`)
		tab.Check()
		if got := tab.Text("main h1"); !strings.Contains(got, name) {
			t.Fatalf("person page %q, want %s", got, name)
		}
		tab.Screenshot(screenshotDir, "person")
	}

	step(t, "offboarding dry-run then schedule")
	{
		tab.Submit("#offboard")
		tab.Check()
		if got := tab.Text("main"); !strings.Contains(got, "This is a dry run") {
			t.Fatalf("offboard page %q", got)
		}
		if n := eval(t, tab, `String(document.querySelectorAll("#dry-run > li").length)`); n == "0" {
			t.Fatal("the dry-run lists no step")
		}
		tab.Screenshot(screenshotDir, "offboarding")
		tab.Submit("#schedule") // the tab accepts the confirm dialog
		tab.Check()
		if got := tab.Text(".flash"); !strings.Contains(got, "Offboarding scheduled") {
			t.Fatalf("flash %q", got)
		}
		if got := tab.Text("main"); !strings.Contains(got, "Offboarding") {
			t.Fatalf("the person's workflows do not list the offboarding:\n%s", got)
		}
		tab.Visit(e.base + "/workflows")
		// The person's row of the queue (the demo's own offboarding runs too).
		if ok := eval(t, tab, `(() => { const a = document.querySelector(`+jsString(`#workflows a[href="/people/`+person.ID+`"]`)+`)
			?.closest("tr").querySelector("a[href^='/workflows/']"); a?.setAttribute("data-pick", ""); return String(!!a) })()`); ok == "false" {
			t.Fatalf("the queue does not list %s:\n%s", name, tab.Body())
		}
		tab.Submit(`#workflows a[data-pick]`)
		tab.Check()
		if got := tab.Text("main"); !strings.Contains(got, name) {
			t.Fatalf("workflow page does not name %s:\n%s", name, got)
		}
	}

	// PF3DEMO02 is a Linux laptop on the shelf; an agent enrolls for it now.
	dev := e.device("PF3DEMO02")
	agent, err := e.agent.Enroll(ctx, e.org.ID, dev.SerialNumber, dev.Vendor, dev.Model)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Close)

	step(t, "lock reaches done after the agent's ack")
	{
		tab.Visit(e.base + "/devices/" + dev.ID)
		tab.Do(chromedp.SendKeys(chromedp.ID("lock-message"), "Return this laptop to IT"))
		tab.Submit("#lock")
		tab.Check()
		if got := tab.Text(".flash"); !strings.Contains(got, "Lock command") {
			t.Fatalf("flash %q", got)
		}
		id := eval(t, tab, `document.querySelector("#commands tbody tr").dataset.command`)
		if got := tab.Text(`tr[data-command="` + id + `"] .cmd-state`); strings.EqualFold(got, "done") {
			t.Fatal("done before any agent was connected")
		}
		if err := agent.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitCommandState(t, tab, dev.ID, id, "Done")
		if agent.Received("COMMAND_TYPE_LOCK") != 1 {
			t.Fatalf("the agent got %d lock(s)", agent.Received("COMMAND_TYPE_LOCK"))
		}
		if got := tab.Text(`tr[data-command="` + id + `"]`); !strings.Contains(got, "verified") {
			t.Fatalf("done without verified evidence: %q", got)
		}
		tab.Screenshot(screenshotDir, "device")
	}

	step(t, "wipe: typed serial, same person refused, second admin approves")
	{
		tab.Visit(e.base + "/devices/" + dev.ID)
		tab.Do(chromedp.SendKeys(chromedp.ID("wipe-confirm"), "PF3DEMO0X"))
		if d := eval(t, tab, `String(document.querySelector("#wipe").disabled)`); d != "true" {
			t.Fatal("the wipe button is enabled with a wrong serial")
		}
		// The server refuses it too (a browser without the script, a forged form).
		tab.Do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#wipe").disabled = false`))
		tab.Submit("#wipe")
		tab.Check()
		if got := tab.Text("main"); !strings.Contains(got, "the device's serial number") {
			t.Fatalf("a wrong serial: %s", got)
		}
		if cmds := e.commands(t, dev.ID, store.CommandWipe); len(cmds) != 0 {
			t.Fatalf("a wrong serial created a wipe: %+v", cmds)
		}
		tab.Visit(e.base + "/devices/" + dev.ID)
		tab.Do(chromedp.SendKeys(chromedp.ID("wipe-confirm"), dev.SerialNumber))
		tab.Submit("#wipe")
		tab.Check()
		if got := tab.Text(".flash"); !strings.Contains(got, "awaiting approval") {
			t.Fatalf("flash %q", got)
		}
		cmds := e.commands(t, dev.ID, store.CommandWipe)
		if len(cmds) != 1 || cmds[0].State != store.CommandAwaitingApproval {
			t.Fatalf("wipe commands %+v", cmds)
		}
		wipe := cmds[0]

		// The same person with a second token of their own is still the same person.
		_, secret, err := e.srv.DB.CreateTokenFor(ctx, store.NewToken{OrgID: e.org.ID, Name: "owner's second", Role: domain.RoleAdmin, UserID: owner.user.ID})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", e.base+"/api/v1/device-actions/"+wipe.ID+"/approve", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || !strings.Contains(string(body), "different person") {
			t.Fatalf("self-approval with a second token: %d %s", resp.StatusCode, body)
		}

		// The second admin, in a browser of their own.
		tab2 := b.NewTab(t)
		e.signIn(t, tab2, second)
		tab2.Visit(e.base + "/devices/" + dev.ID)
		tab2.Screenshot(screenshotDir, "wipe-approval")
		tab2.Submit(`tr[data-command="` + wipe.ID + `"] button.approve`)
		tab2.Check()
		if got := tab2.Text(".flash"); !strings.Contains(got, wipe.ID) {
			t.Fatalf("flash after approval %q", got)
		}
		if got := tab2.Text(`tr[data-command="` + wipe.ID + `"]`); !strings.Contains(got, "approved by") {
			t.Fatalf("the wipe row does not say who approved: %q", got)
		}
		// Approved, the wipe goes to the agent, which acks it.
		e.waitCommandState(t, tab2, dev.ID, wipe.ID, "Done")
	}

	step(t, "PIN reveal asks for re-authentication and is audited")
	{
		mac := e.mdmLockedMac(t, owner)
		// The owner's sign-in proof is older than the reveal window now.
		if _, err := e.srv.DB.SQL.ExecContext(ctx, `UPDATE user_sessions SET reauth_at = $1 WHERE user_id = $2`,
			time.Now().Add(-10*time.Minute).UTC(), owner.user.ID); err != nil {
			t.Fatal(err)
		}
		tab.Visit(e.base + "/devices/" + mac.ID + "/secrets")
		tab.Submit(`form[action$="/pin"] button`)
		tab.Check()
		if p := pathOf(t, tab); !strings.HasPrefix(p, "/reauth") {
			t.Fatalf("a reveal with an old proof went to %s\n%s", p, tab.Body())
		}
		tab.Do(chromedp.SendKeys(chromedp.ID("password"), flowsPassword), chromedp.SendKeys(chromedp.ID("code"), owner.nextCode(t)))
		tab.Submit("#reauth")
		tab.Check()
		if p := pathOf(t, tab); p != "/devices/"+mac.ID+"/secrets" {
			t.Fatalf("after re-authentication: %s", p)
		}
		tab.Submit(`form[action$="/pin"] button`)
		tab.Check()
		if got := tab.Text("#pin"); !strings.Contains(got, "PIN for command") || len(strings.TrimSpace(tab.Text("#pin .secret"))) != 6 {
			t.Fatalf("pin %q", got)
		}
		tab.Visit(e.base + "/audit?action=mdm.pin.revealed")
		if got := tab.Text("#audit tbody"); !strings.Contains(got, owner.user.ID) && !strings.Contains(got, owner.user.Email) {
			t.Fatalf("the audit page does not list the reveal by the owner: %q", got)
		}
		var entries api.List[domain.AuditEntry]
		if err := e.srv.API.Call(ctx, mustPrincipal(t, e, owner), "GET", "/api/v1/audit?action=mdm.pin.revealed", nil, &entries); err != nil {
			t.Fatal(err)
		}
		if len(entries.Items) != 1 {
			t.Fatalf("audit API: %+v", entries.Items)
		}
		raw, _ := json.Marshal(entries.Items[0])
		if !strings.Contains(string(raw), owner.user.ID) {
			t.Fatalf("the audit entry does not name the owner: %s", raw)
		}
	}
	t.Logf("pages checked with axe and CSP: %d", len(tab.Pages))
}

// mustPrincipal is a as a script calling the API would be: for reads and the setup of
// what the browser then looks at.
func mustPrincipal(t *testing.T, e *flowsEnv, a *admin) api.Principal {
	t.Helper()
	return api.Principal{OrgID: e.org.ID, Org: e.org, Role: a.user.Role, UserID: a.user.ID, UserEmail: a.user.Email, TokenID: "test", Via: "token"}
}

// commands lists a device's commands of one type.
func (e *flowsEnv) commands(t *testing.T, deviceID, typ string) []store.DeviceCommand {
	t.Helper()
	list, _, err := e.srv.DB.ListDeviceCommands(context.Background(), e.org.ID, deviceID, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.DeviceCommand
	for _, c := range list {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// mdmLockedMac enrolls a demo Mac in MDM (the records a Mac's Authenticate and
// TokenUpdate leave) and locks it through the API: the DeviceLock carries a PIN that
// Lanyard escrows.
func (e *flowsEnv) mdmLockedMac(t *testing.T, a *admin) domain.Device {
	t.Helper()
	ctx := context.Background()
	mac := e.device("C02DEMO0001")
	udid := "UDID-" + mac.SerialNumber
	if _, err := e.srv.DB.MDMAuthenticate(ctx, store.MDMEnrollment{UDID: udid, OrgID: e.org.ID, SerialNumber: mac.SerialNumber,
		Model: mac.Model, OSVersion: "15.1", Topic: "com.apple.mgmt.External.demo"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.srv.DB.MDMSetEnrolled(ctx, udid); err != nil {
		t.Fatal(err)
	}
	var cmd store.DeviceCommand
	if err := e.srv.API.Call(ctx, mustPrincipal(t, e, a), "POST", "/api/v1/devices/"+mac.ID+"/actions",
		map[string]any{"type": store.CommandLock}, &cmd); err != nil {
		t.Fatalf("lock the Mac over MDM: %v", err)
	}
	return mac
}

// step names the part of a flow that follows in the log (the flows share one signed-in
// tab, so they are steps of one test rather than subtests).
func step(t *testing.T, name string) { t.Helper(); t.Log("step: " + name) }
