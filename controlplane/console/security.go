package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"github.com/lanyardhq/lanyard/internal/localpath"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/auth"
)

// Cookies the console sets besides the auth service's session cookie.
const (
	// preCookie carries the sign-in forms' CSRF token before there is a session (double
	// submit: the form's hidden field must equal it), so another site cannot sign a
	// browser in to an attacker's account ("login CSRF").
	preCookie = "lanyard_pre"
	// challengeCookie holds the one-use challenge between sign-in steps, so it never
	// appears in a page or a URL.
	challengeCookie = "lanyard_challenge"
	flashCookie     = "lanyard_flash"
	maxFormBytes    = 1 << 20
)

// request is what a handler knows about the caller.
type request struct {
	Sess     auth.Session
	P        api.Principal
	SignedIn bool
	// PreCSRF is the pre-session CSRF token (sign-in pages).
	PreCSRF string
	flash   *flash
	// people names user actors ("user:<id>" → "Name <email>") once a page asked for
	// them with Console.namePeople.
	people map[string]string
}

// CSRF is the token forms carry: the session's when signed in, the pre-session one otherwise.
func (rq *request) CSRF() string {
	if rq.SignedIn {
		return rq.Sess.CSRF
	}
	return rq.PreCSRF
}

// authenticate resolves the session cookie to a session and the API principal.
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request, rq *request) error {
	ck, err := r.Cookie(auth.CookieName)
	if err != nil || ck.Value == "" {
		return auth.ErrNoSession
	}
	sess, err := c.opts.Auth.Authenticate(r.Context(), ck.Value)
	if err != nil {
		if errors.Is(err, auth.ErrNoSession) {
			auth.ClearSessionCookie(w, c.opts.Secure)
		}
		return err
	}
	p, err := c.opts.Auth.Principal(r.Context(), sess)
	if err != nil {
		return err
	}
	rq.Sess, rq.P, rq.SignedIn = sess, p, true
	return nil
}

// sameOrigin is the second CSRF defence: a browser sends Origin on every POST (and
// Sec-Fetch-Site on every request); either must say the form came from this site.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// checkCSRF accepts a state change only with the expected token (form field "csrf" or
// header X-CSRF-Token, compared in constant time) from a same-origin page.
func checkCSRF(r *http.Request, want string) error {
	if !sameOrigin(r) {
		return errCSRF
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errCSRF
	}
	return nil
}

var errCSRF = errors.New("this form has expired or did not come from this site; reload the page and try again")

// preCSRF returns the pre-session token, setting its cookie when the browser has none.
func (c *Console) preCSRF(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(preCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	v := randomToken()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: v, Path: "/", HttpOnly: true, Secure: c.opts.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	return v
}

func (c *Console) setChallenge(w http.ResponseWriter, challenge string) {
	http.SetCookie(w, &http.Cookie{Name: challengeCookie, Value: challenge, Path: "/signin", HttpOnly: true,
		Secure: c.opts.Secure, SameSite: http.SameSiteStrictMode, MaxAge: 300})
}

func (c *Console) clearChallenge(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: challengeCookie, Value: "", Path: "/signin", HttpOnly: true,
		Secure: c.opts.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func challengeFrom(r *http.Request) string {
	if ck, err := r.Cookie(challengeCookie); err == nil {
		return ck.Value
	}
	return ""
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// safeNext is the one rule for where a sign-in may return to (shared with SSO).
func safeNext(next string) string { return localpath.Safe(next) }

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
