package fakeoidc

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// pkceVerifier is RFC 7636 4.1: 43-128 unreserved characters.
var pkceVerifier = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// token redeems an authorization code (RFC 6749 4.1.3, OIDC Core 3.1.3).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint takes POST")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "send the parameters as application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body could not be parsed")
		return
	}
	f := r.PostForm
	for k, vs := range f {
		if len(vs) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", k+" is repeated")
			return
		}
	}
	c, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	switch gt := f.Get("grant_type"); {
	case gt == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	case gt != "authorization_code":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code is supported")
		return
	}
	code := f.Get("code")
	if code == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "code is required")
		return
	}
	verifier := f.Get("code_verifier")
	if verifier != "" && !pkceVerifier.MatchString(verifier) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "code_verifier must be 43-128 unreserved characters")
		return
	}

	var err error
	s.mu.Lock()
	ac, found := s.codes[code]
	var grantErr string
	switch {
	case !found:
		grantErr = "the code is unknown"
	case ac.used:
		// RFC 6749 4.1.2: a code used twice revokes what it already granted.
		for _, t := range ac.issued {
			if at := s.access[t]; at != nil {
				at.revoked = true
			}
		}
		grantErr = "the code was already used"
	case !s.nowLocked().Before(ac.expires):
		grantErr = "the code has expired"
	case ac.clientID != c.ID:
		grantErr = "the code was issued to another client"
	case f.Get("redirect_uri") != ac.redirectURI:
		grantErr = "redirect_uri does not match the authorization request"
	case verifier == "":
		grantErr = "code_verifier is required (the authorization request had a code_challenge)"
	case subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(ac.challenge)) != 1:
		grantErr = "code_verifier does not match code_challenge"
	}
	if found && ac.clientID == c.ID {
		// One presentation burns the code, so a verifier cannot be guessed at leisure.
		ac.used = true
	}
	if grantErr != "" {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", grantErr)
		return
	}
	now := s.nowLocked()
	tamper := s.tamper
	key := s.key
	if tamper.ForeignKey {
		if s.foreign == nil {
			if s.foreign, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				s.mu.Unlock()
				oauthError(w, http.StatusInternalServerError, "server_error", "could not make a key")
				return
			}
		}
		key = s.foreign
	}
	access := randomToken()
	s.access[access] = &accessToken{user: ac.user, clientID: c.ID, scope: ac.scope, expires: now.Add(s.cfg.AccessTokenTTL)}
	ac.issued = append(ac.issued, access)
	s.stats.Tokens++
	req, u := ac.authRequest, ac.user
	s.mu.Unlock()

	claims := map[string]any{"iss": s.cfg.Issuer, "sub": u.Subject, "aud": c.ID, "iat": now.Unix(), "auth_time": now.Unix(),
		"exp": now.Add(s.cfg.IDTokenTTL).Unix(), "at_hash": halfHash(access)}
	if req.nonce != "" {
		claims["nonce"] = req.nonce
	}
	if !tamper.EmailOnlyInUserInfo {
		addScopedClaims(claims, u, req.scope)
	}
	if tamper.Issuer != "" {
		claims["iss"] = tamper.Issuer
	}
	if tamper.Audience != "" {
		claims["aud"] = tamper.Audience
	}
	if tamper.Nonce != "" {
		claims["nonce"] = tamper.Nonce
	}
	if tamper.IDTokenTTL != 0 {
		claims["exp"] = now.Add(tamper.IDTokenTTL).Unix()
	}
	idt, err := signJWT(key, s.kid, claims)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "could not sign the ID token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int(s.cfg.AccessTokenTTL.Seconds()), "id_token": idt, "scope": req.scope})
}

// authenticateClient applies client_secret_basic or client_secret_post (RFC 6749 2.3.1);
// using both at once is an error. On failure it has written the response.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request) (Client, bool) {
	f := r.PostForm
	id, secret, basic := r.BasicAuth()
	if basic {
		if f.Get("client_secret") != "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method, not two")
			return Client{}, false
		}
		// The id and secret are form-urlencoded before base64 (RFC 6749 2.3.1).
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			s.invalidClient(w, true, "malformed client credentials")
			return Client{}, false
		}
		if fid := f.Get("client_id"); fid != "" && fid != id {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client_id in the body differs from the Authorization header")
			return Client{}, false
		}
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
		if id == "" || secret == "" {
			s.invalidClient(w, false, "client authentication is required (client_secret_basic or client_secret_post)")
			return Client{}, false
		}
	}
	c, ok := s.client(id)
	if !ok || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		s.invalidClient(w, basic, "unknown client or wrong secret")
		return Client{}, false
	}
	return c, true
}

func (s *Server) invalidClient(w http.ResponseWriter, basic bool, desc string) {
	if basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
	}
	oauthError(w, http.StatusUnauthorized, "invalid_client", desc)
}

// addScopedClaims adds the claims a scope grants (OIDC Core 5.4).
func addScopedClaims(claims map[string]any, u User, scope string) {
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "email":
			claims["email"] = u.Email
			claims["email_verified"] = u.EmailVerified
		case "profile":
			claims["name"] = u.Name
		}
	}
}

// userinfo returns the claims for a bearer access token (OIDC Core 5.3).
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="userinfo"`)
		oauthError(w, http.StatusUnauthorized, "invalid_request", "send the access token as Authorization: Bearer")
		return
	}
	s.mu.Lock()
	at := s.access[tok]
	valid := at != nil && !at.revoked && s.nowLocked().Before(at.expires)
	if valid {
		s.stats.UserInfo++
	}
	s.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer realm="userinfo", error="invalid_token", error_description="the access token is unknown, expired or revoked"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "the access token is unknown, expired or revoked")
		return
	}
	claims := map[string]any{"sub": at.user.Subject}
	addScopedClaims(claims, at.user, at.scope)
	writeJSON(w, http.StatusOK, claims)
}
