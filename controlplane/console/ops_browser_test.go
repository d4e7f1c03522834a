package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/console"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

const chromiumPath = "/usr/bin/chromium"

// opsEnv is the whole control plane on one loopback address, as a browser sees it: the
// API under /api/ (so the Justworks OAuth callback lands on it) and the console at /.
// Its public URL is that address, and its Justworks is a fake on another port.
type opsEnv struct {
	*env
	base string
	fake *fakejustworks.Server
}

func newOpsEnv(t *testing.T, members int) *opsEnv {
	t.Helper()
	fake, err := fakejustworks.Start(fakejustworks.Options{CompanyName: "Acme Browser Co"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	fake.Load(fakejustworks.Generate(members, 7, fakejustworks.GenOptions{AllActiveUS: true, Now: time.Now().UTC().Truncate(24 * time.Hour)}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg := loopbackConfig(t, base)
	cfg.JustworksClientID, cfg.JustworksSecret = fake.ClientID(), fake.ClientSecret()
	cfg.JustworksAuthURL, cfg.JustworksTokenURL, cfg.JustworksAPIURL = fake.AuthorizeURL(), fake.URL()+"/oauth/token", fake.URL()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	fa := newSessionAuth(s.DB)
	con, err := console.New(console.Options{Auth: fa, API: s.API, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", s.Handler)
	mux.Handle("/", con)
	hs := httptest.NewUnstartedServer(mux)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return &opsEnv{env: &env{t: t, srv: s, auth: fa, console: con, http: hs, org: storetest.Org(t, s.DB, domain.PlanPro)}, base: base, fake: fake}
}

// browser is one headless Chromium tab signed in as sess.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	axe  string
}

func newBrowser(t *testing.T, base string, sess auth.Session) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skip("browser tests need Debian's chromium at " + chromiumPath + " (apt-get install chromium; .ci/run installs it)")
	}
	axe, err := os.ReadFile("internal/browsertest/axe-4.14.1.min.js")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	// The browser lives as long as ctx: start it on ctx itself, not on a timeout child.
	b := &browser{t: t, ctx: ctx, base: base, axe: string(axe)}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	secure, httpOnly := false, true
	b.do(chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{Name: auth.CookieName, Value: sess.ID, URL: base + "/",
			Path: "/", Secure: &secure, HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax})
		return chromedp.Void{}, err
	}))
	return b
}

// do runs steps with a deadline, failing the test on error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("eval %s: %v", expr, err)
	}
	return s
}

// open loads a console page and checks it with axe.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.checkA11y()
}

// waitFor waits until the page satisfies a JavaScript condition (htmx swaps, redirects).
func (b *browser) waitFor(cond string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		// A navigation in between destroys the page's JavaScript context: ask again.
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		select {
		case <-b.ctx.Done():
			b.t.Fatal(b.ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body.innerText"))
	b.t.Fatalf("waiting for %s (last error %v)\npage: %s", cond, lastErr, html)
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkA11y runs axe-core on the current page: no serious or critical violation.
func (b *browser) checkA11y() {
	b.t.Helper()
	if vs := b.axeViolations(); len(vs) > 0 {
		loc := b.eval("location.href")
		b.t.Errorf("axe on %s: %d serious/critical violation(s): %+v", loc, len(vs), vs)
	}
}

func (b *browser) axeViolations() []axeViolation {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("typeof axe !== 'undefined'"))
	if err == nil && !loaded {
		_, err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](b.axe))
	}
	if err != nil {
		b.t.Fatalf("load axe: %v", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
		 .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html)}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe: %v", err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		b.t.Fatalf("axe result %q: %v", raw, err)
	}
	return vs
}

// screenshot writes docs/screenshots/<name>.png when LANYARD_SCREENSHOTS=1.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if os.Getenv("LANYARD_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) click(sel string) { b.t.Helper(); b.do(chromedp.Click(chromedp.CSS(sel))) }

func (b *browser) set(sel, value string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// Connect Justworks from the entry page against the fake, approve access there, come
// back to the console and watch the first import's progress bar (htmx polling the sync
// run) go from running to done, without a reload.
func TestBrowserJustworksConnectAndImport(t *testing.T) {
	e := newOpsEnv(t, 130)
	owner := e.auth.login(e.org.ID, domain.RoleOwner)
	b := newBrowser(t, e.base, owner)

	// Hold the import after its first page so the running state can be seen.
	release := make(chan struct{})
	e.fake.OnMembersPage(func(page int) {
		if page == 2 {
			<-release
		}
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	b.open(console.JustworksStartPath)
	b.screenshot("justworks-start")
	if got := b.text("#step-account"); !strings.Contains(got, owner.Email) {
		t.Fatalf("entry page step 1: %q", got)
	}
	b.click("#connect-justworks")
	b.do(chromedp.WaitVisible(chromedp.ID("continue-justworks")))
	b.checkA11y()
	b.click("#continue-justworks") // the fake approves at once and redirects to our callback
	b.waitFor(`location.pathname.startsWith("/justworks/runs/") && document.querySelector("#run-status") !== null`)
	b.checkA11y()
	if st := b.eval(`document.querySelector("#run-status").dataset.status`); st != store.HRRunRunning {
		t.Fatalf("import status %q, want running while the fake holds page 2", st)
	}
	if v := b.eval(`String(document.querySelector("#import-bar").hasAttribute("value"))`); v != "false" {
		t.Fatalf("a running import's bar is not indeterminate")
	}
	if flash := b.text(".flash"); !strings.Contains(flash, "Connected to Justworks") {
		t.Fatalf("flash %q", flash)
	}
	b.screenshot("justworks-import")
	path := b.eval("location.pathname")
	close(release)
	// htmx polls the run every second; the same page turns to done.
	b.waitFor(`document.querySelector("#run-status").dataset.status === "succeeded"`)
	if p := b.eval("location.pathname"); p != path {
		t.Fatalf("the page changed to %s: progress must update in place", p)
	}
	if v := b.eval(`document.querySelector("#import-bar").getAttribute("value")`); v != "100" {
		t.Fatalf("finished bar value %q", v)
	}
	if got := b.text("#run-status"); !strings.Contains(got, "130 new") {
		t.Fatalf("run summary %q, want 130 new people", got)
	}
	b.checkA11y()
	n, err := store.CountEmployeesByStatus(t.Context(), e.srv.DB.SQL, e.org.ID, "justworks", domain.StatusActive)
	if err != nil || n != 130 {
		t.Fatalf("imported %d active employees (%v), want 130", n, err)
	}

	b.open("/justworks")
	b.screenshot("justworks")
	if got := b.text("#connection"); !strings.Contains(got, "Acme Browser Co") {
		t.Fatalf("status section %q", got)
	}
	if got := b.text("#runs"); !strings.Contains(got, "Succeeded") {
		t.Fatalf("runs table %q", got)
	}
	b.open("/justworks/start")
	if got := b.text("#step-connect"); !strings.Contains(got, "Connected") {
		t.Fatalf("entry page after connecting: %q", got)
	}
}

// A CSV with one bad row: the preview shows the row's error and writes nothing; the
// fixed file previews clean, still writes nothing, and only the confirm imports.
func TestBrowserCSVImportPreview(t *testing.T) {
	e := newOpsEnv(t, 0)
	it := e.auth.login(e.org.ID, domain.RoleIT)
	b := newBrowser(t, e.base, it)
	devices := func() int {
		list, _, err := e.srv.DB.ListDevices(t.Context(), e.org.ID, store.DeviceFilter{}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	bad := "serial_number,vendor,model,platform,equipment_type\nCSV001,apple,MacBook Air,macos,laptop\nCSV002,dell,XPS 13,beos,laptop\nCSV003,lenovo,X1,linux,laptop\n"
	b.open("/devices/import")
	b.set("#csv-text", bad)
	b.click("#preview-import")
	b.do(chromedp.WaitVisible(chromedp.ID("preview-errors")))
	b.checkA11y()
	b.screenshot("csv-import-preview")
	got := b.text("#preview-errors")
	if !strings.Contains(got, "Row 3, platform") || !strings.Contains(got, "beos") {
		t.Fatalf("preview errors %q, want row 3's platform", got)
	}
	if rows := b.eval(`String(document.querySelectorAll("#preview-rows tbody tr").length)`); rows != "3" {
		t.Fatalf("preview shows %s rows, want 3", rows)
	}
	if n := b.eval(`String(document.querySelectorAll("#confirm-import").length)`); n != "0" {
		t.Fatalf("a preview with errors offers the import")
	}
	if n := devices(); n != 0 {
		t.Fatalf("the preview wrote %d devices", n)
	}
	b.set("#csv-text", strings.Replace(bad, "beos", "windows", 1))
	b.click("#preview-import")
	b.do(chromedp.WaitVisible(chromedp.ID("confirm-import")))
	b.checkA11y()
	if got := b.text("#preview-summary"); !strings.Contains(got, "All 3 row(s) are valid") {
		t.Fatalf("clean preview %q", got)
	}
	if n := devices(); n != 0 {
		t.Fatalf("a clean preview wrote %d devices before the confirm", n)
	}
	b.click("#confirm-import")
	b.waitFor(`location.pathname === "/devices"`)
	if n := devices(); n != 3 {
		t.Fatalf("after the confirm: %d devices, want 3", n)
	}
	if flash := b.text(".flash"); !strings.Contains(flash, "Imported 3 device(s)") {
		t.Fatalf("flash %q", flash)
	}
	// The export is the API's CSV, downloaded through the console.
	cl := e.client(domain.RoleViewer)
	p := cl.get("/devices/export")
	if p.Status != 200 || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/csv") || !strings.Contains(p.Body, "CSV002") ||
		!strings.Contains(p.Header.Get("Content-Disposition"), "devices.csv") {
		t.Fatalf("export: %d %v %q", p.Status, p.Header, p.Body)
	}
}

// One flow per page: it renders (axe clean) and one of its actions works from the browser.
func TestBrowserOpsPages(t *testing.T) {
	e := newOpsEnv(t, 0)
	owner := e.auth.login(e.org.ID, domain.RoleOwner)
	b := newBrowser(t, e.base, owner)
	ctx := t.Context()
	emp := storetest.Employee(t, e.srv.DB, e.org.ID, "Riley")
	ownerP, err := e.auth.Principal(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("axe sees a violation", func(t *testing.T) {
		b.t = t
		b.open("/settings")
		b.eval(`(() => { const i = document.createElement("img"); i.src = "data:image/png;base64,iVBORw0KGgo="; document.querySelector("main").append(i); return "" })()`)
		found := false
		for _, v := range b.axeViolations() {
			found = found || v.ID == "image-alt"
		}
		if !found {
			t.Fatalf("axe did not report an image without alt: the checks above would pass vacuously")
		}
	})

	t.Run("workflows", func(t *testing.T) {
		b.t = t
		b.open("/workflows")
		if got := b.text("main"); !strings.Contains(got, "No workflow yet") {
			t.Fatalf("empty state %q", got)
		}
		var wf store.Workflow
		runAt := time.Now().Add(72 * time.Hour)
		if err := e.srv.API.Call(ctx, ownerP, "POST", "/api/v1/workflows",
			map[string]any{"kind": "offboarding", "employee_id": emp.ID, "run_at": runAt}, &wf); err != nil {
			t.Fatal(err)
		}
		b.open("/workflows")
		b.screenshot("workflows")
		b.click(`#workflows a[href="/workflows/` + wf.ID + `"]`)
		b.do(chromedp.WaitVisible(chromedp.ID("pause-reason")))
		b.checkA11y()
		b.set("#pause-reason", "waiting for the manager")
		b.click(`form[action$="/pause"] button`)
		b.waitFor(`document.querySelector(".flash") !== null`)
		if got := b.text("#workflow-state"); !strings.Contains(got, "Paused") {
			t.Fatalf("state after pause %q", got)
		}
		b.screenshot("workflow")
	})

	t.Run("enrollment", func(t *testing.T) {
		b.t = t
		b.open("/enrollment")
		b.screenshot("enrollment")
		b.set("#es-name", "Browser fleet")
		b.click(`#secret-form button`)
		b.do(chromedp.WaitVisible(chromedp.ID("secret-plaintext")))
		b.checkA11y()
		secret := b.text("#secret-plaintext")
		if len(secret) < 20 {
			t.Fatalf("secret %q", secret)
		}
		b.open("/enrollment")
		if html := b.eval("document.body.innerHTML"); strings.Contains(html, secret) {
			t.Fatalf("the secret is shown again after the page is reloaded")
		}
		if got := b.text("#secrets"); !strings.Contains(got, "Browser fleet") {
			t.Fatalf("secrets table %q", got)
		}
	})

	t.Run("warehouse", func(t *testing.T) {
		b.t = t
		b.open("/warehouse")
		b.set("#wh-name", "Austin office")
		b.set("#wh-city", "Austin")
		b.click(`#warehouse-form button`)
		b.waitFor(`document.querySelector("#warehouses") !== null`)
		b.checkA11y()
		if got := b.text("#warehouses"); !strings.Contains(got, "Austin office") {
			t.Fatalf("warehouses %q", got)
		}
		b.screenshot("warehouse")
	})

	t.Run("settings", func(t *testing.T) {
		b.t = t
		b.open("/settings")
		b.screenshot("settings")
		b.set("#s-hour", "18")
		b.set("#s-tz", "America/Chicago")
		b.click(`#settings-form button[type=submit]`)
		b.waitFor(`document.querySelector(".flash") !== null`)
		o, err := e.srv.DB.GetOrg(ctx, e.org.ID)
		if err != nil || o.Settings.OffboardingHour != 18 || o.TimeZone != "America/Chicago" {
			t.Fatalf("org after save: %+v %v", o, err)
		}
		b.checkA11y()
	})

	t.Run("users and tokens", func(t *testing.T) {
		b.t = t
		b.open("/users")
		b.set("#tok-name", "backup script")
		b.click(`#mint-form button`)
		b.do(chromedp.WaitVisible(chromedp.ID("token-secret")))
		b.checkA11y()
		b.screenshot("users")
		secret := b.text("#token-secret")
		if !strings.HasPrefix(secret, store.TokenPrefix) {
			t.Fatalf("token secret %q", secret)
		}
		req, _ := http.NewRequest("GET", e.base+"/api/v1/org", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("the minted token does not work: %d", resp.StatusCode)
		}
	})

	t.Run("audit", func(t *testing.T) {
		b.t = t
		b.open("/audit")
		b.screenshot("audit")
		b.set("#a-action", "token.created")
		b.click(`#audit-filters button`)
		b.waitFor(`location.search.includes("action=token.created")`)
		b.checkA11y()
		rows := b.eval(`String(document.querySelectorAll("#audit tbody tr").length)`)
		if rows == "0" {
			t.Fatalf("no token.created entry after minting a token")
		}
		if got := b.text("#audit"); strings.Contains(got, "workflow") {
			t.Fatalf("the action filter let other actions through: %q", got)
		}
	})
}
