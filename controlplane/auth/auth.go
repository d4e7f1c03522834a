// Package auth makes admins people: users with a role per organization, signing in with a
// password and TOTP (or single sign-on), holding server-side sessions, and owning the API
// tokens they mint. The console and the API both authenticate through it.
package auth

import (
	"errors"
	"net/http"
	"time"

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
)

// lockedError is ErrLocked with the time the lock ends, for the person to read.
type lockedError struct{ until time.Time }

func (e lockedError) Error() string {
	return "this account is locked after too many failed sign-ins until " + e.until.UTC().Format("15:04 MST") + "; try again then"
}
func (e lockedError) Is(target error) bool { return target == ErrLocked }

// badCodeError is ErrBadCredentials for a second factor, with a message that fits it.
type badCodeError struct{}

func (badCodeError) Error() string {
	return "the code is wrong or was already used; enter the current code"
}
func (badCodeError) Is(target error) bool { return target == ErrBadCredentials }

// linkError is ErrChallengeExpired for a one-time sign-in link.
type linkError struct{}

func (linkError) Error() string {
	return "this sign-in link was already used or has expired; ask an admin of your organization for a new one"
}
func (linkError) Is(target error) bool { return target == ErrChallengeExpired }

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

	// publicID is the session's row id (not a credential), for the Principal and listings.
	publicID string
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
