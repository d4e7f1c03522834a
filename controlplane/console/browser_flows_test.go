package console_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/console/internal/browsertest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring/agentsim"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// screenshotDir is where `make screenshots` (LANYARD_SCREENSHOTS=1) writes the README's images.
var screenshotDir = filepath.Join("..", "..", "docs", "screenshots")

const flowPassword = "correct horse battery staple"

// flowEnv is the whole control plane as `lanyard serve` wires it (server.New: the API,
// the console and the real auth service on one address) plus its own agent API serving
// mTLS gRPC on loopback, so a lock sent from a page reaches a simulated agent that acks it.
type flowEnv struct {
	t      *testing.T
	srv    *server.Server
	base   string
	org    domain.Org
	agents *agentsim.Server
	mdm    *apple.Service
}

// enrollMac enrolls a simulated Mac in the server's Apple MDM for an employee, through an
// enrollment link as a person would (push certificate first: the profile names its topic).
func (e *flowEnv) enrollMac(serial, employeeID string) *macsim.Mac {
	e.t.Helper()
	ctx := context.Background()
	certPEM, keyPEM, err := fakeapns.NewPushCert("com.apple.mgmt.External."+domain.NewID(), time.Now().AddDate(1, 0, 0))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.mdm.UploadPushCert(ctx, e.org.ID, "token:test", certPEM, keyPEM); err != nil {
		e.t.Fatal(err)
	}
	link, err := e.mdm.CreateEnrollLink(ctx, e.org.ID, employeeID, "token:test", time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	m := macsim.New(serial)
	prof, err := m.FetchProfile(ctx, link.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.Enroll(ctx, prof); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func newFlowEnv(t *testing.T) *flowEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg := loopbackConfig(t, base)
	// Apple's endpoints stay on loopback, on a port nothing listens on: a push fails and
	// the command waits, which is all the PIN reveal needs, and nothing reaches Apple.
	cfg.APNsURL, cfg.DEPURL = "https://127.0.0.1:1", "https://127.0.0.1:1"
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	var aa *agentapi.Server
	var mdm *apple.Service
	for _, c := range s.Capabilities {
		switch c := c.(type) {
		case *agentapi.Server:
			aa = c
		case *apple.Service:
			mdm = c
		}
	}
	if aa == nil {
		t.Fatal("server.New built no agent API")
	}
	if err := aa.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = aa.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	hs := httptest.NewUnstartedServer(s.Handler)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	org := domain.Org{Name: "Northwind Robotics", Plan: domain.PlanPro, TimeZone: "America/Chicago",
		Settings: domain.OrgSettings{OffboardingHour: 17, OnboardingLeadDays: 5, WipeRequiresApproval: true}}
	if err := store.CreateOrg(context.Background(), s.DB.SQL, &org); err != nil {
		t.Fatal(err)
	}
	return &flowEnv{t: t, srv: s, base: base, org: org, agents: agentsim.Attach(s.DB, aa), mdm: mdm}
}

// admin is a person with a password and TOTP, set up through the real invitation flow
// (link, password, TOTP setup) so the browser signs in the way a returning admin does.
type admin struct {
	auth.User
	secret string
	mu     sync.Mutex
	last   int64 // the last TOTP step used: the service refuses a code twice
}

func (e *flowEnv) admin(email, name string, role domain.Role) *admin {
	e.t.Helper()
	ctx := domain.WithActor(context.Background(), domain.Actor{ID: "system:test"})
	u, err := e.srv.Auth.EnsureUser(ctx, e.org.ID, email, name, role)
	if err != nil {
		e.t.Fatal(err)
	}
	link, err := e.srv.Auth.NewSignInLink(ctx, e.org.ID, u.ID, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	m := auth.ClientMeta{IP: "127.0.0.1", UserAgent: "setup"}
	st, err := e.srv.Auth.SignInLink(ctx, strings.TrimPrefix(link, "/signin/link/"), m)
	if err != nil {
		e.t.Fatal(err)
	}
	if st, err = e.srv.Auth.SetPassword(ctx, st.Challenge, flowPassword, m); err != nil || st.Need != auth.NeedTOTPSetup {
		e.t.Fatalf("set password: %+v %v", st, err)
	}
	a := &admin{User: u, secret: st.TOTPSecret}
	if _, _, err := e.srv.Auth.VerifyTOTP(ctx, st.Challenge, a.code(e.t), m); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// code is a TOTP code the service accepts now: the next unused step within its ±1 step
// window, computed with the same library and parameters as controlplane/auth. Three uses
// in one 30-second step still fit (previous, current, next), which is all a flow needs.
func (a *admin) code(t *testing.T) string {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := time.Now().Unix() / 30
	step := max(a.last+1, cur-1)
	if step > cur+1 {
		t.Fatalf("%s used more than three TOTP codes within 30 seconds", a.Email)
	}
	a.last = step
	c, err := totp.GenerateCodeCustom(a.secret, time.Unix(step*30, 0), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongCode is a well-formed code that is none of the accepted ones.
func (a *admin) wrongCode(t *testing.T) string {
	t.Helper()
	cur := time.Now().Unix() / 30
	valid := map[string]bool{}
	for s := cur - 2; s <= cur+2; s++ {
		c, _ := totp.GenerateCodeCustom(a.secret, time.Unix(s*30, 0), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		valid[c] = true
	}
	for _, c := range []string{"000000", "111111", "222222"} {
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}

// signIn signs a in on the tab through /signin: email and password, then the TOTP page.
func (e *flowEnv) signIn(t *testing.T, tab *browsertest.Tab, a *admin) {
	t.Helper()
	tab.Visit(e.base + "/signin")
	passwordStep(tab, a)
	codeStep(tab, a.code(t))
	if p := path(t, tab); p != "/" {
		t.Fatalf("after sign-in at %s, want the home page:\n%s", p, tab.Body())
	}
}

// passwordStep submits the sign-in form on /signin.
func passwordStep(tab *browsertest.Tab, a *admin) {
	tab.Do(chromedp.SetValue(chromedp.ID("email"), a.Email), chromedp.SetValue(chromedp.ID("password"), flowPassword))
	tab.Submit("#signin")
	tab.Check()
}

// codeStep submits a code on the TOTP page.
func codeStep(tab *browsertest.Tab, code string) {
	tab.Do(chromedp.SetValue(chromedp.ID("code"), code))
	tab.Submit("#verify")
	tab.Check()
}

func path(t *testing.T, tab *browsertest.Tab) string {
	t.Helper()
	s, err := chromedp.Run(tab.Context(), chromedp.Evaluate[string]("location.pathname"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eval[T any](t *testing.T, tab *browsertest.Tab, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab.Context(), chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// seed is a small, realistic company: people in a few departments, their laptops (one
// with a connected agent), monitors and stock, so the pages and screenshots have content.
type seeded struct {
	leaver    domain.Employee // to be offboarded
	holder    domain.Employee // holds the laptop with the agent
	laptop    domain.Device   // the agent's laptop
	byEmail   map[string]domain.Employee
	employee  []domain.Employee
	macSerial string // employee[0]'s Mac, enrolled in Apple MDM by the PIN flow
}

func (e *flowEnv) seed() seeded {
	e.t.Helper()
	ctx := context.Background()
	people := []struct{ first, last, title, dept string }{
		{"Amara", "Okafor", "Staff Engineer", "Engineering"},
		{"Diego", "Hernández", "Account Executive", "Sales"},
		{"Priya", "Raman", "Product Designer", "Design"},
		{"Jonas", "Becker", "Support Lead", "Customer Success"},
		{"Mei", "Tanaka", "Data Engineer", "Engineering"},
		{"Lucas", "Martin", "Recruiter", "People"},
		{"Sofia", "Rossi", "Controller", "Finance"},
		{"Noah", "Williams", "SRE", "Engineering"},
	}
	start := domain.NewDate(2024, time.March, 4)
	sd := seeded{byEmail: map[string]domain.Employee{}}
	for _, p := range people {
		emp := domain.Employee{OrgID: e.org.ID, Source: "manual", HR: domain.HRFields{FirstName: p.first, LastName: p.last, Title: p.title,
			WorkEmail: strings.ToLower(p.first) + "@northwind.example", Status: domain.StatusActive, Departments: []string{p.dept},
			MemberType: domain.MemberFullTime, StartDate: &start}}
		if err := store.InsertEmployee(ctx, e.srv.DB.SQL, &emp); err != nil {
			e.t.Fatal(err)
		}
		sd.employee = append(sd.employee, emp)
		sd.byEmail[emp.HR.WorkEmail] = emp
	}
	devices := []domain.Device{
		{SerialNumber: "C02NW0001", Vendor: "apple", Model: "MacBook Pro 14 (M3)", Platform: domain.PlatformMacOS, EquipmentType: "laptop"},
		{SerialNumber: "PF4NW0002", Vendor: "lenovo", Model: "ThinkPad X1 Carbon Gen 11", Platform: domain.PlatformLinux, EquipmentType: "laptop"},
		{SerialNumber: "C02NW0003", Vendor: "apple", Model: "MacBook Air 13 (M2)", Platform: domain.PlatformMacOS, EquipmentType: "laptop"},
		{SerialNumber: "5CD4NW004", Vendor: "hp", Model: "EliteBook 840 G10", Platform: domain.PlatformWindows, EquipmentType: "laptop"},
		{SerialNumber: "C02NW0005", Vendor: "apple", Model: "MacBook Pro 16 (M3 Max)", Platform: domain.PlatformMacOS, EquipmentType: "laptop"},
		{SerialNumber: "CN0NW0006", Vendor: "dell", Model: "U2723QE", Platform: domain.PlatformOther, EquipmentType: "monitor"},
		{SerialNumber: "C02NW0007", Vendor: "apple", Model: "MacBook Air 15 (M3)", Platform: domain.PlatformMacOS, EquipmentType: "laptop"},
		{SerialNumber: "PF4NW0008", Vendor: "lenovo", Model: "ThinkPad T14 Gen 4", Platform: domain.PlatformWindows, EquipmentType: "laptop"},
	}
	for i := range devices {
		devices[i].OrgID = e.org.ID
		if err := e.srv.DB.CreateDevice(ctx, &devices[i]); err != nil {
			e.t.Fatal(err)
		}
		// The first five are in people's hands; the rest are stock.
		if i < 5 {
			if _, err := e.srv.DB.AssignDevice(ctx, e.org.ID, devices[i].ID, sd.employee[i].ID); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	sd.holder, sd.laptop, sd.macSerial = sd.employee[1], devices[1], devices[0].SerialNumber
	// The leaver holds no laptop with an agent, so the offboarding waits on nothing here.
	sd.leaver = sd.employee[6]
	return sd
}

// TestBrowserFlowsRealAuth drives the console as admins do, signed in through the real
// auth service (password + TOTP, re-authentication for a PIN), on one browser shared by
// the flows: home and people search, an offboarding's dry-run and scheduling, a lock
// acked by an agent over mTLS gRPC, the two-person wipe with a second admin in their own
// browser context, and a Mac lock PIN revealed after re-authentication and audited.
// Every page visited is checked with axe and for CSP violations.
func TestBrowserFlowsRealAuth(t *testing.T) {
	b := browsertest.Start(t)
	e := newFlowEnv(t)
	sd := e.seed()
	owner := e.admin("dana.owner@northwind.example", "Dana Whitfield", domain.RoleOwner)
	second := e.admin("sam.admin@northwind.example", "Sam Osei", domain.RoleAdmin)
	tab := b.NewTab(t)

	{
		t.Log("flow: sign in with password and TOTP")
		tab.Visit(e.base + "/")
		if p := path(t, tab); p != "/signin" {
			t.Fatalf("signed out, / is at %s, want /signin", p)
		}
		passwordStep(tab, owner)
		codeStep(tab, owner.wrongCode(t))
		if p := path(t, tab); p == "/" || !strings.Contains(tab.Text(`[role="alert"]`), "code") {
			t.Fatalf("a wrong code was not refused on the page (at %s):\n%s", p, tab.Body())
		}
		codeStep(tab, owner.code(t))
		if p := path(t, tab); p != "/" {
			t.Fatalf("after the right code at %s:\n%s", p, tab.Body())
		}
	}

	{
		t.Log("flow: home counts and people search")
		tab.Visit(e.base + "/")
		if got := tab.Text("#h-devices + *"); !strings.Contains(got, "8") {
			t.Fatalf("home device count %q, want 8", got)
		}
		tab.Visit(e.base + "/devices")
		tab.Screenshot(screenshotDir, "devices")
		tab.Visit(e.base + "/people")
		tab.Screenshot(screenshotDir, "people")
		tab.Do(chromedp.SendKeys(chromedp.ID("q"), "okafor"))
		tab.WaitTrue(`document.querySelectorAll("#people-table tbody tr").length === 1`)
		tab.Check()
		tab.Submit(`#people-table tbody a`)
		tab.Check()
		if got := tab.Text("main h1"); !strings.Contains(got, "Amara Okafor") {
			t.Fatalf("person page %q", got)
		}
		tab.Screenshot(screenshotDir, "person")
	}

	{
		t.Log("flow: offboarding dry-run then schedule")
		tab.Visit(e.base + "/people/" + sd.leaver.ID)
		tab.Submit("#offboard")
		tab.Check()
		if got := tab.Text("#dry-run"); got == "" {
			t.Fatal("the offboarding page shows no dry-run")
		}
		tab.Screenshot(screenshotDir, "offboarding")
		wfs, _, err := e.srv.DB.ListWorkflows(context.Background(), e.org.ID, store.WorkflowFilter{EmployeeID: sd.leaver.ID}, store.Page{})
		if err != nil || len(wfs) != 0 {
			t.Fatalf("the dry-run scheduled something: %v %v", wfs, err)
		}
		tab.Submit("#schedule") // its confirm() dialog is accepted by the tab
		tab.Check()
		if p := path(t, tab); p != "/people/"+sd.leaver.ID || !strings.Contains(tab.Text(".flash"), "Offboarding scheduled") {
			t.Fatalf("after scheduling at %s:\n%s", p, tab.Body())
		}
		if got := tab.Text("main"); !strings.Contains(got, "Offboarding") {
			t.Fatalf("the person's page lists no offboarding:\n%s", got)
		}
	}

	// The lock is sent before the agent connects, so the page can show it queued; it turns
	// done only once the agent has acked it with signed evidence.
	{
		t.Log("flow: lock reaches done after the agent's ack")
		tab.Visit(e.base + "/devices/" + sd.laptop.ID)
		tab.Do(chromedp.SetValue(chromedp.ID("lock-message"), "Please return this laptop to IT"))
		tab.Submit("#lock")
		tab.Check()
		cmds := commands(t, e, sd.laptop.ID, store.CommandLock)
		if len(cmds) != 1 {
			t.Fatalf("lock commands %+v", cmds)
		}
		state := `document.querySelector('tr[data-command="` + cmds[0].ID + `"] .cmd-state').textContent.trim()`
		if st := eval[string](t, tab, state); st == "Done" {
			t.Fatalf("the lock is done before any agent connected")
		}
		ag, err := e.agents.Enroll(context.Background(), e.org.ID, sd.laptop.SerialNumber, "Lenovo", "ThinkPad X1 Carbon Gen 11")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ag.Close)
		if err := ag.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
		reloadUntil(t, tab, e.base+"/devices/"+sd.laptop.ID, state+` === "Done"`)
		tab.Check()
		if ag.Received("COMMAND_TYPE_LOCK") != 1 {
			t.Fatalf("the agent got %d lock(s)", ag.Received("COMMAND_TYPE_LOCK"))
		}
		tab.Screenshot(screenshotDir, "device")
	}

	{
		t.Log("flow: wipe: typed serial, self-approval refused, second admin approves")
		dev := e.base + "/devices/" + sd.laptop.ID
		tab.Visit(dev)
		tab.Do(chromedp.SendKeys(chromedp.ID("wipe-confirm"), "PF4NW000X"))
		if !eval[bool](t, tab, `document.querySelector("#wipe").disabled`) {
			t.Fatal("a wrong serial leaves the wipe button enabled")
		}
		// The server refuses it too, whatever the page's script does.
		tab.Do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#wipe").disabled = false`))
		tab.Submit("#wipe")
		tab.Check()
		if n := len(commands(t, e, sd.laptop.ID, store.CommandWipe)); n != 0 || !strings.Contains(tab.Body(), "serial") {
			t.Fatalf("a wrong serial: %d wipe(s), page:\n%s", n, tab.Body())
		}
		tab.Visit(dev)
		tab.Do(chromedp.SendKeys(chromedp.ID("wipe-confirm"), sd.laptop.SerialNumber))
		tab.Submit("#wipe")
		tab.Check()
		if got := tab.Text(".flash"); !strings.Contains(got, "awaiting approval") {
			t.Fatalf("wipe flash %q", got)
		}
		wipes := commands(t, e, sd.laptop.ID, store.CommandWipe)
		if len(wipes) != 1 || wipes[0].State != "awaiting_approval" {
			t.Fatalf("wipes %+v", wipes)
		}
		// The same person under a second token (minted on /users, owned by them) is refused.
		tab.Visit(e.base + "/users")
		tab.Do(chromedp.SetValue(chromedp.ID("tok-name"), "owner script"), chromedp.SetValue(chromedp.ID("tok-role"), "admin"))
		tab.Submit("#mint-form button")
		tab.Check()
		secret := tab.Text("#token-secret")
		req, _ := http.NewRequest("POST", e.base+"/api/v1/device-actions/"+wipes[0].ID+"/approve", nil)
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
		// The second admin, in their own browser context, approves it.
		tab2 := b.NewTab(t)
		e.signIn(t, tab2, second)
		// Home now has an offboarding scheduled and a wipe waiting for this admin.
		tab2.Screenshot(screenshotDir, "home")
		tab2.Visit(dev)
		tab2.Screenshot(screenshotDir, "wipe-approval")
		tab2.Submit(`tr[data-command="` + wipes[0].ID + `"] button.approve`)
		tab2.Check()
		if got := tab2.Text(".flash"); strings.Contains(got, "awaiting approval") {
			t.Fatalf("after approval: %q", got)
		}
		w, err := e.srv.DB.GetDeviceCommand(context.Background(), e.org.ID, wipes[0].ID)
		if err != nil || w.State == "awaiting_approval" || w.ApprovedBy == "" {
			t.Fatalf("wipe after approval %+v %v", w, err)
		}
		// The command row names the people, not their ids.
		tab2.Visit(dev)
		if row := tab2.Text(`tr[data-command="` + wipes[0].ID + `"]`); !strings.Contains(row, "approved by Sam Osei") || strings.Contains(row, "user:") {
			t.Errorf("wipe row should name the approver: %q", row)
		}
	}
	{
		t.Log("flow: Mac lock PIN revealed after re-authentication, audited")
		mac := sd.employee[0]
		m := e.enrollMac(sd.macSerial, mac.ID)
		enr, err := e.srv.DB.MDMGetEnrollment(context.Background(), m.UDID)
		if err != nil {
			t.Fatal(err)
		}
		dev := e.base + "/devices/" + enr.DeviceID
		tab.Visit(dev)
		tab.Submit("#lock") // no agent on this Mac: the lock goes out as an MDM DeviceLock with a PIN
		tab.Check()
		cmds, _, err := e.srv.DB.MDMListCommands(context.Background(), e.org.ID, enr.DeviceID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var lock store.MDMCommand
		for _, c := range cmds {
			if c.RequestType == "DeviceLock" {
				lock = c
			}
		}
		if lock.SecretSealed == "" {
			t.Fatalf("no DeviceLock with an escrowed PIN after the lock: %+v", cmds)
		}
		want, err := e.mdm.RevealPIN(lock)
		if err != nil {
			t.Fatal(err)
		}
		// The sign-in was minutes ago as far as the session knows: the reveal must ask again.
		if _, err := e.srv.DB.SQL.ExecContext(context.Background(), `UPDATE user_sessions SET reauth_at = $1 WHERE user_id = $2`,
			time.Now().Add(-2*auth.ReauthWindow).UTC(), owner.ID); err != nil {
			t.Fatal(err)
		}
		tab.Visit(dev + "/secrets")
		tab.Submit(`form[action$="/pin"] button`)
		tab.Check()
		if p := path(t, tab); p != "/reauth" {
			t.Fatalf("the reveal did not ask for re-authentication (at %s):\n%s", p, tab.Body())
		}
		tab.Do(chromedp.SetValue(chromedp.ID("password"), flowPassword), chromedp.SetValue(chromedp.ID("code"), owner.code(t)))
		tab.Submit("#reauth")
		tab.Check()
		if p := path(t, tab); p != "/devices/"+enr.DeviceID+"/secrets" {
			t.Fatalf("after re-authentication at %s:\n%s", p, tab.Body())
		}
		if eval[int](t, tab, `document.querySelectorAll("#pin").length`) == 0 {
			// Back on the page: the reveal itself is one more click, now within the window.
			tab.Submit(`form[action$="/pin"] button`)
			tab.Check()
		}
		if got := tab.Text("#pin"); !strings.Contains(got, want) {
			t.Fatalf("revealed %q, want the escrowed PIN %s", got, want)
		}
		tab.Visit(e.base + "/audit?action=mdm.pin.revealed")
		if got := tab.Text("#audit"); !strings.Contains(got, owner.Email) {
			t.Fatalf("the audit page does not list the reveal by %s:\n%s", owner.Email, got)
		}
		aud, _, err := e.srv.DB.ListAudit(context.Background(), e.org.ID, store.AuditFilter{Action: "mdm.pin.revealed"}, store.Page{})
		if err != nil || len(aud) != 1 || aud[0].Actor != "user:"+owner.ID {
			t.Fatalf("audit of the reveal %+v %v, want one by user:%s", aud, err, owner.ID)
		}
	}
}

// commands lists a device's commands of a type.
func commands(t *testing.T, e *flowEnv, deviceID, typ string) []store.DeviceCommand {
	t.Helper()
	cs, _, err := e.srv.DB.ListDeviceCommands(context.Background(), e.org.ID, deviceID, store.Page{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.DeviceCommand
	for _, c := range cs {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// reloadUntil reloads a server-rendered page until cond holds, with a deadline.
func reloadUntil(t *testing.T, tab *browsertest.Tab, url, cond string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		tab.Do(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main")))
		if ok, err := chromedp.Run(tab.Context(), chromedp.Evaluate[bool](cond)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s still false after 20s:\n%s", url, cond, tab.Body())
		}
		<-tick.C
	}
}
