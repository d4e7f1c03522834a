package console

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"net/http"
	"net/url"
	"strings"

	"github.com/pquerna/otp"

	"github.com/lanyardhq/lanyard/controlplane/auth"
)

// signinView is the data of every sign-in step page.
type signinView struct {
	Email, OrgID, Next string
	Error              string
	Orgs               []orgOption
	// SSO is the "Sign in with SSO" link for the chosen organization, when it has SSO.
	SSO string
	// TOTP setup
	TOTPSecret string
	TOTPQR     template.URL
	Setup      bool
	// Recovery codes, shown once after TOTP setup.
	Codes []string
	Token string // one-time link token
}

type orgOption struct {
	ID, Name string
	SSO      string
}

func (c *Console) ssoLink(r *http.Request, orgID string) string {
	if orgID == "" || c.opts.SSOEnabled == nil || !c.opts.SSOEnabled(r.Context(), orgID) {
		return ""
	}
	return "/auth/sso/start?org=" + url.QueryEscape(orgID)
}

func signinPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	v := signinView{Next: safeNext(q.Get("next")), OrgID: q.Get("org")}
	v.SSO = c.ssoLink(r, v.OrgID)
	if code := q.Get("error"); code != "" {
		v.Error = "Single sign-on did not complete."
		if c.opts.SSOError != nil {
			v.Error = c.opts.SSOError(code)
		}
	}
	if msg := q.Get("m"); msg == "expired" {
		v.Error = auth.ErrChallengeExpired.Error()
	}
	return c.render(w, rq, http.StatusOK, "signin", "", "Sign in", "", v)
}

// authRefusal maps the auth service's errors (whose messages are safe to show) to a status.
func authRefusal(err error) (int, bool) {
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return http.StatusUnauthorized, true
	case errors.Is(err, auth.ErrLocked):
		return http.StatusForbidden, true
	case errors.Is(err, auth.ErrRateLimited):
		return http.StatusTooManyRequests, true
	case errors.Is(err, auth.ErrWeakPassword):
		return http.StatusUnprocessableEntity, true
	case errors.Is(err, auth.ErrChallengeExpired), errors.Is(err, auth.ErrNoSession):
		return http.StatusUnauthorized, true
	}
	return 0, false
}

func signinPost(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := checkCSRF(r, rq.PreCSRF); err != nil {
		return err
	}
	v := signinView{Email: strings.TrimSpace(r.PostFormValue("email")), OrgID: r.PostFormValue("org"), Next: safeNext(r.PostFormValue("next"))}
	step, err := c.opts.Auth.SignInPassword(r.Context(), v.OrgID, v.Email, r.PostFormValue("password"), clientMeta(r))
	if err != nil {
		status, ok := authRefusal(err)
		if !ok {
			return fmt.Errorf("sign in: %w", err)
		}
		v.Error = err.Error()
		v.SSO = c.ssoLink(r, v.OrgID)
		return c.render(w, rq, status, "signin", "", "Sign in", "", v)
	}
	return c.continueSignIn(w, r, rq, step, v)
}

// continueSignIn takes a first factor's outcome to the next step.
func (c *Console) continueSignIn(w http.ResponseWriter, r *http.Request, rq *request, step auth.Step, v signinView) error {
	switch {
	case step.Session != nil:
		c.clearChallenge(w)
		auth.SetSessionCookie(w, r, *step.Session, c.opts.Secure)
		http.Redirect(w, r, v.Next, http.StatusSeeOther)
		return nil
	case len(step.Orgs) > 0:
		for _, o := range step.Orgs {
			v.Orgs = append(v.Orgs, orgOption{ID: o.ID, Name: o.Name, SSO: c.ssoLink(r, o.ID)})
		}
		return c.render(w, rq, http.StatusOK, "signin", "", "Choose an organization", "", v)
	}
	c.setChallenge(w, step.Challenge)
	switch step.Need {
	case "totp":
		http.Redirect(w, r, "/signin/totp?next="+url.QueryEscape(v.Next), http.StatusSeeOther)
		return nil
	case "totp_setup":
		v.Setup, v.TOTPSecret = true, step.TOTPSecret
		qr, err := qrDataURL(step.TOTPURL)
		if err != nil {
			return err
		}
		v.TOTPQR = qr
		return c.render(w, rq, http.StatusOK, "totp", "", "Set up two-factor authentication", "", v)
	case "set_password":
		return c.render(w, rq, http.StatusOK, "password", "", "Choose a password", "", v)
	}
	return fmt.Errorf("sign in: unknown next step %q", step.Need)
}

// qrDataURL renders the otpauth URL as a PNG QR code inline (img-src allows data:).
func qrDataURL(otpURL string) (template.URL, error) {
	key, err := otp.NewKeyFromURL(otpURL)
	if err != nil {
		return "", fmt.Errorf("totp setup: %w", err)
	}
	img, err := key.Image(200, 200)
	if err != nil {
		return "", fmt.Errorf("totp setup: qr: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	// The value is our own PNG bytes, base64-encoded: safe as a data: URL.
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

func totpPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	if challengeFrom(r) == "" {
		http.Redirect(w, r, "/signin?m=expired", http.StatusSeeOther)
		return nil
	}
	return c.render(w, rq, http.StatusOK, "totp", "", "Two-factor authentication", "", signinView{Next: safeNext(r.URL.Query().Get("next"))})
}

func totpPost(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := checkCSRF(r, rq.PreCSRF); err != nil {
		return err
	}
	v := signinView{Next: safeNext(r.PostFormValue("next"))}
	challenge := challengeFrom(r)
	if challenge == "" {
		http.Redirect(w, r, "/signin?m=expired", http.StatusSeeOther)
		return nil
	}
	code := strings.ReplaceAll(strings.TrimSpace(r.PostFormValue("code")), " ", "")
	sess, codes, err := c.opts.Auth.VerifyTOTP(r.Context(), challenge, code, clientMeta(r))
	if errors.Is(err, auth.ErrChallengeExpired) {
		c.clearChallenge(w)
		http.Redirect(w, r, "/signin?m=expired", http.StatusSeeOther)
		return nil
	}
	if err != nil {
		status, ok := authRefusal(err)
		if !ok {
			return fmt.Errorf("verify totp: %w", err)
		}
		v.Error = err.Error()
		return c.render(w, rq, status, "totp", "", "Two-factor authentication", "", v)
	}
	c.clearChallenge(w)
	auth.SetSessionCookie(w, r, sess, c.opts.Secure)
	if len(codes) > 0 {
		// Shown once: the page is no-store and the codes are not kept anywhere readable.
		v.Codes = codes
		signed := &request{Sess: sess, SignedIn: true}
		return c.render(w, signed, http.StatusOK, "recovery", "", "Save your recovery codes", "", v)
	}
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
	return nil
}

// linkPage shows a button rather than using the link on GET: mail scanners open links,
// and a one-time link must be spent only by the person.
func linkPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	return c.render(w, rq, http.StatusOK, "link", "", "Welcome to Lanyard", "", signinView{Token: r.PathValue("token"), Next: "/"})
}

func linkPost(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := checkCSRF(r, rq.PreCSRF); err != nil {
		return err
	}
	v := signinView{Next: "/", Token: r.PathValue("token")}
	step, err := c.opts.Auth.SignInLink(r.Context(), r.PathValue("token"), clientMeta(r))
	if err != nil {
		status, ok := authRefusal(err)
		if !ok {
			return fmt.Errorf("sign-in link: %w", err)
		}
		v.Error = "This sign-in link is not valid any more (it was used, or it expired). Ask an admin for a new one."
		if !errors.Is(err, auth.ErrBadCredentials) && !errors.Is(err, auth.ErrChallengeExpired) {
			v.Error = err.Error()
		}
		return c.render(w, rq, status, "link", "", "Welcome to Lanyard", "", v)
	}
	return c.continueSignIn(w, r, rq, step, v)
}

func setPasswordPost(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := checkCSRF(r, rq.PreCSRF); err != nil {
		return err
	}
	v := signinView{Next: safeNext(r.PostFormValue("next"))}
	challenge := challengeFrom(r)
	if challenge == "" {
		http.Redirect(w, r, "/signin?m=expired", http.StatusSeeOther)
		return nil
	}
	pw := r.PostFormValue("password")
	if pw != r.PostFormValue("confirm") {
		v.Error = "The two passwords are not the same."
		return c.render(w, rq, http.StatusUnprocessableEntity, "password", "", "Choose a password", "", v)
	}
	step, err := c.opts.Auth.SetPassword(r.Context(), challenge, pw, clientMeta(r))
	if err != nil {
		status, ok := authRefusal(err)
		if !ok {
			return fmt.Errorf("set password: %w", err)
		}
		v.Error = err.Error()
		return c.render(w, rq, status, "password", "", "Choose a password", "", v)
	}
	return c.continueSignIn(w, r, rq, step, v)
}

func signoutPost(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.opts.Auth.SignOut(r.Context(), rq.Sess.ID); err != nil && !errors.Is(err, auth.ErrNoSession) {
		return fmt.Errorf("sign out: %w", err)
	}
	auth.ClearSessionCookie(w, c.opts.Secure)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// reauthView asks a signed-in person to prove it is still them before a reveal.
type reauthView struct {
	Next, Error string
	// SSO re-authenticates at the identity provider (which must ask again), for people
	// who sign in with SSO and have no password; "" when the org has no SSO.
	SSO string
}

// reauthSSO is the SSO link of the re-authentication page: the provider must ask again,
// and the browser comes back to next (the reveal that asked for it).
func (c *Console) reauthSSO(r *http.Request, rq *request, next string) string {
	if l := c.ssoLink(r, rq.Sess.OrgID); l != "" {
		return l + "&reauth=1&next=" + url.QueryEscape(safeNext(next))
	}
	return ""
}

func reauthPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	return c.render(w, rq, http.StatusOK, "reauth", "", "Confirm it is you", "", reauthView{Next: safeNext(r.URL.Query().Get("next")), SSO: c.reauthSSO(r, rq, r.URL.Query().Get("next"))})
}

func reauthPost(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v := reauthView{Next: safeNext(r.PostFormValue("next")), SSO: c.reauthSSO(r, rq, r.PostFormValue("next"))}
	code := strings.ReplaceAll(strings.TrimSpace(r.PostFormValue("code")), " ", "")
	sess, err := c.opts.Auth.Reauthenticate(r.Context(), rq.Sess.ID, r.PostFormValue("password"), code, clientMeta(r))
	if err != nil {
		if errors.Is(err, auth.ErrNoSession) {
			c.toSignIn(w, r)
			return nil
		}
		status, ok := authRefusal(err)
		if !ok {
			return fmt.Errorf("re-authenticate: %w", err)
		}
		v.Error = err.Error()
		return c.render(w, rq, status, "reauth", "", "Confirm it is you", "", v)
	}
	if sess.ID != "" && sess.ID != rq.Sess.ID {
		auth.SetSessionCookie(w, r, sess, c.opts.Secure)
	}
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
	return nil
}
