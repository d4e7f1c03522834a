package console_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/console"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// sessionAuth is a test double of the auth service for the console's own tests: sessions
// are minted directly for a role, so the middleware, CSRF and the action table can be
// tested without the sign-in flow (the browser tests use the real auth.Service).
type sessionAuth struct {
	db       *store.DB
	mu       sync.Mutex
	sessions map[string]auth.Session
}

func newSessionAuth(db *store.DB) *sessionAuth {
	return &sessionAuth{db: db, sessions: map[string]auth.Session{}}
}

func randHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *sessionAuth) login(orgID string, role domain.Role) auth.Session {
	s := auth.Session{ID: randHex(), CSRF: randHex(), OrgID: orgID,
		Email: string(role) + "-" + randHex()[:6] + "@example.com", Name: "Test " + string(role), Role: role, ReauthAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	// A real user row, so what the person creates (tokens) can name them as its owner.
	u := store.User{OrgID: orgID, Email: s.Email, Name: s.Name, Role: role}
	if err := f.db.CreateUser(context.Background(), &u); err != nil {
		panic("create test user: " + err.Error())
	}
	s.UserID = u.ID
	f.mu.Lock()
	f.sessions[s.ID] = s
	f.mu.Unlock()
	return s
}

func (f *sessionAuth) SignInPassword(ctx context.Context, orgID, email, password string, m auth.ClientMeta) (auth.Step, error) {
	return auth.Step{}, auth.ErrBadCredentials
}
func (f *sessionAuth) SignInLink(ctx context.Context, token string, m auth.ClientMeta) (auth.Step, error) {
	return auth.Step{}, auth.ErrChallengeExpired
}
func (f *sessionAuth) SetPassword(ctx context.Context, challenge, password string, m auth.ClientMeta) (auth.Step, error) {
	return auth.Step{}, auth.ErrChallengeExpired
}
func (f *sessionAuth) VerifyTOTP(ctx context.Context, challenge, code string, m auth.ClientMeta) (auth.Session, []string, error) {
	return auth.Session{}, nil, auth.ErrChallengeExpired
}
func (f *sessionAuth) Authenticate(ctx context.Context, id string) (auth.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return auth.Session{}, auth.ErrNoSession
	}
	return s, nil
}
func (f *sessionAuth) Reauthenticate(ctx context.Context, id, password, code string, m auth.ClientMeta) (auth.Session, error) {
	return f.Authenticate(ctx, id)
}
func (f *sessionAuth) SignOut(ctx context.Context, id string) error {
	f.mu.Lock()
	delete(f.sessions, id)
	f.mu.Unlock()
	return nil
}
func (f *sessionAuth) Principal(ctx context.Context, s auth.Session) (api.Principal, error) {
	org, err := f.db.GetOrg(ctx, s.OrgID)
	if err != nil {
		return api.Principal{}, err
	}
	return api.Principal{OrgID: s.OrgID, Org: org, Role: s.Role, UserID: s.UserID, UserEmail: s.Email, SessionID: s.ID, Via: "session"}, nil
}

// env is the fully wired control plane (server.New on SQLite) with a console in front of
// its API that uses sessionAuth.
type env struct {
	t       testing.TB
	srv     *server.Server
	auth    *sessionAuth
	console *console.Console
	http    *httptest.Server
	org     domain.Org
}

// loopbackConfig is the default configuration with a fresh data directory, every listener
// on a free loopback port, and publicURL (when set) as the address browsers use.
func loopbackConfig(t testing.TB, publicURL string) config.Config {
	t.Helper()
	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.DataDir, cfg.KeyFile = dir, filepath.Join(dir, "keyring.json")
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	if publicURL != "" {
		cfg.PublicURL = publicURL
	}
	return cfg
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cfg := loopbackConfig(t, "")
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	fa := newSessionAuth(s.DB)
	con, err := console.New(console.Options{Auth: fa, API: s.API, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(con)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: s, auth: fa, console: con, http: hs, org: storetest.Org(t, s.DB, domain.PlanPro)}
}

// client is a browser-like HTTP client: a cookie jar, no redirect following, and the
// Origin header a browser sends on a form post.
type client struct {
	e    *env
	c    *http.Client
	sess auth.Session
}

func (e *env) client(role domain.Role) *client {
	jar, _ := cookiejar.New(nil)
	cl := &client{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if role != "" {
		cl.sess = e.auth.login(e.org.ID, role)
		u, _ := url.Parse(e.http.URL)
		jar.SetCookies(u, []*http.Cookie{{Name: auth.CookieName, Value: cl.sess.ID, Path: "/"}})
	}
	return cl
}

type page struct {
	Status int
	Header http.Header
	Body   string
}

func (cl *client) do(req *http.Request) page {
	cl.e.t.Helper()
	resp, err := cl.c.Do(req)
	if err != nil {
		cl.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func (cl *client) get(path string) page {
	req, _ := http.NewRequest("GET", cl.e.http.URL+path, nil)
	return cl.do(req)
}

// post submits a form as a same-origin browser would, with the session's CSRF token
// unless form sets "csrf" itself.
func (cl *client) post(path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", cl.sess.CSRF)
	}
	req, _ := http.NewRequest("POST", cl.e.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", cl.e.http.URL)
	return cl.do(req)
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the CSRF token a page's forms carry.
func csrfOf(t testing.TB, p page) string {
	t.Helper()
	m := hiddenCSRF.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no csrf field in page: %s", p.Body)
	}
	return m[1]
}
