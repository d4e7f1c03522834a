package oidc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/auth/fakeoidc"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

const (
	clientID     = "lanyard-test"
	clientSecret = "s3cret-client-value"
	password     = "pw-for-tests"
)

var signingKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// clock is the relying party's clock; tests move it instead of sleeping.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// syncBuffer collects log output from handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type startCall struct{ orgID, issuer, subject, email string }

// env is a relying party (API + browser endpoints on one loopback server) in front of a
// fake provider, with an organization configured for SSO through the REST route.
type env struct {
	t     *testing.T
	db    *store.DB
	keys  *secrets.Keyring
	org   domain.Org
	owner string // owner token
	op    *fakeoidc.Server
	rp    *oidc.Service
	rpURL string
	h     *apitest.Harness
	clock *clock
	// authTimes are the auth_time values the session starter was given, call by call.
	authTimes []time.Time
	logs      *syncBuffer

	mu       sync.Mutex
	calls    []startCall
	startErr error
}

func newEnv(t *testing.T, db *store.DB) *env { return newEnvAt(t, db, "") }

// newEnvAt is newEnv with the relying party's public URL on host instead of 127.0.0.1
// ("localhost" makes it another site than the provider, as in the demo).
func newEnvAt(t *testing.T, db *store.DB, host string) *env {
	t.Helper()
	e := &env{t: t, db: db, clock: &clock{}, logs: &syncBuffer{}}
	var err error
	if e.keys, err = secrets.New(secrets.NewKey()); err != nil {
		t.Fatal(err)
	}
	rpSrv := httptest.NewUnstartedServer(nil)
	e.rpURL = "http://" + rpSrv.Listener.Addr().String()
	if host != "" {
		_, port, _ := net.SplitHostPort(rpSrv.Listener.Addr().String())
		e.rpURL = "http://" + net.JoinHostPort(host, port)
	}
	e.op = e.newOP(nil)
	e.rp, err = oidc.New(oidc.Config{Store: db, Keys: e.keys, PublicURL: e.rpURL, Start: e.start, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	e.h = apitest.New(t, db, api.Options{Logger: slog.New(slog.DiscardHandler)}, e.rp.Routes())
	mux := http.NewServeMux()
	e.rp.Mount(mux)
	// Stand-ins for the console's pages: home after a session starts, and the sign-in page
	// showing the message for ?error= as the console does.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>home</title><p id="home">signed in</p>`)
	})
	mux.HandleFunc("GET "+oidc.SignInPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>sign in</title><p id="signin-error">`+
			html.EscapeString(oidc.ErrorMessage(r.URL.Query().Get("error")))+`</p>`)
	})
	mux.Handle("/", e.h.API)
	rpSrv.Config.Handler = mux
	rpSrv.Start()
	t.Cleanup(rpSrv.Close)
	e.org = storetest.Org(t, db, domain.PlanHR)
	e.owner = e.h.Token(e.org.ID, domain.RoleOwner)
	e.configure(e.op.Issuer(), true)
	return e
}

// newOP starts a fake provider that knows this relying party's redirect URI.
func (e *env) newOP(tamper *fakeoidc.Tamper) *fakeoidc.Server {
	e.t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	cfg := fakeoidc.Config{
		Issuer: "http://" + hs.Listener.Addr().String(),
		Users: []fakeoidc.User{
			{Email: "alice@example.com", Name: "Alice", EmailVerified: true, Password: password},
			{Email: "bob@example.com", Name: "Bob", EmailVerified: false, Password: password},
			{Email: "carol@other.example", Name: "Carol", EmailVerified: true, Password: password},
		},
		Clients:    []fakeoidc.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{e.rpURL + oidc.CallbackPath}}},
		SigningKey: signingKey,
	}
	if tamper != nil {
		cfg.Tamper = *tamper
	}
	op, err := fakeoidc.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	hs.Config.Handler = op
	hs.Start()
	e.t.Cleanup(hs.Close)
	return op
}

func (e *env) configure(issuer string, enabled bool) {
	e.t.Helper()
	resp := e.h.Do("PUT", "/api/v1/sso", e.owner, oidc.ConfigRequest{Issuer: issuer, ClientID: clientID, ClientSecret: clientSecret,
		AllowedDomains: []string{"Example.com"}, Enabled: enabled})
	if resp.Status != http.StatusOK {
		e.t.Fatalf("configure SSO: %d %s", resp.Status, resp.Body)
	}
}

// start is the SessionStarter: it records the person and redirects home.
func (e *env) start(ctx context.Context, w http.ResponseWriter, r *http.Request, v oidc.Vouched) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.startErr != nil {
		return e.startErr
	}
	e.calls = append(e.calls, startCall{v.OrgID, v.Issuer, v.Subject, v.Email})
	e.authTimes = append(e.authTimes, v.AuthTime)
	http.SetCookie(w, &http.Cookie{Name: "test_session", Value: "opened", Path: "/"})
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
	return nil
}

func (e *env) startCalls() []startCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]startCall(nil), e.calls...)
}

// browser is a cookie-keeping client that stops at every redirect so each hop is seen.
type browser struct {
	t   *testing.T
	jar *cookiejar.Jar
	c   *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, c: &http.Client{Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// startSSO opens the start link and returns the provider's authorize URL.
func (b *browser) startSSO(e *env) string {
	b.t.Helper()
	return b.startSSOWith(e, "")
}

// startSSOWith is startSSO with more query parameters ("&reauth=1").
func (b *browser) startSSOWith(e *env, extra string) string {
	b.t.Helper()
	resp, body := b.get(e.rpURL + oidc.StartPath + "?org=" + e.org.ID + extra)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("start: %d %s (location %s)", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	return resp.Header.Get("Location")
}

// login signs in at the provider and returns the callback URL it redirects to.
func (b *browser) login(authURL, email string) string {
	b.t.Helper()
	resp, body := b.get(authURL)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("authorize: %d %s", resp.StatusCode, body)
	}
	const marker = `name="request" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		b.t.Fatalf("no login form: %s", body)
	}
	rid := body[i+len(marker):]
	rid = rid[:strings.IndexByte(rid, '"')]
	au, _ := url.Parse(authURL)
	lr, err := b.c.PostForm(au.Scheme+"://"+au.Host+strings.TrimSuffix(au.Path, "/authorize")+"/login",
		url.Values{"request": {rid}, "email": {email}, "password": {password}})
	if err != nil {
		b.t.Fatal(err)
	}
	lr.Body.Close()
	if lr.StatusCode != http.StatusFound {
		b.t.Fatalf("login: %d", lr.StatusCode)
	}
	return lr.Header.Get("Location")
}

// ssoCookie is the browser-binding cookie the start set, if any.
func (b *browser) ssoCookie(e *env) *http.Cookie {
	u, _ := url.Parse(e.rpURL + oidc.CallbackPath)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == oidc.CookieName {
			return c
		}
	}
	return nil
}

// failures lists the reasons of the org's user.sign_in_failed audit rows, checking that
// each is method sso.
func (e *env) failures() []string {
	e.t.Helper()
	rows, _, err := e.db.ListAudit(context.Background(), e.org.ID, store.AuditFilter{Action: "user.sign_in_failed"}, store.Page{Limit: 200})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		if !strings.Contains(string(r.After), `"method":"sso"`) {
			e.t.Fatalf("sign-in failure without method sso: %s", r.After)
		}
		var reason string
		if i := strings.Index(string(r.After), `"reason":"`); i >= 0 {
			reason = string(r.After)[i+len(`"reason":"`):]
			reason = reason[:strings.IndexByte(reason, '"')]
		}
		out = append(out, reason)
	}
	return out
}

// allAudit is every audit row of the org as text, for leak checks.
func (e *env) allAudit() string {
	e.t.Helper()
	rows, _, err := e.db.ListAudit(context.Background(), e.org.ID, store.AuditFilter{}, store.Page{Limit: 200})
	if err != nil {
		e.t.Fatal(err)
	}
	var sb strings.Builder
	for _, r := range rows {
		sb.WriteString(r.Actor + " " + r.Action + " " + r.TargetID + " " + string(r.Before) + " " + string(r.After) + "\n")
	}
	return sb.String()
}
