package fakeoidc

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// loginTTL bounds how long a login page stays usable.
const loginTTL = 10 * time.Minute

// pkceChallenge is what S256 produces: 43 base64url characters (RFC 7636 4.2).
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// authorize validates an authentication request (OIDC Core 3.1.2.1) and shows the login
// page. Errors about the client or its redirect URI are shown to the user and never
// redirected (RFC 6749 4.1.2.1: the redirect target is not trusted yet); the rest go back
// to the client with error, error_description, state and iss.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "the request could not be parsed")
		return
	}
	q := r.Form
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
		if len(q[k]) > 1 {
			s.errorPage(w, http.StatusBadRequest, "invalid_request", k+" is repeated")
			return
		}
	}
	c, ok := s.client(q.Get("client_id"))
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "invalid_client", "unknown client_id")
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" || !slices.Contains(c.RedirectURIs, redirect) {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "redirect_uri is missing or not registered for this client (exact match)")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) { s.redirectError(w, r, redirect, state, code, desc) }
	switch {
	case q.Get("request") != "":
		fail("request_not_supported", "request objects are not supported")
		return
	case q.Get("request_uri") != "":
		fail("request_uri_not_supported", "request_uri is not supported")
		return
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code (authorization code flow) is supported")
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "scope must contain openid")
		return
	case q.Get("response_mode") != "" && q.Get("response_mode") != "query":
		fail("invalid_request", "only response_mode=query is supported")
		return
	case q.Get("code_challenge") == "":
		fail("invalid_request", "code_challenge is required (PKCE)")
		return
	case q.Get("code_challenge_method") != "S256":
		// A missing method means "plain" (RFC 7636 4.3), which this provider refuses.
		fail("invalid_request", "code_challenge_method must be S256; plain is not supported")
		return
	case !pkceChallenge.MatchString(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge must be 43 base64url characters (S256)")
		return
	case q.Get("prompt") == "none":
		fail("login_required", "the user must sign in")
		return
	}
	req := &authRequest{clientID: c.ID, redirectURI: redirect, scope: q.Get("scope"), state: state, nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), loginHint: q.Get("login_hint")}
	id := randomToken()
	s.mu.Lock()
	s.sweepLocked()
	req.expires = s.nowLocked().Add(loginTTL)
	s.requests[id] = req
	s.mu.Unlock()
	s.loginPage(w, http.StatusOK, id, req.loginHint, "")
}

// sweepLocked forgets expired login pages, codes and access tokens, so a long-running
// demo provider does not grow. Expired codes answer invalid_grant either way.
func (s *Server) sweepLocked() {
	now := s.nowLocked()
	for id, r := range s.requests {
		if !now.Before(r.expires) {
			delete(s.requests, id)
		}
	}
	for c, ac := range s.codes {
		if !now.Before(ac.expires) {
			delete(s.codes, c)
		}
	}
	for t, at := range s.access {
		if !now.Before(at.expires) {
			delete(s.access, t)
		}
	}
}

// login checks the password on the login page and redirects to the client with a code.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "the form could not be parsed")
		return
	}
	id, email := r.PostForm.Get("request"), r.PostForm.Get("email")
	s.mu.Lock()
	req, ok := s.requests[id]
	if ok && !s.nowLocked().Before(req.expires) {
		delete(s.requests, id)
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "this sign-in page has expired; start again from the application")
		return
	}
	u, found := s.user(email)
	if !found || subtle.ConstantTimeCompare([]byte(u.Password), []byte(r.PostForm.Get("password"))) != 1 {
		s.loginPage(w, http.StatusUnauthorized, id, email, "Wrong email or password.")
		return
	}
	code := randomToken()
	s.mu.Lock()
	if _, still := s.requests[id]; !still {
		s.mu.Unlock()
		s.errorPage(w, http.StatusBadRequest, "invalid_request", "this sign-in page was already used")
		return
	}
	delete(s.requests, id)
	s.codes[code] = &authCode{authRequest: *req, user: u, expires: s.nowLocked().Add(s.cfg.CodeTTL)}
	s.stats.Authorizations++
	s.mu.Unlock()
	v := url.Values{"code": {code}, "iss": {s.cfg.Issuer}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	http.Redirect(w, r, withQuery(req.redirectURI, v), http.StatusFound)
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirect, state, code, desc string) {
	v := url.Values{"error": {code}, "error_description": {desc}, "iss": {s.cfg.Issuer}}
	if state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirect, v), http.StatusFound)
}

// withQuery adds v to u's query, keeping any query u already has (RFC 6749 3.1.2).
func withQuery(u string, v url.Values) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + v.Encode()
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
fieldset{border:1px solid #999;border-radius:6px;padding:1rem}label{display:block;margin:.4rem 0}
input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1.2rem}
.err{color:#a00000;font-weight:600}</style></head>
<body><main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="err" role="alert" id="error">{{.Error}}</p>{{end}}
{{if .Request}}
<form method="post" action="login">
<input type="hidden" name="request" value="{{.Request}}">
<fieldset><legend>Choose an account</legend>
{{range $i, $u := .Users}}<label><input type="radio" name="email" id="user-{{$i}}" value="{{$u.Email}}"{{if $u.Checked}} checked{{end}} required> {{$u.Name}} &lt;{{$u.Email}}&gt;</label>
{{end}}</fieldset>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>
{{end}}
</main></body></html>`))

type pageUser struct {
	Email, Name string
	Checked     bool
}

func (s *Server) loginPage(w http.ResponseWriter, status int, requestID, hint, errMsg string) {
	users := make([]pageUser, 0, len(s.cfg.Users))
	for _, u := range s.cfg.Users {
		users = append(users, pageUser{Email: u.Email, Name: u.Name,
			Checked: strings.EqualFold(u.Email, hint) || len(s.cfg.Users) == 1})
	}
	s.render(w, status, map[string]any{"Title": "Sign in to Fake OIDC", "Request": requestID, "Users": users, "Error": errMsg})
}

func (s *Server) errorPage(w http.ResponseWriter, status int, code, desc string) {
	s.render(w, status, map[string]any{"Title": "Sign-in error", "Error": code + ": " + desc})
}

func (s *Server) render(w http.ResponseWriter, status int, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, data); err != nil {
		s.log.Error("render page", "component", "fakeoidc", "err", err)
	}
}
