package fakeoidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const (
	testClient   = "rp"
	testSecret   = "rp-secret"
	otherClient  = "other"
	otherSecret  = "other-secret"
	testRedirect = "http://127.0.0.1:9/cb"
)

var testKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// newOP serves a provider on loopback through httptest, issuer = the server's URL.
func newOP(t *testing.T, mutate ...func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	cfg := Config{
		Issuer: "http://" + hs.Listener.Addr().String(),
		Users: []User{
			{Email: "alice@example.com", Name: "Alice Admin", EmailVerified: true, Password: "alice-pw"},
			{Email: "bob@example.com", Name: "Bob <b>", EmailVerified: false, Password: "bob-pw"},
		},
		Clients: []Client{
			{ID: testClient, Secret: testSecret, RedirectURIs: []string{testRedirect}},
			{ID: otherClient, Secret: otherSecret, RedirectURIs: []string{testRedirect}},
		},
		SigningKey: testKey,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	op, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = op
	hs.Start()
	t.Cleanup(hs.Close)
	return op, hs
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout: 10 * time.Second}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func postForm(t *testing.T, u string, v url.Values, basicUser, basicPass string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// authParams is a valid authentication request.
func authParams(verifier string) url.Values {
	return url.Values{"client_id": {testClient}, "redirect_uri": {testRedirect}, "response_type": {"code"},
		"scope": {"openid email profile"}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
}

// signIn drives /authorize and the login page and returns the redirect's query.
func signIn(t *testing.T, hs *httptest.Server, params url.Values, email, password string) url.Values {
	t.Helper()
	resp, body := get(t, hs.URL+"/authorize?"+params.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %d %s", resp.StatusCode, body)
	}
	i := strings.Index(body, `name="request" value="`)
	if i < 0 {
		t.Fatalf("no login form: %s", body)
	}
	rid := body[i+len(`name="request" value="`):]
	rid = rid[:strings.IndexByte(rid, '"')]
	lr, err := noRedirect.PostForm(hs.URL+"/login", url.Values{"request": {rid}, "email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	lr.Body.Close()
	if lr.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", lr.StatusCode)
	}
	loc, err := url.Parse(lr.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect {
		t.Fatalf("redirected to %s", got)
	}
	return loc.Query()
}

func TestDiscoveryAndFullFlowWithGoOIDC(t *testing.T) {
	for _, style := range []struct {
		name string
		auth oauth2.AuthStyle
	}{{"client_secret_basic", oauth2.AuthStyleInHeader}, {"client_secret_post", oauth2.AuthStyleInParams}} {
		t.Run(style.name, func(t *testing.T) {
			op, hs := newOP(t)
			ctx := context.Background()
			provider, err := oidc.NewProvider(ctx, hs.URL) // fails unless discovery's issuer is exactly the URL
			if err != nil {
				t.Fatal(err)
			}
			ep := provider.Endpoint()
			ep.AuthStyle = style.auth
			cfg := oauth2.Config{ClientID: testClient, ClientSecret: testSecret, Endpoint: ep, RedirectURL: testRedirect,
				Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
			v := oauth2.GenerateVerifier()
			u, _ := url.Parse(cfg.AuthCodeURL("st-9", oauth2.S256ChallengeOption(v), oidc.Nonce("nonce-9")))
			q := signIn(t, hs, u.Query(), "alice@example.com", "alice-pw")
			if q.Get("state") != "st-9" || q.Get("iss") != hs.URL || q.Get("code") == "" {
				t.Fatalf("callback query %v", q)
			}
			tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := provider.Verifier(&oidc.Config{ClientID: testClient}).Verify(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				Email    string `json:"email"`
				Verified bool   `json:"email_verified"`
				Name     string `json:"name"`
			}
			if err := idt.Claims(&c); err != nil {
				t.Fatal(err)
			}
			if idt.Nonce != "nonce-9" || idt.Subject != op.Users()[0].Subject || c.Email != "alice@example.com" || !c.Verified || c.Name != "Alice Admin" {
				t.Fatalf("id token nonce=%q sub=%q claims=%+v", idt.Nonce, idt.Subject, c)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Fatalf("at_hash: %v", err)
			}
			ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			if ui.Subject != idt.Subject || ui.Email != "alice@example.com" || !ui.EmailVerified {
				t.Fatalf("userinfo %+v", ui)
			}
		})
	}
}

func TestIssuerWithPath(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	iss := "http://" + hs.Listener.Addr().String() + "/oauth2/default"
	op, err := New(Config{Issuer: iss, Clients: []Client{{ID: "a", Secret: "b", RedirectURIs: []string{testRedirect}}}})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = op
	hs.Start()
	defer hs.Close()
	p, err := oidc.NewProvider(context.Background(), iss)
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoint().TokenURL != iss+"/token" {
		t.Fatalf("token endpoint %s", p.Endpoint().TokenURL)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"trailing slash":    {Issuer: "http://127.0.0.1:1/"},
		"relative issuer":   {Issuer: "/x"},
		"user without mail": {Issuer: "http://127.0.0.1:1", Users: []User{{Name: "x"}}},
		"duplicate user":    {Issuer: "http://127.0.0.1:1", Users: []User{{Email: "a@x"}, {Email: "A@x"}}},
		"client no secret":  {Issuer: "http://127.0.0.1:1", Clients: []Client{{ID: "a", RedirectURIs: []string{"http://x"}}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	_, hs := newOP(t)
	v := oauth2.GenerateVerifier()
	cases := []struct {
		name   string
		mutate func(url.Values)
		// page: shown to the user with this status, never redirected.
		page int
		// err: redirected to the client with this error.
		err string
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, 400, ""},
		{"missing client", func(q url.Values) { q.Del("client_id") }, 400, ""},
		{"redirect not registered", func(q url.Values) { q.Set("redirect_uri", "http://evil.example/cb") }, 400, ""},
		{"redirect prefix only", func(q url.Values) { q.Set("redirect_uri", testRedirect+"/more") }, 400, ""},
		{"redirect trailing slash", func(q url.Values) { q.Set("redirect_uri", testRedirect+"/") }, 400, ""},
		{"redirect missing", func(q url.Values) { q.Del("redirect_uri") }, 400, ""},
		{"repeated parameter", func(q url.Values) { q.Add("state", "two") }, 400, ""},
		{"implicit flow", func(q url.Values) { q.Set("response_type", "id_token token") }, 0, "unsupported_response_type"},
		{"response type missing", func(q url.Values) { q.Del("response_type") }, 0, "unsupported_response_type"},
		{"no openid scope", func(q url.Values) { q.Set("scope", "email profile") }, 0, "invalid_scope"},
		{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, 0, "invalid_request"},
		{"PKCE plain", func(q url.Values) { q.Set("code_challenge", v); q.Set("code_challenge_method", "plain") }, 0, "invalid_request"},
		{"PKCE method missing (means plain)", func(q url.Values) { q.Del("code_challenge_method") }, 0, "invalid_request"},
		{"PKCE challenge malformed", func(q url.Values) { q.Set("code_challenge", "short") }, 0, "invalid_request"},
		{"response_mode fragment", func(q url.Values) { q.Set("response_mode", "fragment") }, 0, "invalid_request"},
		{"request object", func(q url.Values) { q.Set("request", "eyJ") }, 0, "request_not_supported"},
		{"prompt none", func(q url.Values) { q.Set("prompt", "none") }, 0, "login_required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams(v)
			tc.mutate(q)
			resp, body := get(t, hs.URL+"/authorize?"+q.Encode())
			if tc.page != 0 {
				if resp.StatusCode != tc.page || resp.Header.Get("Location") != "" || strings.Contains(body, `name="password"`) {
					t.Fatalf("got %d location=%q", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("got %d %s, want a redirect with error=%s", resp.StatusCode, body, tc.err)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if loc.Query().Get("error") != tc.err || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") != "" ||
				loc.Query().Get("iss") != hs.URL || !strings.HasPrefix(loc.String(), testRedirect+"?") {
				t.Fatalf("redirect %s, want error=%s with state", loc, tc.err)
			}
		})
	}
}

func TestLoginPage(t *testing.T) {
	op, hs := newOP(t)
	v := oauth2.GenerateVerifier()
	resp, body := get(t, hs.URL+"/authorize?"+authParams(v).Encode())
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	for _, want := range []string{"alice@example.com", "Alice Admin", "bob@example.com", "Bob &lt;b&gt;", `type="password"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if strings.Contains(body, "Bob <b>") {
		t.Error("names are not escaped")
	}
	i := strings.Index(body, `name="request" value="`)
	rid := body[i+len(`name="request" value="`):]
	rid = rid[:strings.IndexByte(rid, '"')]
	for _, bad := range []url.Values{
		{"request": {rid}, "email": {"alice@example.com"}, "password": {"wrong"}},
		{"request": {rid}, "email": {"nobody@example.com"}, "password": {"alice-pw"}},
		{"request": {rid}, "email": {"bob@example.com"}, "password": {"alice-pw"}},
	} {
		lr, err := noRedirect.PostForm(hs.URL+"/login", bad)
		if err != nil {
			t.Fatal(err)
		}
		lr.Body.Close()
		if lr.StatusCode != http.StatusUnauthorized || lr.Header.Get("Location") != "" {
			t.Fatalf("bad password for %s: %d", bad.Get("email"), lr.StatusCode)
		}
	}
	lr, err := noRedirect.PostForm(hs.URL+"/login", url.Values{"request": {"made-up"}, "email": {"alice@example.com"}, "password": {"alice-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	lr.Body.Close()
	if lr.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown request: %d", lr.StatusCode)
	}
	// The page expires.
	op.Advance(loginTTL + time.Second)
	lr, err = noRedirect.PostForm(hs.URL+"/login", url.Values{"request": {rid}, "email": {"alice@example.com"}, "password": {"alice-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	lr.Body.Close()
	if lr.StatusCode != http.StatusBadRequest {
		t.Fatalf("expired login page: %d", lr.StatusCode)
	}
	if op.Stats().Authorizations != 0 {
		t.Fatal("a code was issued")
	}
}

func TestTokenRefusals(t *testing.T) {
	type req struct {
		form        url.Values
		user, pass  string // basic auth
		wantStatus  int
		wantErr     string
		wantWWWAuth bool
	}
	cases := []struct {
		name  string
		build func(code, verifier string) req
		// setup runs before the request (clock moves, earlier redemptions).
		setup func(t *testing.T, op *Server, hs *httptest.Server, code, verifier string)
	}{
		{"no client authentication", func(c, v string) req {
			return req{form: tokenForm(c, v), wantStatus: 401, wantErr: "invalid_client"}
		}, nil},
		{"wrong secret (basic)", func(c, v string) req {
			return req{form: tokenForm(c, v), user: testClient, pass: "nope", wantStatus: 401, wantErr: "invalid_client", wantWWWAuth: true}
		}, nil},
		{"wrong secret (post)", func(c, v string) req {
			f := tokenForm(c, v)
			f.Set("client_id", testClient)
			f.Set("client_secret", "nope")
			return req{form: f, wantStatus: 401, wantErr: "invalid_client"}
		}, nil},
		{"unknown client", func(c, v string) req {
			return req{form: tokenForm(c, v), user: "nobody", pass: testSecret, wantStatus: 401, wantErr: "invalid_client", wantWWWAuth: true}
		}, nil},
		{"two auth methods", func(c, v string) req {
			f := tokenForm(c, v)
			f.Set("client_secret", testSecret)
			return req{form: f, user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_request"}
		}, nil},
		{"wrong grant type", func(c, v string) req {
			f := tokenForm(c, v)
			f.Set("grant_type", "password")
			return req{form: f, user: testClient, pass: testSecret, wantStatus: 400, wantErr: "unsupported_grant_type"}
		}, nil},
		{"unknown code", func(c, v string) req {
			return req{form: tokenForm("made-up", v), user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, nil},
		{"code of another client", func(c, v string) req {
			return req{form: tokenForm(c, v), user: otherClient, pass: otherSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, nil},
		{"redirect_uri differs", func(c, v string) req {
			f := tokenForm(c, v)
			f.Set("redirect_uri", testRedirect+"/x")
			return req{form: f, user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, nil},
		{"redirect_uri missing", func(c, v string) req {
			f := tokenForm(c, v)
			f.Del("redirect_uri")
			return req{form: f, user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, nil},
		{"no code_verifier", func(c, v string) req {
			f := tokenForm(c, v)
			f.Del("code_verifier")
			return req{form: f, user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, nil},
		{"wrong code_verifier", func(c, v string) req {
			return req{form: tokenForm(c, oauth2.GenerateVerifier()), user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, nil},
		{"malformed code_verifier", func(c, v string) req {
			return req{form: tokenForm(c, "short"), user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_request"}
		}, nil},
		{"expired code", func(c, v string) req {
			return req{form: tokenForm(c, v), user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, func(t *testing.T, op *Server, hs *httptest.Server, code, verifier string) {
			op.Advance(61 * time.Second)
		}},
		{"code used twice", func(c, v string) req {
			return req{form: tokenForm(c, v), user: testClient, pass: testSecret, wantStatus: 400, wantErr: "invalid_grant"}
		}, func(t *testing.T, op *Server, hs *httptest.Server, code, verifier string) {
			resp, m := postForm(t, hs.URL+"/token", tokenForm(code, verifier), testClient, testSecret)
			if resp.StatusCode != 200 {
				t.Fatalf("first redemption: %d %v", resp.StatusCode, m)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op, hs := newOP(t)
			v := oauth2.GenerateVerifier()
			code := signIn(t, hs, authParams(v), "alice@example.com", "alice-pw").Get("code")
			if tc.setup != nil {
				tc.setup(t, op, hs, code, v)
			}
			rq := tc.build(code, v)
			resp, m := postForm(t, hs.URL+"/token", rq.form, rq.user, rq.pass)
			if resp.StatusCode != rq.wantStatus || m["error"] != rq.wantErr || m["access_token"] != nil || m["id_token"] != nil {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, m, rq.wantStatus, rq.wantErr)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != rq.wantWWWAuth {
				t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatal("token responses must not be cached")
			}
		})
	}
}

func tokenForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}}
}

func TestTokenNeedsPOSTAndForm(t *testing.T) {
	_, hs := newOP(t)
	resp, _ := get(t, hs.URL+"/token")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /token: %d", resp.StatusCode)
	}
	r, _ := http.NewRequest(http.MethodPost, hs.URL+"/token", strings.NewReader(`{"grant_type":"authorization_code"}`))
	r.Header.Set("Content-Type", "application/json")
	jr, err := noRedirect.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	jr.Body.Close()
	if jr.StatusCode != http.StatusBadRequest {
		t.Fatalf("JSON body: %d", jr.StatusCode)
	}
}

// A replayed code revokes the access token the first redemption issued (RFC 6749 4.1.2).
func TestReplayRevokesAccessToken(t *testing.T) {
	_, hs := newOP(t)
	v := oauth2.GenerateVerifier()
	code := signIn(t, hs, authParams(v), "alice@example.com", "alice-pw").Get("code")
	resp, m := postForm(t, hs.URL+"/token", tokenForm(code, v), testClient, testSecret)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	at, _ := m["access_token"].(string)
	if st := userinfoStatus(t, hs, at); st != 200 {
		t.Fatalf("userinfo before replay: %d", st)
	}
	if resp, _ := postForm(t, hs.URL+"/token", tokenForm(code, v), testClient, testSecret); resp.StatusCode != 400 {
		t.Fatalf("replay: %d", resp.StatusCode)
	}
	if st := userinfoStatus(t, hs, at); st != 401 {
		t.Fatalf("userinfo after replay: %d, want 401", st)
	}
}

func userinfoStatus(t *testing.T, hs *httptest.Server, token string) int {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, hs.URL+"/userinfo", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := noRedirect.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	return resp.StatusCode
}

func TestUserInfoRefusals(t *testing.T) {
	op, hs := newOP(t)
	if st := userinfoStatus(t, hs, ""); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st := userinfoStatus(t, hs, "made-up"); st != 401 {
		t.Fatalf("unknown token: %d", st)
	}
	v := oauth2.GenerateVerifier()
	code := signIn(t, hs, authParams(v), "bob@example.com", "bob-pw").Get("code")
	_, m := postForm(t, hs.URL+"/token", tokenForm(code, v), testClient, testSecret)
	at, _ := m["access_token"].(string)
	if st := userinfoStatus(t, hs, at); st != 200 {
		t.Fatalf("valid token: %d", st)
	}
	op.Advance(time.Hour + time.Second)
	if st := userinfoStatus(t, hs, at); st != 401 {
		t.Fatalf("expired token: %d", st)
	}
}

// Scopes decide the claims (OIDC Core 5.4): without "email" there is no email.
func TestClaimsFollowScopes(t *testing.T) {
	_, hs := newOP(t)
	v := oauth2.GenerateVerifier()
	p := authParams(v)
	p.Set("scope", "openid")
	code := signIn(t, hs, p, "alice@example.com", "alice-pw").Get("code")
	_, m := postForm(t, hs.URL+"/token", tokenForm(code, v), testClient, testSecret)
	claims := decodeJWT(t, m["id_token"].(string))
	if _, ok := claims["email"]; ok {
		t.Fatalf("email without the email scope: %v", claims)
	}
	if claims["nonce"] != "n-1" || claims["aud"] != testClient || claims["iss"] != hs.URL {
		t.Fatalf("claims %v", claims)
	}
}

func TestTamper(t *testing.T) {
	op, hs := newOP(t)
	op.SetTamper(Tamper{Issuer: "http://elsewhere", Audience: "someone", Nonce: "other", IDTokenTTL: -time.Minute, EmailOnlyInUserInfo: true})
	v := oauth2.GenerateVerifier()
	code := signIn(t, hs, authParams(v), "alice@example.com", "alice-pw").Get("code")
	_, m := postForm(t, hs.URL+"/token", tokenForm(code, v), testClient, testSecret)
	c := decodeJWT(t, m["id_token"].(string))
	if c["iss"] != "http://elsewhere" || c["aud"] != "someone" || c["nonce"] != "other" || c["email"] != nil ||
		int64(c["exp"].(float64)) >= time.Now().Unix() {
		t.Fatalf("tampered claims %v", c)
	}
}

func decodeJWT(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	b, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStartAndDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	op, err := StartDemo(ctx, "", testRedirect)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(op.Issuer(), "http://127.0.0.1:") {
		t.Fatalf("issuer %s", op.Issuer())
	}
	p, err := oidc.NewProvider(ctx, op.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoint().AuthURL != op.Issuer()+"/authorize" {
		t.Fatal(p.Endpoint().AuthURL)
	}
	c, ok := op.Client(DemoClientID)
	if !ok || c.Secret == "" || c.RedirectURIs[0] != testRedirect {
		t.Fatalf("demo client %+v", c)
	}
	if len(op.Users()) != 2 || op.Users()[0].Email != "owner@demo.example" {
		t.Fatalf("demo users %+v", op.Users())
	}
}

// A token signed by a key outside the JWKS fails verification by a real relying party.
func TestTamperForeignKey(t *testing.T) {
	op, hs := newOP(t)
	op.SetTamper(Tamper{ForeignKey: true})
	v := oauth2.GenerateVerifier()
	code := signIn(t, hs, authParams(v), "alice@example.com", "alice-pw").Get("code")
	_, m := postForm(t, hs.URL+"/token", tokenForm(code, v), testClient, testSecret)
	p, err := oidc.NewProvider(context.Background(), hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verifier(&oidc.Config{ClientID: testClient}).Verify(context.Background(), m["id_token"].(string)); err == nil {
		t.Fatal("a token signed with a foreign key verified")
	}
}
