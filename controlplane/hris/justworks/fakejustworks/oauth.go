package fakejustworks

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

type authCode struct {
	redirectURI string
	scopes      []string
	expires     time.Time
}

type grant struct {
	id      string
	scopes  []string
	revoked bool
}

type accessToken struct {
	grant   *grant
	expires time.Time
	revoked bool
}

type refreshToken struct {
	grant   *grant
	expires time.Time
	used    bool // rotated away
	revoked bool
}

// handleAuthorize is the consent page: it approves at once and redirects back
// with a code (or error=access_denied when ?deny=1, for tests).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	u, err := url.Parse(redirect)
	if err != nil || redirect == "" || !u.IsAbs() {
		writeError(w, http.StatusBadRequest, "invalid_request", "redirect_uri required")
		return
	}
	if q.Get("client_id") != s.opts.ClientID {
		writeError(w, http.StatusBadRequest, "invalid_client", "unknown client_id")
		return
	}
	back := u.Query()
	back.Set("state", q.Get("state"))
	if q.Get("response_type") != "code" {
		back.Set("error", "unsupported_response_type")
	} else if q.Get("deny") == "1" {
		back.Set("error", "access_denied")
	} else {
		scopes := strings.Fields(q.Get("scope"))
		s.mu.Lock()
		if len(s.opts.GrantScopes) > 0 {
			scopes = slices.Clone(s.opts.GrantScopes)
		}
		s.mu.Unlock()
		code := randID("code_")
		s.mu.Lock()
		s.codes[code] = &authCode{redirectURI: redirect, scopes: scopes, expires: s.nowLocked().Add(5 * time.Minute)}
		s.mu.Unlock()
		back.Set("code", code)
	}
	u.RawQuery = back.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// SetGrantScopes changes the scopes granted at the next consents (nil: what is asked).
func (s *Server) SetGrantScopes(scopes []string) {
	s.mu.Lock()
	s.opts.GrantScopes = slices.Clone(scopes)
	s.mu.Unlock()
}

// Authorize runs the consent step in-process and returns the code, as a
// browser following the redirect would see it.
func (s *Server) Authorize(redirectURI string, scopes []string) string {
	code := randID("code_")
	s.mu.Lock()
	if len(s.opts.GrantScopes) > 0 {
		scopes = slices.Clone(s.opts.GrantScopes)
	}
	s.codes[code] = &authCode{redirectURI: redirectURI, scopes: scopes, expires: s.nowLocked().Add(5 * time.Minute)}
	s.mu.Unlock()
	return code
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (s *Server) clientOK(r *http.Request) bool {
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	return id == s.opts.ClientID && secret == s.opts.ClientSecret
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	if f := s.takeFault(r); f != nil {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		tokenError(w, f.Status, "temporarily_unavailable", "injected fault")
		return
	}
	if !s.clientOK(r) {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "bad client credentials")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	var g *grant
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := s.codes[r.PostForm.Get("code")]
		delete(s.codes, r.PostForm.Get("code")) // one use
		if code == nil || now.After(code.expires) {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "authorization code invalid or expired")
			return
		}
		if r.PostForm.Get("redirect_uri") != code.redirectURI {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri mismatch")
			return
		}
		if !s.companyActive {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "company inactive")
			return
		}
		g = &grant{id: randID("grant_"), scopes: code.scopes}
		s.grants[g.id] = g
		s.stats.TokenExchanges++
	case "refresh_token":
		rt := s.refresh[r.PostForm.Get("refresh_token")]
		switch {
		case rt == nil:
			tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
			return
		case rt.used:
			tokenError(w, http.StatusBadRequest, "invalid_grant", "refresh token already used")
			return
		case rt.revoked || rt.grant.revoked:
			tokenError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked")
			return
		case now.After(rt.expires):
			tokenError(w, http.StatusBadRequest, "invalid_grant", "refresh token expired")
			return
		case !s.companyActive:
			tokenError(w, http.StatusBadRequest, "invalid_grant", "company inactive")
			return
		}
		g = rt.grant
		s.stats.TokenRefreshes++
		if !s.opts.NoRotate {
			rt.used = true
		} else {
			s.writeTokensLocked(w, g, r.PostForm.Get("refresh_token"))
			return
		}
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type")
		return
	}
	s.writeTokensLocked(w, g, "")
}

func (s *Server) writeTokensLocked(w http.ResponseWriter, g *grant, keepRefresh string) {
	now := s.nowLocked()
	at := randID("at_")
	s.access[at] = &accessToken{grant: g, expires: now.Add(s.opts.AccessTTL)}
	rt := keepRefresh
	if rt == "" {
		rt = randID("rt_")
		s.refresh[rt] = &refreshToken{grant: g, expires: now.Add(s.opts.RefreshTTL)}
	}
	resp := map[string]any{
		"token_type":    "Bearer",
		"access_token":  at,
		"refresh_token": rt,
		"scope":         strings.Join(g.scopes, " "),
	}
	if s.opts.ExpiresIn {
		resp["expires_in"] = int(s.opts.AccessTTL / time.Second)
	} else {
		resp["expires_at"] = now.Add(s.opts.AccessTTL).Format(time.RFC3339)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	if !s.clientOK(r) {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "bad client credentials")
		return
	}
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Revocations++
	if rt := s.refresh[tok]; rt != nil {
		rt.revoked = true
		rt.grant.revoked = true // revoking the refresh token ends the grant
	}
	if at := s.access[tok]; at != nil {
		at.revoked = true
	}
	w.WriteHeader(http.StatusOK) // RFC 7009: 200 even for unknown tokens
}

// ExpireAccessTokens makes every issued access token invalid now (as if its
// 24 h had passed) without moving the clock.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.access {
		at.revoked = true
	}
}

// authenticate checks the bearer token; it returns a status and error code on failure.
func (s *Server) authenticate(r *http.Request, scope string) (*accessToken, int, string) {
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, http.StatusUnauthorized, "missing_token"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.access[raw]
	switch {
	case at == nil:
		return nil, http.StatusUnauthorized, "invalid_token"
	case at.revoked || at.grant.revoked:
		return nil, http.StatusUnauthorized, "token_revoked"
	case s.nowLocked().After(at.expires):
		return nil, http.StatusUnauthorized, "token_expired"
	case !s.companyActive:
		return nil, http.StatusForbidden, "company_inactive"
	}
	if scope != "" && !hasScope(at.grant.scopes, scope) {
		return nil, http.StatusForbidden, "insufficient_scope"
	}
	return at, 0, ""
}

// hasScope applies the scope hierarchy (detail ⊃ basic).
func hasScope(granted []string, want string) bool {
	parent := map[string]string{"member.basic:read": "member.detail:read", "company.basic:read": "company.detail:read"}
	return slices.Contains(granted, want) || (parent[want] != "" && slices.Contains(granted, parent[want]))
}
