package console_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// realEnv is the wired server (real auth service) over HTTP, without a browser.
type realEnv struct {
	s   *server.Server
	url string
}

func newRealEnv(t *testing.T) *realEnv {
	t.Helper()
	cfg := loopbackConfig(t, "")
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	hs := httptest.NewServer(s.Handler)
	t.Cleanup(hs.Close)
	return &realEnv{s: s, url: hs.URL}
}

type browserish struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (e *realEnv) browser(t *testing.T) *browserish {
	jar, _ := cookiejar.New(nil)
	return &browserish{t: t, base: e.url, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browserish) get(path string) page {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (b *browserish) post(path string, form url.Values, origin string) page {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (b *browserish) cookie(name string) string {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// claim walks a one-time link to a password for an IT user (no TOTP for the role).
func (e *realEnv) claim(t *testing.T, orgID, email, password string) {
	t.Helper()
	ctx := context.Background()
	u, err := e.s.Auth.EnsureUser(ctx, orgID, email, "Test", domain.RoleIT)
	if err != nil {
		t.Fatal(err)
	}
	link, err := e.s.Auth.NewSignInLink(ctx, orgID, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	p := b.get(link)
	if p = b.post(link, url.Values{"csrf": {csrfOf(t, p)}}, e.url); p.Status != 200 || !strings.Contains(p.Body, "Choose a password") {
		t.Fatalf("link: %d %s", p.Status, p.Body)
	}
	p = b.post("/signin/password", url.Values{"csrf": {csrfOf(t, p)}, "password": {password}, "confirm": {password}, "next": {"/"}}, e.url)
	if p.Status != http.StatusSeeOther || b.cookie(auth.CookieName) == "" {
		t.Fatalf("set password: %d %s", p.Status, p.Body)
	}
	// The link is spent.
	if p := b.post(link, url.Values{"csrf": {b.cookie("lanyard_pre")}}, e.url); p.Status == http.StatusOK && strings.Contains(p.Body, "Choose a password") {
		t.Fatal("a one-time link worked twice")
	}
}

func TestSignInForms(t *testing.T) {
	e := newRealEnv(t)
	a, b := storetest.Org(t, e.s.DB, domain.PlanPro), storetest.Org(t, e.s.DB, domain.PlanPro)
	const pw = "a long enough passphrase"
	e.claim(t, a.ID, "sam@example.com", pw)
	e.claim(t, b.ID, "sam@example.com", pw)

	t.Run("a sign-in form from another site is refused (login CSRF)", func(t *testing.T) {
		br := e.browser(t)
		csrf := csrfOf(t, br.get("/signin"))
		for name, p := range map[string]page{
			"no token":      br.post("/signin", url.Values{"email": {"sam@example.com"}, "password": {pw}}, e.url),
			"other origin":  br.post("/signin", url.Values{"csrf": {csrf}, "email": {"sam@example.com"}, "password": {pw}}, "https://evil.example"),
			"another token": br.post("/signin", url.Values{"csrf": {otherToken(csrf)}, "email": {"sam@example.com"}, "password": {pw}}, e.url),
		} {
			if p.Status != http.StatusForbidden || br.cookie(auth.CookieName) != "" {
				t.Errorf("%s: %d", name, p.Status)
			}
		}
	})

	t.Run("several organizations: choose one, then go where you were going", func(t *testing.T) {
		br := e.browser(t)
		csrf := csrfOf(t, br.get("/signin?next=%2Fpeople"))
		p := br.post("/signin", url.Values{"csrf": {csrf}, "email": {"sam@example.com"}, "password": {pw}, "next": {"/people"}}, e.url)
		if p.Status != 200 || !strings.Contains(p.Body, a.Name) || !strings.Contains(p.Body, b.Name) || br.cookie(auth.CookieName) != "" {
			t.Fatalf("org choice: %d %s", p.Status, p.Body)
		}
		p = br.post("/signin", url.Values{"csrf": {csrf}, "email": {"sam@example.com"}, "password": {pw}, "org": {b.ID}, "next": {"/people"}}, e.url)
		if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/people" || br.cookie(auth.CookieName) == "" {
			t.Fatalf("after choosing: %d %v", p.Status, p.Header)
		}
		if home := br.get("/"); !strings.Contains(home.Body, b.Name) {
			t.Errorf("signed in to the wrong org: %s", home.Body)
		}
	})

	t.Run("next cannot send a signed-in browser off-site", func(t *testing.T) {
		br := e.browser(t)
		csrf := csrfOf(t, br.get("/signin"))
		p := br.post("/signin", url.Values{"csrf": {csrf}, "email": {"sam@example.com"}, "password": {pw}, "org": {a.ID}, "next": {"//evil.example/x"}}, e.url)
		if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/" {
			t.Fatalf("next: %d %q", p.Status, p.Header.Get("Location"))
		}
	})

	t.Run("a wrong password is a message, not a session", func(t *testing.T) {
		br := e.browser(t)
		csrf := csrfOf(t, br.get("/signin"))
		p := br.post("/signin", url.Values{"csrf": {csrf}, "email": {"sam@example.com"}, "password": {"wrong wrong wrong"}, "org": {a.ID}}, e.url)
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, auth.ErrBadCredentials.Error()) || br.cookie(auth.CookieName) != "" {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
	})

	t.Run("SSO: the button for an org with SSO, the message for a failure code", func(t *testing.T) {
		br := e.browser(t)
		if p := br.get("/signin?org=" + a.ID); strings.Contains(p.Body, "/auth/sso/start") {
			t.Error("SSO button for an org without SSO")
		}
		if err := e.s.DB.PutSSOConfig(context.Background(), &store.SSOConfig{OrgID: b.ID, Issuer: "https://idp.example", ClientID: "lanyard",
			ClientSecretSealed: "sealed", AllowedDomains: []string{"example.com"}, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		if p := br.get("/signin?org=" + b.ID); !strings.Contains(p.Body, `href="/auth/sso/start?org=`+b.ID+`"`) {
			t.Errorf("no SSO button for an org with SSO: %s", p.Body)
		}
		if p := br.get("/signin?error=state_mismatch"); !strings.Contains(p.Body, `role="alert"`) {
			t.Errorf("no message for an SSO failure code: %s", p.Body)
		}
	})

	t.Run("SSO: re-authentication at the provider, only where the org has SSO", func(t *testing.T) {
		for org, want := range map[string]bool{a.ID: false, b.ID: true} {
			br := e.browser(t)
			csrf := csrfOf(t, br.get("/signin"))
			if p := br.post("/signin", url.Values{"csrf": {csrf}, "email": {"sam@example.com"}, "password": {pw}, "org": {org}}, e.url); p.Status != http.StatusSeeOther {
				t.Fatalf("sign in: %d", p.Status)
			}
			p := br.get("/reauth?next=%2Fdevices")
			if got := strings.Contains(p.Body, `href="/auth/sso/start?org=`+org+`&amp;reauth=1&amp;next=%2Fdevices"`); got != want {
				t.Errorf("org with SSO %v: re-authenticate-with-SSO link shown %v: %s", want, got, p.Body)
			}
		}
	})
}

// otherToken is tok with its first character changed ("x" + tok[1:] is tok itself when
// tok already starts with "x", one token in 64).
func otherToken(tok string) string {
	if strings.HasPrefix(tok, "x") {
		return "y" + tok[1:]
	}
	return "x" + tok[1:]
}
