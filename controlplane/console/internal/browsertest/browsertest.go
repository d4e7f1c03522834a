// Package browsertest drives Debian's headless Chromium from Go tests (chromedp) and runs
// axe-core on every page a test visits: a serious or critical accessibility violation
// fails the test. Screenshots go to a directory when LANYARD_SCREENSHOTS=1.
package browsertest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser (.ci/run installs it).
const ChromiumPath = "/usr/bin/chromium"

// axeJS is axe-core 4.14.1 (npm pack axe-core@4.14.1, axe.min.js; MPL-2.0, see axe.LICENSE).
//
//go:embed axe-4.14.1.min.js
var axeJS string

// Browser is one headless Chromium for a test.
type Browser struct {
	t    testing.TB
	root context.Context
}

// Start launches Chromium, or skips the test when it is not installed.
func Start(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("browser tests need Chromium at %s (Debian: apt-get install chromium; .ci/run installs it)", ChromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(ChromiumPath), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// Start the browser on the long-lived context: one started under a timeout dies with it.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { bcancel(); acancel() })
	return &Browser{t: t, root: bctx}
}

// Tab is a page in its own browser context: its own cookies, like a second person's browser.
type Tab struct {
	t   testing.TB
	ctx context.Context
	// Pages lists every URL visited (and checked with axe).
	Pages []string
}

// NewTab opens a page in a fresh browser context. JavaScript dialogs (confirm) are accepted.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	// Record every Content-Security-Policy violation of every page, from before its own
	// scripts run, so Check can fail on one.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder}); err != nil {
		t.Fatalf("csp recorder: %v", err)
	}
	return &Tab{t: t, ctx: ctx}
}

// Context is the tab's chromedp context (for actions this package does not wrap).
func (tab *Tab) Context() context.Context { return tab.ctx }

// Do runs actions with a deadline.
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(tab.ctx, chromedp.Location())
		body, _ := chromedp.Run(tab.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		tab.t.Fatalf("browser: %v (at %s)\n%s", err, loc, body)
	}
}

// Text is an element's visible text.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tab.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// Body is the page's visible text.
func (tab *Tab) Body() string {
	tab.t.Helper()
	s, err := chromedp.Run(tab.ctx, chromedp.Evaluate[string]("document.body.innerText"))
	if err != nil {
		tab.t.Fatalf("body: %v", err)
	}
	return s
}

// Location is the page's URL.
func (tab *Tab) Location() string {
	tab.t.Helper()
	s, err := chromedp.Run(tab.ctx, chromedp.Location())
	if err != nil {
		tab.t.Fatalf("location: %v", err)
	}
	return s
}

// Visit navigates to url, waits for the page and checks it with axe.
func (tab *Tab) Visit(url string) {
	tab.t.Helper()
	tab.Do(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main")))
	tab.Check()
}

// Violation is one axe-core finding.
type Violation struct {
	ID          string `json:"id"`
	Impact      string `json:"impact"`
	Help        string `json:"help"`
	Description string `json:"description"`
	Nodes       []struct {
		Target         []any  `json:"target"`
		HTML           string `json:"html"`
		FailureSummary string `json:"failureSummary"`
	} `json:"nodes"`
}

const cspRecorder = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});`

// Violations runs axe-core on the current page.
func (tab *Tab) Violations() ([]Violation, error) {
	ctx, cancel := context.WithTimeout(tab.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](axeJS)); err != nil {
		return nil, fmt.Errorf("load axe: %w", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](
		`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations)`, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("axe: %w", err)
	}
	var vs []Violation
	if err := json.Unmarshal(raw, &vs); err != nil {
		return nil, fmt.Errorf("axe result: %w", err)
	}
	return vs, nil
}

// CSPViolations lists the page's Content-Security-Policy violations so far.
func (tab *Tab) CSPViolations() ([]string, error) {
	return chromedp.Run(tab.ctx, chromedp.Evaluate[[]string]("window.__cspViolations || []"))
}

// Check runs axe-core on the current page and fails the test on any serious or critical
// violation, or on any Content-Security-Policy violation.
func (tab *Tab) Check() {
	tab.t.Helper()
	loc, _ := chromedp.Run(tab.ctx, chromedp.Location())
	tab.Pages = append(tab.Pages, loc)
	csp, err := tab.CSPViolations()
	if err != nil {
		tab.t.Fatalf("csp violations on %s: %v", loc, err)
	}
	if len(csp) > 0 {
		tab.t.Fatalf("Content-Security-Policy violations on %s: %v", loc, csp)
	}
	vs, err := tab.Violations()
	if err != nil {
		tab.t.Fatalf("%s: %v", loc, err)
	}
	var bad []string
	for _, v := range vs {
		if v.Impact != "serious" && v.Impact != "critical" {
			continue
		}
		line := fmt.Sprintf("%s (%s): %s", v.ID, v.Impact, v.Help)
		for _, n := range v.Nodes {
			line += fmt.Sprintf("\n    %v %s: %s", n.Target, n.HTML, n.FailureSummary)
		}
		bad = append(bad, line)
	}
	if len(bad) > 0 {
		tab.t.Fatalf("axe found serious or critical violations on %s:\n  %s", loc, strings.Join(bad, "\n  "))
	}
}

// Screenshot writes the page as dir/name.png when LANYARD_SCREENSHOTS=1.
func (tab *Tab) Screenshot(dir, name string) {
	tab.t.Helper()
	if os.Getenv("LANYARD_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(tab.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tab.t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tab.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
}

// WaitTrue waits until the JavaScript expression is true (e.g. an htmx swap finished, or
// a new page loaded). An evaluation cut short by a navigation is retried.
func (tab *Tab) WaitTrue(expr string) {
	tab.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(tab.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			tab.t.Fatalf("waiting for %s: %v\n%s", expr, lastErr, body)
		}
		select {
		case <-tick.C:
		case <-tab.ctx.Done():
			tab.t.Fatalf("waiting for %s: %v", expr, tab.ctx.Err())
		}
	}
}

// Submit clicks a button (or link) that loads a new page and waits for that page: the
// old document is marked first, so the wait cannot be satisfied by the page it left.
func (tab *Tab) Submit(sel string) {
	tab.t.Helper()
	tab.Do(chromedp.Evaluate[chromedp.Void](`window.__lanyardOldPage = true`), chromedp.Click(chromedp.CSS(sel)))
	tab.WaitTrue(`window.__lanyardOldPage === undefined && document.readyState === "complete" && !!document.querySelector("main")`)
}
