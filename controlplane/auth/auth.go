// Package auth makes admins people: users with a role per organization, signing in with a
// password and TOTP (or single sign-on), holding server-side sessions, and owning the API
// tokens they mint. The console and the API both authenticate through it.
package auth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// CookieName is the console's session cookie.
const CookieName = "lanyard_session"

// Errors callers match with errors.Is; their messages are safe to show a person.
var (
	ErrBadCredentials   = errors.New("the email or password is wrong")
	ErrLocked           = errors.New("this account is locked after too many failed sign-ins; try again later")
	ErrRateLimited      = errors.New("too many sign-in attempts; wait a minute and try again")
	ErrNoSession        = errors.New("you are signed out; sign in again")
	ErrChallengeExpired = errors.New("this sign-in step has expired; start again")
	ErrWeakPassword     = errors.New("the password must have at least 12 characters and must not be your email")
	errNotImplemented   = errors.New("auth: not implemented yet")
)

// ClientMeta describes where a sign-in comes from, for the rate limit and the audit log.
type ClientMeta struct{ IP, UserAgent string }

// Session is a signed-in person.
type Session struct {
	ID     string // opaque cookie value (only its hash is stored)
	CSRF   string // synchronizer token: form field "csrf" or header X-CSRF-Token
	UserID string
	OrgID  string
	Email  string
	Name   string
	Role   domain.Role
	// ReauthAt is the last password/TOTP/SSO proof; revealing a secret needs it recent.
	ReauthAt  time.Time
	ExpiresAt time.Time
}

// OrgChoice is one organization an email is an admin of.
type OrgChoice struct{ ID, Name string }

// Step is the outcome of a first factor (password or one-time link).
type Step struct {
	Session    *Session    // set when signed in
	Challenge  string      // one-use token (5 min) for the next step when Session is nil
	Need       string      // "totp" | "totp_setup" | "set_password"
	TOTPURL    string      // otpauth:// URL when Need == "totp_setup"
	TOTPSecret string      // the same secret, for typing by hand
	Orgs       []OrgChoice // the email is an admin in several orgs: pick one and call again
}

// Service is the sign-in and session service.
type Service struct{}

func (s *Service) SignInPassword(ctx context.Context, orgID, email, password string, m ClientMeta) (Step, error) {
	return Step{}, errNotImplemented
}
func (s *Service) SignInLink(ctx context.Context, linkToken string, m ClientMeta) (Step, error) {
	return Step{}, errNotImplemented
}
func (s *Service) SetPassword(ctx context.Context, challenge, password string, m ClientMeta) (Step, error) {
	return Step{}, errNotImplemented
}

// VerifyTOTP completes a challenge; recovery codes are returned only when TOTP was just set up.
func (s *Service) VerifyTOTP(ctx context.Context, challenge, code string, m ClientMeta) (Session, []string, error) {
	return Session{}, nil, errNotImplemented
}
func (s *Service) SignInOIDC(ctx context.Context, orgID, issuer, subject, email string, m ClientMeta) (Session, error) {
	return Session{}, errNotImplemented
}

// Authenticate returns the live session for a cookie value (idle 30 min, absolute 12 h).
func (s *Service) Authenticate(ctx context.Context, sessionID string) (Session, error) {
	return Session{}, ErrNoSession
}
func (s *Service) Reauthenticate(ctx context.Context, sessionID, password, totpCode string, m ClientMeta) (Session, error) {
	return Session{}, errNotImplemented
}
func (s *Service) SignOut(ctx context.Context, sessionID string) error { return errNotImplemented }

// Principal is the API caller for a session, with the person's current role.
func (s *Service) Principal(ctx context.Context, sess Session) (api.Principal, error) {
	return api.Principal{}, errNotImplemented
}

// SetSessionCookie sets the session cookie (HttpOnly, SameSite=Lax, Secure when secure).
func SetSessionCookie(w http.ResponseWriter, r *http.Request, sess Session, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: sess.ID, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: secure, Expires: sess.ExpiresAt})
}

// ClearSessionCookie removes the session cookie.
func ClearSessionCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: secure, MaxAge: -1})
}
