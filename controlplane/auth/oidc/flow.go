package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"github.com/lanyardhq/lanyard/internal/localpath"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Failure codes in /signin?error=<code>; ErrorMessage says each in words.
const (
	CodeUnavailable      = "sso_unavailable"      // no enabled SSO for the org
	CodeProviderDown     = "provider_unavailable" // discovery or the token endpoint failed
	CodeBusy             = "sso_busy"             // too many sign-ins in flight
	CodeStateInvalid     = "sso_state_invalid"    // unknown, tampered or already used state
	CodeStateExpired     = "sso_state_expired"    // more than 10 minutes between start and callback
	CodeBrowserMismatch  = "sso_browser_mismatch" // callback in another browser than the start
	CodeProviderDenied   = "sso_denied"           // the provider returned an error (e.g. access_denied)
	CodeTokenInvalid     = "sso_token_invalid"    // ID token signature, issuer, audience or expiry
	CodeNonceMismatch    = "sso_nonce_mismatch"   // ID token not minted for this sign-in
	CodeEmailMissing     = "sso_email_missing"    // no email from the provider
	CodeEmailUnverified  = "sso_email_unverified" // the provider has not verified the email
	CodeDomainNotAllowed = "sso_domain_not_allowed"
	CodeNoAccount        = "sso_no_account" // no admin with this email in the org
	CodeLocked           = "sso_locked"
	CodeRateLimited      = "sso_rate_limited"
	CodeInternal         = "sso_failed"
)

var messages = map[string]string{
	CodeUnavailable:      "Single sign-on is not set up for this organization. Sign in with your email and password.",
	CodeProviderDown:     "The identity provider could not be reached. Try again in a minute, or sign in with your password.",
	CodeBusy:             "Too many single sign-ins are in progress for this organization. Wait a few minutes and try again.",
	CodeStateInvalid:     "This sign-in link is not valid or was already used. Start single sign-on again.",
	CodeStateExpired:     "The sign-in took more than 10 minutes. Start single sign-on again.",
	CodeBrowserMismatch:  "The sign-in finished in a different browser than it started in. Start single sign-on again in this browser.",
	CodeProviderDenied:   "The identity provider did not sign you in. Start single sign-on again, or ask your IT admin for access.",
	CodeTokenInvalid:     "The identity provider's answer could not be verified, so you were not signed in. Ask your Lanyard admin to check the SSO settings.",
	CodeNonceMismatch:    "The identity provider's answer does not belong to this sign-in. Start single sign-on again.",
	CodeEmailMissing:     "The identity provider did not share your email address. Ask your Lanyard admin to check that the email scope is allowed.",
	CodeEmailUnverified:  "The identity provider has not verified your email address, so it cannot be used to sign in.",
	CodeDomainNotAllowed: "Your email domain is not allowed to sign in to this organization.",
	CodeNoAccount:        "There is no Lanyard admin with your email address in this organization. Ask an owner to invite you.",
	CodeLocked:           "This account is locked after too many failed sign-ins; try again later.",
	CodeRateLimited:      "Too many sign-in attempts; wait a minute and try again.",
	CodeInternal:         "Single sign-on failed. Try again, or sign in with your password.",
}

// ErrorMessage is the text the sign-in page shows for a failure code ("" for no code).
func ErrorMessage(code string) string {
	if code == "" {
		return ""
	}
	if m, ok := messages[code]; ok {
		return m
	}
	return messages[CodeInternal]
}

// start begins a sign-in: GET /auth/sso/start?org=<org id>[&email=<login hint>][&next=<local path>][&reauth=1].
func (s *Service) start(w http.ResponseWriter, r *http.Request) {
	ctx := domain.WithActor(r.Context(), domain.Actor{ID: "public:" + StartPath})
	orgID := r.URL.Query().Get("org")
	if orgID == "" || len(orgID) > 64 {
		s.fail(w, r, "", CodeUnavailable, store.SSOFailure{}, nil, false)
		return
	}
	c, err := s.cfg.Store.GetSSOConfig(ctx, orgID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.Enabled) {
		// Not audited: the org id is whatever the browser sent.
		s.fail(w, r, "", CodeUnavailable, store.SSOFailure{}, nil, false)
		return
	}
	if err != nil {
		s.fail(w, r, "", CodeInternal, store.SSOFailure{}, err, false)
		return
	}
	p, err := s.provider(ctx, c.Issuer)
	if err != nil {
		s.fail(w, r, orgID, CodeProviderDown, store.SSOFailure{Issuer: c.Issuer}, err, false)
		return
	}
	state, nonce, binding, verifier := randomString(), randomString(), randomString(), oauth2.GenerateVerifier()
	sh := hashString(state)
	sealed, err := s.cfg.Keys.Seal([]byte(verifier), store.SSOVerifierAAD(sh))
	if err != nil {
		s.fail(w, r, orgID, CodeInternal, store.SSOFailure{Issuer: c.Issuer}, err, false)
		return
	}
	now := s.cfg.Now()
	err = s.cfg.Store.InsertSSOState(ctx, store.SSOState{StateHash: sh, OrgID: orgID, BindingHash: hashString(binding),
		Issuer: c.Issuer, ClientID: c.ClientID, Nonce: nonce, VerifierSealed: sealed, CreatedAt: now, ExpiresAt: now.Add(stateTTL),
		Next: localpath.Safe(r.URL.Query().Get("next"))},
		now, maxInFlight)
	if errors.Is(err, store.ErrConflict) {
		s.fail(w, r, orgID, CodeBusy, store.SSOFailure{Issuer: c.Issuer}, err, false)
		return
	}
	if err != nil {
		s.fail(w, r, orgID, CodeInternal, store.SSOFailure{Issuer: c.Issuer}, err, false)
		return
	}
	// SameSite=Lax, not Strict: the callback is a top-level navigation from the
	// provider's site, and Strict would withhold the cookie exactly then.
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: orgID + "." + binding, Path: "/auth/sso/", HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: int(stateTTL.Seconds())})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)}
	if r.URL.Query().Get("reauth") == "1" {
		// A re-authentication before revealing a secret: the provider must ask again
		// (OIDC Core 3.1.2.1), and its auth_time then says when it did.
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	}
	if hint := r.URL.Query().Get("email"); hint != "" && len(hint) <= 254 && strings.Contains(hint, "@") {
		// The email typed on the sign-in page preselects the account at the provider.
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", hint))
	}
	http.Redirect(w, r, s.oauthConfig(p, c, "").AuthCodeURL(state, opts...), http.StatusFound)
}

// callback finishes a sign-in: GET /auth/sso/callback?code=&state= (or ?error=).
func (s *Service) callback(w http.ResponseWriter, r *http.Request) {
	ctx := domain.WithActor(r.Context(), domain.Actor{ID: "public:" + CallbackPath})
	r = r.WithContext(ctx)
	q := r.URL.Query()
	cookieOrg, binding := "", ""
	if ck, err := r.Cookie(CookieName); err == nil {
		cookieOrg, binding, _ = strings.Cut(ck.Value, ".")
	}
	// The cookie serves one callback, whatever its outcome.
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/auth/sso/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	w.Header().Set("Cache-Control", "no-store")
	// The callback URL holds the code: never pass it on as a referrer.
	w.Header().Set("Referrer-Policy", "no-referrer")

	state := q.Get("state")
	if state == "" {
		s.fail(w, r, cookieOrg, CodeStateInvalid, store.SSOFailure{}, errors.New("callback without state"), true)
		return
	}
	st, err := s.cfg.Store.ConsumeSSOState(ctx, hashString(state))
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, cookieOrg, CodeStateInvalid, store.SSOFailure{}, errors.New("unknown or already used state"), true)
		return
	}
	if err != nil {
		s.fail(w, r, cookieOrg, CodeInternal, store.SSOFailure{}, err, true)
		return
	}
	base := store.SSOFailure{Issuer: st.Issuer}
	if binding == "" || cookieOrg != st.OrgID || subtle.ConstantTimeCompare([]byte(hashString(binding)), []byte(st.BindingHash)) != 1 {
		s.fail(w, r, st.OrgID, CodeBrowserMismatch, base, errors.New("the browser binding cookie is missing or belongs to another sign-in"), false)
		return
	}
	if !s.cfg.Now().Before(st.ExpiresAt) {
		s.fail(w, r, st.OrgID, CodeStateExpired, base, errors.New("state expired"), false)
		return
	}
	if e := q.Get("error"); e != "" {
		s.fail(w, r, st.OrgID, CodeProviderDenied, base, errors.New("provider error "+clip(e)+": "+clip(q.Get("error_description"))), false)
		return
	}
	// RFC 9207: a provider that names itself in the response must be the one we sent
	// the browser to (defeats mix-up between providers).
	if iss := q.Get("iss"); iss != "" && iss != st.Issuer {
		s.fail(w, r, st.OrgID, CodeTokenInvalid, base, errors.New("authorization response from issuer "+clip(iss)), false)
		return
	}
	c, err := s.cfg.Store.GetSSOConfig(ctx, st.OrgID)
	if err != nil || !c.Enabled || c.Issuer != st.Issuer || c.ClientID != st.ClientID {
		s.fail(w, r, st.OrgID, CodeUnavailable, base, errors.New("SSO was disabled or reconfigured during the sign-in"), false)
		return
	}
	secret, err := s.cfg.Keys.Open(c.ClientSecretSealed, store.SSOClientSecretAAD(c.OrgID))
	if err != nil {
		s.fail(w, r, st.OrgID, CodeInternal, base, err, false)
		return
	}
	verifier, err := s.cfg.Keys.Open(st.VerifierSealed, store.SSOVerifierAAD(st.StateHash))
	if err != nil {
		s.fail(w, r, st.OrgID, CodeInternal, base, err, false)
		return
	}
	pctx := gooidc.ClientContext(ctx, s.cfg.HTTPClient)
	p, err := s.provider(pctx, c.Issuer)
	if err != nil {
		s.fail(w, r, st.OrgID, CodeProviderDown, base, err, false)
		return
	}
	tok, err := s.oauthConfig(p, c, string(secret)).Exchange(pctx, q.Get("code"), oauth2.VerifierOption(string(verifier)))
	if err != nil {
		var re *oauth2.RetrieveError
		code := CodeProviderDown
		if errors.As(err, &re) {
			// The provider answered and refused (invalid_grant, invalid_client...).
			code, err = CodeTokenInvalid, errors.New("token endpoint refused: "+clip(re.ErrorCode)+" "+clip(re.ErrorDescription))
		}
		s.fail(w, r, st.OrgID, code, base, err, false)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		s.fail(w, r, st.OrgID, CodeTokenInvalid, base, errors.New("token response without id_token"), false)
		return
	}
	idt, err := p.Verifier(&gooidc.Config{ClientID: c.ClientID, Now: s.cfg.Now}).Verify(pctx, raw)
	if err != nil {
		// A key rotation at the provider shows up as an unknown key: rediscover next time.
		s.forget(c.Issuer)
		s.fail(w, r, st.OrgID, CodeTokenInvalid, base, err, false)
		return
	}
	base.Subject = idt.Subject
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		s.fail(w, r, st.OrgID, CodeNonceMismatch, base, errors.New("ID token nonce differs from this sign-in's"), false)
		return
	}
	id, err := s.identity(pctx, p, idt, tok)
	if err != nil {
		s.fail(w, r, st.OrgID, CodeTokenInvalid, base, err, false)
		return
	}
	base.Email = id.email
	switch {
	case id.email == "":
		s.fail(w, r, st.OrgID, CodeEmailMissing, base, errors.New("no email claim"), false)
		return
	case !id.verified:
		s.fail(w, r, st.OrgID, CodeEmailUnverified, base, errors.New("email not verified by the provider"), false)
		return
	case !domainAllowed(id.email, c.AllowedDomains):
		s.fail(w, r, st.OrgID, CodeDomainNotAllowed, base, errors.New("email domain not in the allowed list"), false)
		return
	}
	v := Vouched{OrgID: st.OrgID, Issuer: c.Issuer, Subject: idt.Subject, Email: id.email, AuthTime: id.authTime, Next: localpath.Safe(st.Next)}
	if err := s.cfg.Start(ctx, w, r, v); err != nil {
		code := CodeNoAccount
		switch {
		case errors.Is(err, auth.ErrLocked):
			code = CodeLocked
		case errors.Is(err, auth.ErrRateLimited):
			code = CodeRateLimited
		case !errors.Is(err, auth.ErrBadCredentials) && !errors.Is(err, store.ErrNotFound):
			code = CodeInternal
		}
		s.fail(w, r, st.OrgID, code, base, err, false)
		return
	}
	s.log.InfoContext(ctx, "sso sign-in", "org_id", st.OrgID, "issuer", c.Issuer, "email", id.email)
}

type identity struct {
	email    string
	verified bool
	authTime time.Time // zero without an auth_time claim
}

// idClaims are the ID token claims read for the person: email, its verification and
// auth_time. Entra ID sends no email_verified; its
// optional claim xms_edov says the email's domain is verified by the tenant.
type idClaims struct {
	AuthTime      int64        `json:"auth_time"`
	Email         string       `json:"email"`
	EmailVerified boolOrString `json:"email_verified"`
	EDOV          boolOrString `json:"xms_edov"`
}

// identity reads the email from the ID token, or from UserInfo when the token has none
// (OIDC Core 5.3.2: UserInfo's sub must then equal the token's).
func (s *Service) identity(ctx context.Context, p *gooidc.Provider, idt *gooidc.IDToken, tok *oauth2.Token) (identity, error) {
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		return identity{}, err
	}
	var authTime time.Time
	if c.AuthTime > 0 {
		authTime = time.Unix(c.AuthTime, 0)
	}
	if c.Email == "" && p.UserInfoEndpoint() != "" {
		ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return identity{}, err
		}
		if ui.Subject != idt.Subject {
			return identity{}, errors.New("UserInfo subject differs from the ID token's")
		}
		if err := ui.Claims(&c); err != nil {
			return identity{}, err
		}
	}
	return identity{email: strings.ToLower(strings.TrimSpace(c.Email)), verified: c.verified(idt.Issuer), authTime: authTime}, nil
}

// verified: email_verified, or on Entra ID (which never sends it) xms_edov.
func (c idClaims) verified(issuer string) bool {
	return bool(c.EmailVerified) || (bool(c.EDOV) && isEntra(issuer))
}

func isEntra(issuer string) bool {
	u, err := url.Parse(issuer)
	return err == nil && u.Host == "login.microsoftonline.com"
}

// boolOrString accepts true and "true" (some providers send booleans as strings).
type boolOrString bool

func (b *boolOrString) UnmarshalJSON(v []byte) error {
	switch strings.Trim(string(v), `"`) {
	case "true":
		*b = true
	default:
		*b = false
	}
	return nil
}

func domainAllowed(email string, allowed []string) bool {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return false
	}
	return slices.Contains(allowed, strings.ToLower(email[at+1:]))
}

// fail audits a refusal (when the org is known) and sends the browser to the sign-in page:
// /signin?error=<code>[&org=<org id>].
// Nothing secret reaches the audit or the log: codes, states and tokens stay out of err.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, orgID, code string, f store.SSOFailure, err error, orgFromCookie bool) {
	ctx := r.Context()
	f.Reason = code
	attrs := []any{"org_id", orgID, "reason", code, "issuer", f.Issuer, "email", f.Email, "client_ip", clientIP(r)}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	if code == CodeInternal {
		s.log.ErrorContext(ctx, "sso sign-in failed", attrs...)
	} else {
		s.log.InfoContext(ctx, "sso sign-in refused", attrs...)
	}
	// An org named only by the cookie (the state is unknown) is the org the browser says
	// it started with; it is audited only if that org has SSO, so a forged cookie cannot
	// write into the audit log of an arbitrary id.
	if orgID != "" && orgFromCookie {
		if _, cerr := s.cfg.Store.GetSSOConfig(ctx, orgID); cerr != nil {
			orgID = ""
		}
	}
	if orgID != "" {
		if aerr := s.cfg.Store.RecordSSOFailure(ctx, orgID, f); aerr != nil {
			s.log.ErrorContext(ctx, "audit sso failure", "org_id", orgID, "err", aerr)
		}
	}
	// With the org, the sign-in page can offer "Sign in with SSO" again right away.
	v := url.Values{"error": {code}}
	if orgID != "" {
		v.Set("org", orgID)
	}
	http.Redirect(w, r, SignInPath+"?"+v.Encode(), http.StatusSeeOther)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clip bounds provider-sent text before it is logged.
func clip(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
