package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/auth/fakeoidc"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
)

// With --demo the fake provider runs, seedSSO points the demo org at it, and a browser
// starting SSO for the demo org lands on the fake's login page listing the demo admins;
// signing in there sends it back to Lanyard's callback with a code.
func TestDemoSSO(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Demo = true
	ctx := context.Background()
	s, err := New(ctx, cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	t.Cleanup(func() { _ = s.caps.demoOIDC.Close() })
	org, token, err := s.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent: every demo start re-points the org at the new fake
		if err := s.seedSSO(ctx, org); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/sso", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var v oidc.ConfigView
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != 200 || v.Issuer != s.caps.demoOIDC.Issuer() || !v.Enabled || v.AllowedDomains[0] != "demo.example" ||
		v.RedirectURI != cfg.PublicURL+oidc.CallbackPath {
		t.Fatalf("demo SSO config: %d %+v", resp.StatusCode, v)
	}
	if got := s.DemoSSOSignInURL(org.ID); got != cfg.PublicURL+oidc.StartPath+"?org="+org.ID {
		t.Fatalf("sign-in URL %s", got)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = c.Get(srv.URL + oidc.StartPath + "?org=" + org.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(authURL, s.caps.demoOIDC.Issuer()+"/authorize?") {
		t.Fatalf("start: %d %s", resp.StatusCode, authURL)
	}
	resp, err = c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, u := range fakeoidc.DemoUsers {
		if !strings.Contains(string(page), u.Email) {
			t.Fatalf("login page lacks %s", u.Email)
		}
	}
	const marker = `name="request" value="`
	rid := string(page)[strings.Index(string(page), marker)+len(marker):]
	rid = rid[:strings.IndexByte(rid, '"')]
	resp, err = c.PostForm(s.caps.demoOIDC.Issuer()+"/login", url.Values{"request": {rid}, "email": {"second.admin@demo.example"},
		"password": {fakeoidc.DemoPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || cb.Query().Get("code") == "" ||
		cb.Scheme+"://"+cb.Host+cb.Path != cfg.PublicURL+oidc.CallbackPath {
		t.Fatalf("login: %d %s", resp.StatusCode, cb)
	}
}
