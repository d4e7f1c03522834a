package auth_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// clock is the injected time: tests move it instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fastArgon keeps the suite quick; TestPasswordHash checks the production parameters.
var fastArgon = auth.Argon2Params{Time: 1, MemoryK: 1024, Threads: 1}

type env struct {
	t   *testing.T
	db  *store.DB
	svc *auth.Service
	clk *clock
	org domain.Org
	ctx context.Context
}

func newEnv(t *testing.T, db *store.DB, o ...func(*auth.Options)) *env {
	t.Helper()
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	opts := auth.Options{DB: db, Keyring: kr, Now: clk.Now, PublicURL: "http://127.0.0.1:8080", Argon2: fastArgon}
	for _, f := range o {
		f(&opts)
	}
	return &env{t: t, db: db, svc: auth.New(opts), clk: clk, org: storetest.Org(t, db, domain.PlanPro),
		ctx: domain.WithActor(context.Background(), domain.Actor{ID: "system:test"})}
}

var web = auth.ClientMeta{IP: "127.0.0.1", UserAgent: "test-browser"}

func (e *env) user(email string, role domain.Role) auth.User {
	e.t.Helper()
	u, err := e.svc.EnsureUser(e.ctx, e.org.ID, email, "Test "+string(role), role)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) code(secret string) string {
	e.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, e.clk.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

const goodPassword = "correct horse battery staple"

// onboard takes a new user through their invitation: link → password → (TOTP setup) →
// session. It returns the session, the TOTP secret and the recovery codes.
func (e *env) onboard(u auth.User) (auth.Session, string, []string) {
	e.t.Helper()
	link, err := e.svc.NewSignInLink(e.ctx, e.org.ID, u.ID, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.HasPrefix(link, "/signin/link/") {
		e.t.Fatalf("link %q", link)
	}
	st, err := e.svc.SignInLink(e.ctx, strings.TrimPrefix(link, "/signin/link/"), web)
	if err != nil || st.Need != auth.NeedSetPassword || st.Challenge == "" || st.Session != nil {
		e.t.Fatalf("link step %+v %v", st, err)
	}
	st, err = e.svc.SetPassword(e.ctx, st.Challenge, goodPassword, web)
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Session != nil {
		return *st.Session, "", nil
	}
	if st.Need != auth.NeedTOTPSetup || st.TOTPSecret == "" || !strings.HasPrefix(st.TOTPURL, "otpauth://totp/") {
		e.t.Fatalf("after password %+v", st)
	}
	sess, codes, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, e.code(st.TOTPSecret), web)
	if err != nil {
		e.t.Fatal(err)
	}
	return sess, st.TOTPSecret, codes
}

func auditActions(t *testing.T, db *store.DB, orgID, userID string) string {
	return strings.Join(storetest.AuditActions(t, db, orgID, userID), " ")
}

func TestPasswordHash(t *testing.T) {
	h, err := auth.HashPassword(goodPassword, auth.DefaultArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("PHC string %q does not carry the production parameters", h)
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{goodPassword, true}, {goodPassword + " ", false}, {"", false}} {
		ok, err := auth.VerifyPassword(h, tc.pw)
		if err != nil || ok != tc.want {
			t.Fatalf("verify %q: %v %v", tc.pw, ok, err)
		}
	}
	// A hash made with other parameters still verifies: they travel in the string.
	old, _ := auth.HashPassword(goodPassword, fastArgon)
	if ok, err := auth.VerifyPassword(old, goodPassword); !ok || err != nil {
		t.Fatalf("old-parameter hash: %v %v", ok, err)
	}
	if _, err := auth.VerifyPassword("$argon2id$v=19$m=x$y$z", goodPassword); err == nil {
		t.Fatal("malformed hash accepted")
	}
}

func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw, email string
		ok        bool
	}{
		{"short", "a@b.co", false},
		{"elevenchars", "a@b.co", false},
		{"twelve chars", "a@b.co", true},
		{"Alex@Example.com", "alex@example.com", false},
		{"ünïcödé-pässwörd", "a@b.co", true},
	} {
		err := auth.CheckPasswordPolicy(tc.pw, tc.email)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, auth.ErrWeakPassword)) {
			t.Errorf("policy(%q, %q) = %v, want ok=%v", tc.pw, tc.email, err, tc.ok)
		}
	}
}

func TestPasswordAndTOTPSignIn(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.user("Alex.Admin@Example.com", domain.RoleAdmin)
		if u.Email != "alex.admin@example.com" || u.Status != "invited" {
			t.Fatalf("ensured user %+v", u)
		}
		first, secret, codes := e.onboard(u)
		if len(codes) != 10 || first.Role != domain.RoleAdmin || first.CSRF == "" || first.ID == "" {
			t.Fatalf("first session %+v codes %v", first, codes)
		}
		if err := e.svc.SignOut(e.ctx, first.ID); err != nil {
			t.Fatal(err)
		}

		// Password then TOTP, email in any case.
		e.clk.Advance(time.Minute)
		st, err := e.svc.SignInPassword(e.ctx, "", "ALEX.ADMIN@example.com", goodPassword, web)
		if err != nil || st.Need != auth.NeedTOTP || st.Session != nil {
			t.Fatalf("password step %+v %v", st, err)
		}
		if _, _, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, "000000", web); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("wrong code: %v", err)
		}
		code := e.code(secret)
		sess, recovery, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, code, web)
		if err != nil || recovery != nil || sess.UserID != u.ID {
			t.Fatalf("totp %+v %v %v", sess, recovery, err)
		}
		if _, _, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, code, web); !errors.Is(err, auth.ErrChallengeExpired) {
			t.Fatalf("challenge reused: %v", err)
		}
		// The same code, on a new challenge within its 30 s: refused (a code works once).
		st, _ = e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, goodPassword, web)
		if _, _, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, code, web); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("replayed code: %v", err)
		}
		// A recovery code works once, in place of the code.
		if _, _, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, strings.ToUpper(codes[0]), web); err != nil {
			t.Fatalf("recovery code: %v", err)
		}
		st, _ = e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, goodPassword, web)
		if _, _, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, codes[0], web); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("recovery code reused: %v", err)
		}
		// A code from the next step (clock skew) is accepted.
		e.clk.Advance(30 * time.Second)
		e.clk.Advance(30 * time.Second)
		next := func() string {
			c, _ := totp.GenerateCodeCustom(secret, e.clk.Now().Add(30*time.Second), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			return c
		}()
		if _, _, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, next, web); err != nil {
			t.Fatalf("code one step ahead: %v", err)
		}
		if _, err := e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, "wrong password!", web); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		acts := auditActions(t, db, e.org.ID, u.ID)
		for _, want := range []string{"user.created", "user.sign_in_link_used", "user.password_set", "user.totp_enabled", "user.signed_in",
			"user.signed_out", "user.sign_in_failed", "user.recovery_code_used"} {
			if !strings.Contains(acts, want) {
				t.Errorf("audit lacks %s: %s", want, acts)
			}
		}
		// Nothing secret reaches the audit log.
		rows, _, _ := db.ListAudit(e.ctx, e.org.ID, store.AuditFilter{}, store.Page{Limit: 200})
		for _, r := range rows {
			blob := string(r.Before) + string(r.After)
			for _, secretish := range []string{goodPassword, secret, codes[1], "argon2id", first.ID, first.CSRF} {
				if strings.Contains(blob, secretish) {
					t.Fatalf("audit %s holds a secret: %s", r.Action, blob)
				}
			}
		}
	})
}

func TestViewerNeedsNoTOTPAndOwnerDoes(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		sess, secret, _ := e.onboard(e.user("viewer@example.com", domain.RoleViewer))
		if secret != "" || sess.Role != domain.RoleViewer {
			t.Fatalf("viewer %+v", sess)
		}
		st, err := e.svc.SignInPassword(e.ctx, e.org.ID, "viewer@example.com", goodPassword, web)
		if err != nil || st.Session == nil {
			t.Fatalf("viewer password sign-in %+v %v", st, err)
		}
		if _, secret, _ := e.onboard(e.user("owner@example.com", domain.RoleOwner)); secret == "" {
			t.Fatal("owner signed in without setting up TOTP")
		}
	})
}

func TestLockoutAfterTenFailures(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.user("it@example.com", domain.RoleIT)
		e.onboard(u)
		for i := range auth.MaxFailures {
			_, err := e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, "not the password", auth.ClientMeta{IP: "10.0.0.1"})
			if i < auth.MaxFailures-1 && !errors.Is(err, auth.ErrBadCredentials) {
				t.Fatalf("failure %d: %v", i+1, err)
			}
			if i == auth.MaxFailures-1 && !errors.Is(err, auth.ErrLocked) {
				t.Fatalf("failure %d did not lock: %v", i+1, err)
			}
		}
		_, err := e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, goodPassword, web)
		if !errors.Is(err, auth.ErrLocked) || !strings.Contains(err.Error(), "until") {
			t.Fatalf("right password while locked: %v", err)
		}
		if got, _ := db.GetUser(e.ctx, e.org.ID, u.ID); got.Status != "locked" {
			t.Fatalf("status %q", got.Status)
		}
		if !strings.Contains(auditActions(t, db, e.org.ID, u.ID), "user.locked") {
			t.Fatal("lock not audited")
		}
		e.clk.Advance(auth.LockoutFor + time.Second)
		st, err := e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, goodPassword, web)
		if err != nil || st.Session == nil {
			t.Fatalf("after the lock: %+v %v", st, err)
		}
	})
}

func TestRateLimit(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, func(o *auth.Options) {
			o.IPBurst, o.IPEvery, o.EmailBurst, o.EmailEvery = 5, time.Minute, 3, time.Minute
		})
		// One IP spraying many emails is stopped by the IP bucket.
		ip := auth.ClientMeta{IP: "192.0.2.7"}
		var err error
		for i := range 6 {
			_, err = e.svc.SignInPassword(e.ctx, e.org.ID, "nobody"+string(rune('a'+i))+"@example.com", "whatever-password", ip)
		}
		if !errors.Is(err, auth.ErrRateLimited) {
			t.Fatalf("sixth attempt from one IP: %v", err)
		}
		// One email from many IPs is stopped by the email bucket.
		for i := range 4 {
			_, err = e.svc.SignInPassword(e.ctx, e.org.ID, "target@example.com", "whatever-password", auth.ClientMeta{IP: "198.51.100." + string(rune('1'+i))})
		}
		if !errors.Is(err, auth.ErrRateLimited) {
			t.Fatalf("fourth attempt on one email: %v", err)
		}
		// The buckets refill with time.
		e.clk.Advance(2 * time.Minute)
		if _, err := e.svc.SignInPassword(e.ctx, e.org.ID, "target@example.com", "whatever-password", ip); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("after refill: %v", err)
		}
	})
}

func TestSessionTimeouts(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		sess, _, _ := e.onboard(e.user("viewer@example.com", domain.RoleViewer))

		// Idle: activity every 29 minutes keeps it alive…
		for range 3 {
			e.clk.Advance(29 * time.Minute)
			if _, err := e.svc.Authenticate(e.ctx, sess.ID); err != nil {
				t.Fatalf("active session refused: %v", err)
			}
		}
		// …31 minutes of nothing ends it.
		e.clk.Advance(31 * time.Minute)
		if _, err := e.svc.Authenticate(e.ctx, sess.ID); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("idle session: %v", err)
		}

		// Absolute: 12 hours after sign-in, however active.
		st, _ := e.svc.SignInPassword(e.ctx, e.org.ID, "viewer@example.com", goodPassword, web)
		sess = *st.Session
		if want := e.clk.Now().Add(auth.AbsoluteTimeout); !sess.ExpiresAt.Equal(want) {
			t.Fatalf("expires %v, want %v", sess.ExpiresAt, want)
		}
		for elapsed := time.Duration(0); elapsed < auth.AbsoluteTimeout-20*time.Minute; elapsed += 20 * time.Minute {
			e.clk.Advance(20 * time.Minute)
			if _, err := e.svc.Authenticate(e.ctx, sess.ID); err != nil {
				t.Fatalf("at %v: %v", elapsed, err)
			}
		}
		e.clk.Advance(20 * time.Minute)
		if _, err := e.svc.Authenticate(e.ctx, sess.ID); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("past the absolute timeout: %v", err)
		}
	})
}

func TestRevokedSessionRefused(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.user("it@example.com", domain.RoleIT)
		sess, _, _ := e.onboard(u)
		other, _ := e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, goodPassword, web)
		if err := e.svc.SignOut(e.ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		// A stolen copy of the cookie after sign-out is worthless.
		if _, err := e.svc.Authenticate(e.ctx, sess.ID); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("signed-out session: %v", err)
		}
		if _, err := e.svc.Authenticate(e.ctx, other.Session.ID); err != nil {
			t.Fatalf("the other session: %v", err)
		}
		if n, err := db.RevokeUserSessions(e.ctx, e.org.ID, u.ID, "test"); err != nil || n != 1 {
			t.Fatalf("revoke all: %d %v", n, err)
		}
		if _, err := e.svc.Authenticate(e.ctx, other.Session.ID); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("revoked session: %v", err)
		}
		// A removed person's sessions end with them.
		third, _ := e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, goodPassword, web)
		if _, err := db.RemoveUser(e.ctx, e.org.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Authenticate(e.ctx, third.Session.ID); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("removed user's session: %v", err)
		}
		if _, err := e.svc.Authenticate(e.ctx, "made-up"); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("unknown session: %v", err)
		}
	})
}

func TestSessionIDRotatesAtEveryStep(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.user("owner@example.com", domain.RoleOwner)
		first, secret, _ := e.onboard(u)
		seen := map[string]bool{first.ID: true}
		st, _ := e.svc.SignInPassword(e.ctx, e.org.ID, u.Email, goodPassword, web)
		if seen[st.Challenge] {
			t.Fatal("challenge equals a session id")
		}
		seen[st.Challenge] = true
		e.clk.Advance(30 * time.Second)
		second, _, err := e.svc.VerifyTOTP(e.ctx, st.Challenge, e.code(secret), web)
		if err != nil || seen[second.ID] {
			t.Fatalf("second session %v reuses an id", err)
		}
		// The challenge is not a session.
		if _, err := e.svc.Authenticate(e.ctx, st.Challenge); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("challenge as session: %v", err)
		}
		// Re-authentication replaces the session: the old id stops working.
		e.clk.Advance(10 * time.Minute)
		if _, err := e.svc.Reauthenticate(e.ctx, second.ID, "wrong password!", e.code(secret), web); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("reauth with a wrong password: %v", err)
		}
		re, err := e.svc.Reauthenticate(e.ctx, second.ID, goodPassword, e.code(secret), web)
		if err != nil {
			t.Fatal(err)
		}
		if re.ID == second.ID || re.CSRF == second.CSRF || !re.ReauthAt.Equal(e.clk.Now()) || !re.ExpiresAt.Equal(second.ExpiresAt) {
			t.Fatalf("reauth session %+v vs %+v", re, second)
		}
		if _, err := e.svc.Authenticate(e.ctx, second.ID); !errors.Is(err, auth.ErrNoSession) {
			t.Fatalf("pre-reauth id still works: %v", err)
		}
		p, err := e.svc.Principal(e.ctx, re)
		if err != nil || p.Via != "session" || p.UserID != u.ID || p.Role != domain.RoleOwner || p.SessionID == "" || p.SessionID == re.ID ||
			!p.ReauthAt.Equal(re.ReauthAt) || p.Actor() != "user:"+u.ID {
			t.Fatalf("principal %+v %v", p, err)
		}
	})
}

func TestSignInLinkWorksOnce(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.user("new@example.com", domain.RoleIT)
		link, err := e.svc.NewSignInLink(e.ctx, e.org.ID, u.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimPrefix(link, "/signin/link/")
		if _, err := e.svc.SignInLink(e.ctx, tok, web); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SignInLink(e.ctx, tok, web); !errors.Is(err, auth.ErrChallengeExpired) {
			t.Fatalf("second use: %v", err)
		}
		// Invitations last 7 days.
		link, _ = e.svc.NewSignInLink(e.ctx, e.org.ID, u.ID, 0)
		e.clk.Advance(auth.InvitationTTL + time.Minute)
		if _, err := e.svc.SignInLink(e.ctx, strings.TrimPrefix(link, "/signin/link/"), web); !errors.Is(err, auth.ErrChallengeExpired) {
			t.Fatalf("expired link: %v", err)
		}
		// A weak password is refused and the challenge stays usable; challenges expire.
		link, _ = e.svc.NewSignInLink(e.ctx, e.org.ID, u.ID, 0)
		st, _ := e.svc.SignInLink(e.ctx, strings.TrimPrefix(link, "/signin/link/"), web)
		if _, err := e.svc.SetPassword(e.ctx, st.Challenge, "new@example.com", web); !errors.Is(err, auth.ErrWeakPassword) {
			t.Fatalf("email as password: %v", err)
		}
		e.clk.Advance(auth.ChallengeTTL + time.Second)
		if _, err := e.svc.SetPassword(e.ctx, st.Challenge, goodPassword, web); !errors.Is(err, auth.ErrChallengeExpired) {
			t.Fatalf("expired challenge: %v", err)
		}
	})
}

func TestOneEmailInTwoOrgs(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.onboard(e.user("both@example.com", domain.RoleIT))
		second := storetest.Org(t, db, domain.PlanPro)
		e2 := *e
		e2.org = second
		e2.onboard(e2.user("both@example.com", domain.RoleViewer))
		st, err := e.svc.SignInPassword(e.ctx, "", "both@example.com", goodPassword, web)
		if err != nil || len(st.Orgs) != 2 || st.Session != nil {
			t.Fatalf("two orgs: %+v %v", st, err)
		}
		st, err = e.svc.SignInPassword(e.ctx, second.ID, "both@example.com", goodPassword, web)
		if err != nil || st.Session == nil || st.Session.OrgID != second.ID || st.Session.Role != domain.RoleViewer {
			t.Fatalf("picked org: %+v %v", st, err)
		}
	})
}

func TestSignInOIDC(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		u := e.user("sso@example.com", domain.RoleAdmin)
		now := e.clk.Now()
		sess, err := e.svc.SignInOIDC(e.ctx, e.org.ID, "https://idp.example", "sub-1", "SSO@example.com", now, web)
		if err != nil || sess.UserID != u.ID || !sess.ReauthAt.Equal(now) {
			t.Fatalf("oidc %+v %v", sess, err)
		}
		// The session's proof is when the provider authenticated the person: an hour-old
		// provider session is no proof for a reveal; no auth_time is none; the future is now.
		for _, tc := range []struct {
			name           string
			authTime, want time.Time
		}{
			{"provider session an hour old", now.Add(-time.Hour), now.Add(-time.Hour)},
			{"no auth_time", time.Time{}, time.Time{}},
			{"auth_time in the future", now.Add(time.Hour), now},
		} {
			sess, err := e.svc.SignInOIDC(e.ctx, e.org.ID, "https://idp.example", "sub-1", "sso@example.com", tc.authTime, web)
			if err != nil || !sess.ReauthAt.Equal(tc.want) {
				t.Fatalf("%s: proof %v, want %v (%v)", tc.name, sess.ReauthAt, tc.want, err)
			}
		}
		if _, err := e.svc.SignInOIDC(e.ctx, e.org.ID, "https://idp.example", "sub-2", "stranger@example.com", now, web); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("uninvited email: %v", err)
		}
		// The SSO flow audits its refusals (oidc.Service.fail); a row here would be a second one.
		rows, _, err := db.ListAudit(e.ctx, e.org.ID, store.AuditFilter{Action: "user.sign_in_failed"}, store.Page{Limit: 10})
		if err != nil || len(rows) != 0 {
			t.Fatalf("refused SSO sign-in audited by the auth service too: %d rows %v", len(rows), err)
		}
	})
}
