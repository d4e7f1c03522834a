package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/console"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The vendored scripts are exactly the published files (npm pack htmx.org@2.0.11,
// axe-core@4.14.1); a changed byte means someone edited or swapped them.
func TestVendoredFilesArePinned(t *testing.T) {
	for path, want := range map[string]string{
		"assets/htmx-2.0.11.min.js":              "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
		"internal/browsertest/axe-4.14.1.min.js": "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c",
	} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, want %s", path, got, want)
		}
	}
	for _, lic := range []string{"assets/htmx.LICENSE", "internal/browsertest/axe.LICENSE"} {
		if _, err := os.Stat(lic); err != nil {
			t.Errorf("license missing: %v", err)
		}
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t)
	anon, viewer := e.client(""), e.client(domain.RoleViewer)
	for name, p := range map[string]page{
		"signin":    anon.get("/signin"),
		"home":      viewer.get("/"),
		"not found": viewer.get("/no-such-page"),
		"redirect":  anon.get("/devices"),
	} {
		t.Run(name, func(t *testing.T) {
			for k, want := range map[string]string{
				"Content-Security-Policy": console.CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
				"Referrer-Policy": "same-origin", "Cache-Control": "no-store",
			} {
				if got := p.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
	if !strings.Contains(console.CSP, "frame-ancestors 'none'") || strings.Contains(console.CSP, "unsafe") {
		t.Errorf("CSP %q", console.CSP)
	}
}

var assetLink = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)

func TestAssetsAreHashedAndCached(t *testing.T) {
	e := newEnv(t)
	p := e.client("").get("/signin")
	links := assetLink.FindAllStringSubmatch(p.Body, -1)
	if len(links) < 3 {
		t.Fatalf("expected css, htmx and app.js links, got %v", links)
	}
	cl := e.client("")
	for _, l := range links {
		a := cl.get(l[1])
		if a.Status != 200 || a.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || a.Header.Get("ETag") == "" {
			t.Fatalf("%s: %d %v", l[1], a.Status, a.Header)
		}
		if a.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no CSP", l[1])
		}
		req, _ := http.NewRequest("GET", e.http.URL+l[1], nil)
		req.Header.Set("If-None-Match", a.Header.Get("ETag"))
		if nm := cl.do(req); nm.Status != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: %d", l[1], nm.Status)
		}
	}
	if p := cl.get("/assets/app.js"); p.Status != http.StatusNotFound {
		t.Errorf("unhashed asset name answered %d", p.Status)
	}
	if !strings.Contains(p.Body, `content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}'`) {
		t.Error("htmx-config meta missing")
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(p.Body) || strings.Contains(p.Body, " style=") || strings.Contains(p.Body, "hx-on") {
		t.Error("page has inline script, inline style or hx-on")
	}
}

func TestSignedOutGoesToSignInWithLocalNext(t *testing.T) {
	e := newEnv(t)
	anon := e.client("")
	for path, want := range map[string]string{
		"/devices?q=mac": "/signin?next=" + url.QueryEscape("/devices?q=mac"),
		"/":              "/signin",
		"/people/x":      "/signin?next=%2Fpeople%2Fx",
	} {
		p := anon.get(path)
		if p.Status != http.StatusSeeOther || p.Header.Get("Location") != want {
			t.Errorf("GET %s: %d → %q, want 303 → %q", path, p.Status, p.Header.Get("Location"), want)
		}
	}
	// A stolen cookie after sign-out: the session is gone, the cookie leads to sign-in.
	cl := e.client(domain.RoleAdmin)
	if p := cl.get("/"); p.Status != 200 {
		t.Fatalf("home: %d", p.Status)
	}
	stolen := cl.sess.ID
	if p := cl.post("/signout", nil); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/signin" {
		t.Fatalf("sign out: %d %v", p.Status, p.Header)
	}
	thief := e.client("")
	u, _ := url.Parse(e.http.URL)
	thief.c.Jar.SetCookies(u, []*http.Cookie{{Name: "lanyard_session", Value: stolen, Path: "/"}})
	if p := thief.get("/devices"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/signin") {
		t.Errorf("stolen cookie after sign-out: %d %v", p.Status, p.Header.Get("Location"))
	}
}

func TestSafeNext(t *testing.T) {
	e := newEnv(t)
	anon := e.client("")
	for next, ok := range map[string]bool{
		"/devices": true, "/people/1?x=2": true, "//evil.example/": false, "https://evil.example/": false,
		"/\\evil.example": false, "javascript:alert(1)": false, "/signin": false, "": false,
	} {
		p := anon.get("/signin?next=" + url.QueryEscape(next))
		want := "/"
		if ok {
			want = next
		}
		if !strings.Contains(p.Body, `name="next" value="`+htmlEscape(want)+`"`) {
			t.Errorf("next %q: sign-in form does not carry %q", next, want)
		}
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func TestCSRFRefusals(t *testing.T) {
	e := newEnv(t)
	dev := storetest.Device(t, e.srv.DB, e.org.ID, "CSRF-1")
	cl := e.client(domain.RoleAdmin)
	path := "/devices/" + dev.ID + "/lock"
	send := func(form url.Values, origin, fetchSite string) page {
		req, _ := http.NewRequest("POST", e.http.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if fetchSite != "" {
			req.Header.Set("Sec-Fetch-Site", fetchSite)
		}
		return cl.do(req)
	}
	good := url.Values{"csrf": {cl.sess.CSRF}}
	commands := func() int {
		cmds, _, err := e.srv.DB.ListDeviceCommands(t.Context(), e.org.ID, dev.ID, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(cmds)
	}
	for name, p := range map[string]page{
		"missing token":       send(url.Values{}, e.http.URL, ""),
		"forged token":        send(url.Values{"csrf": {"forged"}}, e.http.URL, ""),
		"other site's origin": send(good, "https://evil.example", ""),
		"cross-site fetch":    send(good, "", "cross-site"),
		"no origin at all":    send(good, "", ""),
		"null origin":         send(good, "null", ""),
	} {
		if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "did not come from this site") {
			t.Errorf("%s: %d %s", name, p.Status, p.Body)
		}
	}
	if n := commands(); n != 0 {
		t.Errorf("refused forms still reached the API: %d commands", n)
	}
	// The same form with the token and a same-origin header reaches the API.
	if p := send(good, "", "same-origin"); p.Status != http.StatusSeeOther {
		t.Errorf("valid form refused: %d %s", p.Status, p.Body)
	}
	if n := commands(); n != 1 {
		t.Errorf("the valid form made %d commands, want 1", n)
	}
}
