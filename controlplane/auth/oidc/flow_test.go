package oidc_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/auth/fakeoidc"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The whole flow over loopback HTTP: start → provider login → callback → SessionStarter
// with the org and the verified email; then the same callback replayed is refused.
func TestSignInFlow(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		b := newBrowser(t)
		authURL := b.startSSO(e)
		au, _ := url.Parse(authURL)
		q := au.Query()
		if !strings.HasPrefix(authURL, e.op.Issuer()+"/authorize?") || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("client_id") != clientID ||
			q.Get("redirect_uri") != e.rpURL+oidc.CallbackPath || q.Get("scope") != "openid email profile" {
			t.Fatalf("authorize URL %s", authURL)
		}
		ck := b.ssoCookie(e)
		if ck == nil || !strings.HasPrefix(ck.Value, e.org.ID+".") {
			t.Fatalf("no browser-binding cookie: %+v", ck)
		}
		cb := b.login(authURL, "alice@example.com")
		resp, _ := b.get(cb)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Fatalf("callback: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		calls := e.startCalls()
		alice := e.op.Users()[0]
		if len(calls) != 1 || calls[0] != (startCall{e.org.ID, e.op.Issuer(), alice.Subject, "alice@example.com"}) {
			t.Fatalf("session starter calls %+v", calls)
		}
		if b.ssoCookie(e) != nil {
			t.Fatal("the browser-binding cookie outlived its callback")
		}
		if f := e.failures(); len(f) != 0 {
			t.Fatalf("failures audited on success: %v", f)
		}

		// Replay: same URL, with the binding cookie put back as an attacker holding both would.
		u, _ := url.Parse(e.rpURL)
		b.jar.SetCookies(u, []*http.Cookie{{Name: oidc.CookieName, Value: ck.Value, Path: "/auth/sso/"}})
		resp, _ = b.get(cb)
		if got := resp.Header.Get("Location"); got != refusedAt(oidc.CodeStateInvalid, e.org.ID) {
			t.Fatalf("replayed callback → %d %s", resp.StatusCode, got)
		}
		if len(e.startCalls()) != 1 {
			t.Fatal("a replayed callback started a session")
		}
		if f := e.failures(); len(f) != 1 || f[0] != oidc.CodeStateInvalid {
			t.Fatalf("replay audit %v", f)
		}
		checkNoSecrets(t, e, cb)
	})
}

// refusedAt is where a refusal sends the browser: the sign-in page with the code, and the
// org when the refusal could tell which org the sign-in was for.
func refusedAt(code, orgID string) string {
	if orgID == "" {
		return oidc.SignInPath + "?error=" + code
	}
	return oidc.SignInPath + "?error=" + code + "&org=" + orgID
}

// checkNoSecrets fails if the code, state, client secret or a token reached the audit
// log or the log output.
func checkNoSecrets(t *testing.T, e *env, callbackURL string) {
	t.Helper()
	cu, _ := url.Parse(callbackURL)
	secrets := map[string]string{"client secret": clientSecret}
	if c := cu.Query().Get("code"); c != "" {
		secrets["code"] = c
	}
	if s := cu.Query().Get("state"); s != "" {
		secrets["state"] = s
	}
	audit, logs := e.allAudit(), e.logs.String()
	for what, v := range secrets {
		if strings.Contains(audit, v) {
			t.Errorf("the audit log holds the %s", what)
		}
		if strings.Contains(logs, v) {
			t.Errorf("the log holds the %s", what)
		}
	}
	for _, marker := range []string{"eyJ", "access_token", "id_token="} {
		if strings.Contains(audit, marker) || strings.Contains(logs, marker) {
			t.Errorf("a token (%q) reached the audit or log:\n%s\n%s", marker, audit, logs)
		}
	}
}

func TestSignInRefusals(t *testing.T) {
	type tc struct {
		name  string
		email string
		// before runs after the start, before the provider login.
		before func(e *env)
		// deliver sends the callback; nil means the same browser GETs it unchanged.
		deliver func(e *env, b *browser, cb string) *http.Response
		want    string
		audited bool
	}
	rewrite := func(cb string, f func(url.Values)) string {
		u, _ := url.Parse(cb)
		q := u.Query()
		f(q)
		u.RawQuery = q.Encode()
		return u.String()
	}
	cases := []tc{
		{name: "state tampered", email: "alice@example.com", deliver: func(e *env, b *browser, cb string) *http.Response {
			r, _ := b.get(rewrite(cb, func(q url.Values) { q.Set("state", q.Get("state")+"x") }))
			return r
		}, want: oidc.CodeStateInvalid, audited: true},
		{name: "state missing", email: "alice@example.com", deliver: func(e *env, b *browser, cb string) *http.Response {
			r, _ := b.get(rewrite(cb, func(q url.Values) { q.Del("state") }))
			return r
		}, want: oidc.CodeStateInvalid, audited: true},
		{name: "callback in another browser", email: "alice@example.com", deliver: func(e *env, b *browser, cb string) *http.Response {
			r, _ := newBrowser(t).get(cb)
			return r
		}, want: oidc.CodeBrowserMismatch, audited: true},
		{name: "state of another browser's sign-in", email: "alice@example.com", deliver: func(e *env, b *browser, cb string) *http.Response {
			// A login-CSRF attempt: the attacker's own callback, sent to the victim's browser
			// (which has a sign-in of its own in flight).
			victim := newBrowser(t)
			victim.startSSO(e)
			r, _ := victim.get(cb)
			return r
		}, want: oidc.CodeBrowserMismatch, audited: true},
		{name: "expired state", email: "alice@example.com", before: func(e *env) { e.clock.Advance(10*time.Minute + time.Second) },
			want: oidc.CodeStateExpired, audited: true},
		{name: "provider error", email: "alice@example.com", deliver: func(e *env, b *browser, cb string) *http.Response {
			r, _ := b.get(rewrite(cb, func(q url.Values) { q.Del("code"); q.Set("error", "access_denied") }))
			return r
		}, want: oidc.CodeProviderDenied, audited: true},
		{name: "iss parameter of another provider", email: "alice@example.com", deliver: func(e *env, b *browser, cb string) *http.Response {
			r, _ := b.get(rewrite(cb, func(q url.Values) { q.Set("iss", "https://evil.example") }))
			return r
		}, want: oidc.CodeTokenInvalid, audited: true},
		{name: "wrong audience", email: "alice@example.com", before: func(e *env) { e.op.SetTamper(fakeoidc.Tamper{Audience: "another-client"}) },
			want: oidc.CodeTokenInvalid, audited: true},
		{name: "signed with a key not in the JWKS", email: "alice@example.com", before: func(e *env) { e.op.SetTamper(fakeoidc.Tamper{ForeignKey: true}) },
			want: oidc.CodeTokenInvalid, audited: true},
		{name: "expired ID token", email: "alice@example.com", before: func(e *env) { e.op.SetTamper(fakeoidc.Tamper{IDTokenTTL: -time.Minute}) },
			want: oidc.CodeTokenInvalid, audited: true},
		{name: "wrong nonce", email: "alice@example.com", before: func(e *env) { e.op.SetTamper(fakeoidc.Tamper{Nonce: "replayed-token-nonce"}) },
			want: oidc.CodeNonceMismatch, audited: true},
		{name: "email not verified", email: "bob@example.com", want: oidc.CodeEmailUnverified, audited: true},
		{name: "domain not allowed", email: "carol@other.example", want: oidc.CodeDomainNotAllowed, audited: true},
		{name: "no such user", email: "alice@example.com", before: func(e *env) { e.startErr = fmt.Errorf("sign in: %w", auth.ErrBadCredentials) },
			want: oidc.CodeNoAccount, audited: true},
		{name: "user locked", email: "alice@example.com", before: func(e *env) { e.startErr = auth.ErrLocked },
			want: oidc.CodeLocked, audited: true},
		{name: "SSO disabled during the sign-in", email: "alice@example.com", before: func(e *env) { e.configure(e.op.Issuer(), false) },
			want: oidc.CodeUnavailable, audited: true},
		{name: "code already redeemed at the provider", email: "alice@example.com", deliver: func(e *env, b *browser, cb string) *http.Response {
			// Someone else redeemed the code first (without the verifier): the provider burns it.
			cu, _ := url.Parse(cb)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {cu.Query().Get("code")},
				"redirect_uri": {e.rpURL + oidc.CallbackPath}, "code_verifier": {strings.Repeat("a", 43)}}
			req, _ := http.NewRequest(http.MethodPost, e.op.Issuer()+"/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(clientID, clientSecret)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			r, _ := b.get(cb)
			return r
		}, want: oidc.CodeTokenInvalid, audited: true},
	}
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, db)
				b := newBrowser(t)
				authURL := b.startSSO(e)
				if c.before != nil {
					c.before(e)
				}
				cb := b.login(authURL, c.email)
				var resp *http.Response
				if c.deliver != nil {
					resp = c.deliver(e, b, cb)
				} else {
					resp, _ = b.get(cb)
				}
				if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != refusedAt(c.want, e.org.ID) {
					t.Fatalf("got %d → %q, want /signin?error=%s\nlogs:\n%s", resp.StatusCode, got, c.want, e.logs.String())
				}
				if calls := e.startCalls(); len(calls) != 0 {
					t.Fatalf("session started: %+v", calls)
				}
				f := e.failures()
				if c.audited && (len(f) != 1 || f[0] != c.want) {
					t.Fatalf("audited failures %v, want [%s]", f, c.want)
				}
				if oidc.ErrorMessage(c.want) == oidc.ErrorMessage("no-such-code") && c.want != oidc.CodeInternal {
					t.Fatalf("code %s has no message of its own", c.want)
				}
				checkNoSecrets(t, e, cb)
			})
		}
	})
}

// A second provider that claims to be the first: its tokens carry the first one's issuer,
// so a relying party configured for the second refuses them.
func TestSecondProviderClaimingAnotherIssuer(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		impostor := e.newOP(&fakeoidc.Tamper{Issuer: e.op.Issuer()})
		e.configure(impostor.Issuer(), true)
		b := newBrowser(t)
		authURL := b.startSSO(e)
		if !strings.HasPrefix(authURL, impostor.Issuer()+"/") {
			t.Fatalf("start went to %s", authURL)
		}
		resp, _ := b.get(b.login(authURL, "alice@example.com"))
		if got := resp.Header.Get("Location"); got != refusedAt(oidc.CodeTokenInvalid, e.org.ID) {
			t.Fatalf("impostor's token → %s", got)
		}
		if len(e.startCalls()) != 0 {
			t.Fatal("session started")
		}
	})
}

// Providers that keep the email out of the ID token: it comes from UserInfo.
func TestEmailFromUserInfo(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.op.SetTamper(fakeoidc.Tamper{EmailOnlyInUserInfo: true})
		b := newBrowser(t)
		resp, _ := b.get(b.login(b.startSSO(e), "alice@example.com"))
		if resp.Header.Get("Location") != "/" {
			t.Fatalf("callback → %s\n%s", resp.Header.Get("Location"), e.logs.String())
		}
		if calls := e.startCalls(); len(calls) != 1 || calls[0].email != "alice@example.com" {
			t.Fatalf("calls %+v", calls)
		}
		if e.op.Stats().UserInfo != 1 {
			t.Fatalf("UserInfo calls %d", e.op.Stats().UserInfo)
		}
		// Unverified at UserInfo is still unverified.
		resp, _ = b.get(b.login(b.startSSO(e), "bob@example.com"))
		if resp.Header.Get("Location") != refusedAt(oidc.CodeEmailUnverified, e.org.ID) {
			t.Fatalf("bob → %s", resp.Header.Get("Location"))
		}
	})
}

// The email typed on the sign-in page becomes the provider's login_hint, which the fake
// uses to preselect the account.
func TestLoginHint(t *testing.T) {
	e := newEnv(t, storetest.NewSQLite(t))
	b := newBrowser(t)
	resp, _ := b.get(e.rpURL + oidc.StartPath + "?org=" + e.org.ID + "&email=" + url.QueryEscape("bob@example.com"))
	au, _ := url.Parse(resp.Header.Get("Location"))
	if au.Query().Get("login_hint") != "bob@example.com" {
		t.Fatalf("authorize URL %s", au)
	}
	_, page := b.get(au.String())
	if !strings.Contains(page, `value="bob@example.com" checked`) {
		t.Fatalf("the hinted account is not preselected:\n%s", page)
	}
}

func TestStartRefusals(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		b := newBrowser(t)
		for name, org := range map[string]string{"no org": "", "unknown org": "0190-not-an-org"} {
			resp, _ := b.get(e.rpURL + oidc.StartPath + "?org=" + url.QueryEscape(org))
			if resp.Header.Get("Location") != refusedAt(oidc.CodeUnavailable, "") {
				t.Fatalf("%s → %d %s", name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		e.configure(e.op.Issuer(), false)
		resp, _ := b.get(e.rpURL + oidc.StartPath + "?org=" + e.org.ID)
		if resp.Header.Get("Location") != refusedAt(oidc.CodeUnavailable, "") || b.ssoCookie(e) != nil {
			t.Fatalf("disabled → %s", resp.Header.Get("Location"))
		}
		// A provider that does not answer discovery.
		e.configure("http://127.0.0.1:1", true)
		resp, _ = b.get(e.rpURL + oidc.StartPath + "?org=" + e.org.ID)
		if resp.Header.Get("Location") != refusedAt(oidc.CodeProviderDown, e.org.ID) {
			t.Fatalf("provider down → %s", resp.Header.Get("Location"))
		}
		if f := e.failures(); len(f) != 1 || f[0] != oidc.CodeProviderDown {
			t.Fatalf("audited %v", f)
		}
	})
}

func TestErrorMessage(t *testing.T) {
	codes := []string{oidc.CodeUnavailable, oidc.CodeProviderDown, oidc.CodeBusy, oidc.CodeStateInvalid, oidc.CodeStateExpired,
		oidc.CodeBrowserMismatch, oidc.CodeProviderDenied, oidc.CodeTokenInvalid, oidc.CodeNonceMismatch, oidc.CodeEmailMissing,
		oidc.CodeEmailUnverified, oidc.CodeDomainNotAllowed, oidc.CodeNoAccount, oidc.CodeLocked, oidc.CodeRateLimited, oidc.CodeInternal}
	seen := map[string]string{}
	for _, c := range codes {
		m := oidc.ErrorMessage(c)
		if m == "" {
			t.Errorf("%s: no message", c)
		}
		if prev, dup := seen[m]; dup {
			t.Errorf("%s and %s share a message", c, prev)
		}
		seen[m] = c
	}
	if oidc.ErrorMessage("") != "" {
		t.Error("no code should mean no message")
	}
	if oidc.ErrorMessage("<script>") != oidc.ErrorMessage(oidc.CodeInternal) {
		t.Error("an unknown code should get the generic message, never echo itself")
	}
}

// A re-authentication (before revealing a secret) makes the provider ask again
// (prompt=login, max_age=0), and the session starter gets the provider's auth_time, which
// the auth service records as the session's proof; a plain sign-in asks for neither.
func TestReauthAsksTheProviderAgain(t *testing.T) {
	e := newEnv(t, storetest.NewSQLite(t))
	b := newBrowser(t)
	for _, tc := range []struct {
		extra  string
		prompt string
		maxAge string
	}{{"", "", ""}, {"&reauth=1", "login", "0"}} {
		authURL := b.startSSOWith(e, tc.extra)
		au, _ := url.Parse(authURL)
		if q := au.Query(); q.Get("prompt") != tc.prompt || q.Get("max_age") != tc.maxAge {
			t.Fatalf("start%s: prompt %q max_age %q", tc.extra, q.Get("prompt"), q.Get("max_age"))
		}
		before := time.Now().Add(-time.Second).Truncate(time.Second)
		if resp, _ := b.get(b.login(authURL, "alice@example.com")); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("callback: %d", resp.StatusCode)
		}
		e.mu.Lock()
		at := e.authTimes[len(e.authTimes)-1]
		e.mu.Unlock()
		if at.Before(before) || at.After(time.Now()) {
			t.Fatalf("auth_time %v, want the login just made (after %v)", at, before)
		}
	}
}

// The browser comes back where the sign-in started (a re-authentication returns to the
// reveal that asked for it), and only to a local path: an outside or malformed next is home.
func TestSignInReturnsToALocalNext(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		for _, tc := range []struct{ next, want string }{
			{"/devices/d1/secrets?reveal=1", "/devices/d1/secrets?reveal=1"},
			{"", "/"},
			{"//evil.example/steal", "/"},
			{"https://evil.example/", "/"},
			{"/signin", "/"},
		} {
			b := newBrowser(t)
			authURL := b.startSSOWith(e, "&reauth=1&next="+url.QueryEscape(tc.next))
			resp, _ := b.get(b.login(authURL, "alice@example.com"))
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
				t.Errorf("next %q: callback %d → %q, want %q", tc.next, resp.StatusCode, resp.Header.Get("Location"), tc.want)
			}
		}
	})
}
