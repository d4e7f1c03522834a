package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// User is an admin of an organization (the store's record).
type User = store.User

// Timeouts and limits of sign-in and sessions.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
	// ReauthWindow is how recent a session's last proof must be to reveal a secret.
	ReauthWindow   = 5 * time.Minute
	ChallengeTTL   = 5 * time.Minute
	InvitationTTL  = 7 * 24 * time.Hour
	MaxFailures    = 10
	LockoutFor     = 15 * time.Minute
	touchEvery     = time.Minute
	linkPathPrefix = "/signin/link/"
)

// Options configure a Service.
type Options struct {
	DB *store.DB
	// Keyring seals TOTP secrets; it may be nil for callers that only create users and
	// links (the admin CLI).
	Keyring *secrets.Keyring
	Logger  *slog.Logger
	// Now is the clock (tests inject one); time.Now when nil.
	Now func() time.Time
	// PublicURL prefixes sign-in links shown to people (e.g. https://lanyard.example.com).
	PublicURL string
	// Issuer names the service in authenticator apps ("Lanyard" when empty).
	Issuer string
	// Argon2 overrides the password hashing cost (DefaultArgon2 when zero).
	Argon2 Argon2Params
	// IPBurst/IPEvery and EmailBurst/EmailEvery shape the sign-in rate limits (per replica).
	IPBurst, EmailBurst int
	IPEvery, EmailEvery time.Duration
}

// Service is the sign-in and session service.
type Service struct {
	db      *store.DB
	kr      *secrets.Keyring
	log     *slog.Logger
	now     func() time.Time
	pub     string
	issuer  string
	argon   Argon2Params
	byIP    *limiter
	byEmail *limiter

	dummyOnce sync.Once
	dummy     string
}

// New builds the service.
func New(o Options) *Service {
	s := &Service{db: o.DB, kr: o.Keyring, log: o.Logger, now: o.Now, pub: strings.TrimRight(o.PublicURL, "/"), issuer: o.Issuer, argon: o.Argon2}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.issuer == "" {
		s.issuer = "Lanyard"
	}
	if s.argon == (Argon2Params{}) {
		s.argon = DefaultArgon2
	}
	if o.IPBurst == 0 {
		o.IPBurst, o.IPEvery = 30, 5*time.Second
	}
	if o.EmailBurst == 0 {
		o.EmailBurst, o.EmailEvery = 15, 20*time.Second
	}
	s.byIP = newLimiter(o.IPBurst, o.IPEvery)
	s.byEmail = newLimiter(o.EmailBurst, o.EmailEvery)
	return s
}

// clock is now at microsecond precision: Postgres keeps no more, so a session read back
// equals the one returned.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// dummyHash is a real hash of a random password: unknown emails are checked against it,
// so they take as long as known ones.
func (s *Service) dummyHash() string {
	s.dummyOnce.Do(func() {
		h, err := HashPassword(randomToken(), s.argon)
		if err != nil {
			panic(err)
		}
		s.dummy = h
	})
	return s.dummy
}

func (s *Service) burnHash(password string) { _, _ = VerifyPassword(s.dummyHash(), password) }

// checkPassword verifies a password, spending the same time when the user has none.
func (s *Service) checkPassword(u User, password string) bool {
	if u.PasswordHash == "" {
		s.burnHash(password)
		return false
	}
	ok, err := VerifyPassword(u.PasswordHash, password)
	if err != nil {
		s.log.Error("stored password hash is malformed", "component", "auth", "user_id", u.ID, "err", err)
		return false
	}
	return ok
}

// allow applies the per-IP and per-email rate limits to one attempt.
func (s *Service) allow(m ClientMeta, email string) error {
	now := s.clock()
	if m.IP != "" && !s.byIP.allow("ip:"+m.IP, now) {
		return ErrRateLimited
	}
	if email != "" && !s.byEmail.allow("email:"+store.NormalizeEmail(email), now) {
		return ErrRateLimited
	}
	return nil
}

// randomToken is 32 random bytes, URL-safe: session ids, challenges and links.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// userCtx makes u the actor of the audit rows a sign-in step writes.
func userCtx(ctx context.Context, u User) context.Context {
	a := domain.ActorFrom(ctx)
	return domain.WithActor(ctx, domain.Actor{ID: "user:" + u.ID, UserID: u.ID, RequestID: a.RequestID})
}

// audit writes one audit row; details must never hold a secret.
func (s *Service) audit(ctx context.Context, orgID, action, targetType, targetID string, details map[string]any) {
	if err := store.WriteAudit(ctx, s.db.SQL, store.AuditFor(ctx, orgID, action, targetType, targetID, nil, details)); err != nil {
		s.log.Error("audit write failed", "component", "auth", "action", action, "err", err)
	}
}

func meta(m ClientMeta, extra map[string]any) map[string]any {
	out := map[string]any{"ip": m.IP, "user_agent": truncate(m.UserAgent, 200)}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// sealTOTP and openTOTP bind a TOTP secret to its user (aad), so a sealed value copied to
// another row does not open.
func (s *Service) sealTOTP(userID, secret string) (string, error) {
	if s.kr == nil {
		return "", errors.New("auth: no keyring configured: cannot store a TOTP secret")
	}
	return s.kr.Seal([]byte(secret), "user:"+userID+":totp")
}

func (s *Service) openTOTP(userID, sealed string) (string, error) {
	if s.kr == nil {
		return "", errors.New("auth: no keyring configured: cannot read a TOTP secret")
	}
	b, err := s.kr.Open(sealed, "user:"+userID+":totp")
	if err != nil {
		return "", fmt.Errorf("open totp secret of user %s: %w", userID, err)
	}
	return string(b), nil
}
