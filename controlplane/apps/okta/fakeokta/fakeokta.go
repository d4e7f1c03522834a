// Package fakeokta is an in-memory Okta org answering the Users, user
// lifecycle, user sessions and group membership endpoints the okta connector
// uses, over real HTTP on 127.0.0.1, in Okta's shapes (REFERENCE.md): SSWS API
// tokens, {errorCode, errorSummary, errorLink, errorId, errorCauses} errors,
// search expressions, cursor paging with a Link rel="next" header, the user
// status machine (a suspend only from ACTIVE, a delete of a live user only
// deactivates it) and rate limiting as a 429 E0000047 with X-Rate-Limit-Reset.
package fakeokta

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps/internal/fakehttp"
)

// Options configure the org.
type Options struct {
	Token string
	// LimitMax caps ?limit= (Okta: 200 for List Users); tests lower it to page.
	LimitMax int
}

// User is a user as the fake stores it.
type User struct {
	ID      string
	Status  string // STAGED, PROVISIONED, ACTIVE, RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT, SUSPENDED, DEPROVISIONED
	Profile map[string]string
	// Sessions and OAuthTokens count what a session clear removes.
	Sessions    int
	OAuthTokens int
}

// Server is the fake org.
type Server struct {
	*fakehttp.Server
	opts Options

	mu        sync.Mutex
	tokenOK   bool
	forbidden bool
	users     map[string]*User
	groups    map[string]map[string]bool // group id → member user ids
	nextID    int
}

// Start serves the org until ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.LimitMax == 0 {
		opts.LimitMax = 200
	}
	s := &Server{opts: opts, tokenOK: true, users: map[string]*User{}, groups: map[string]map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/users", s.guard(s.listUsers))
	mux.HandleFunc("POST /api/v1/users", s.guard(s.createUser))
	mux.HandleFunc("GET /api/v1/users/{id}", s.guard(s.withUser(s.getUser)))
	mux.HandleFunc("POST /api/v1/users/{id}", s.guard(s.withUser(s.updateUser)))
	mux.HandleFunc("DELETE /api/v1/users/{id}", s.guard(s.withUser(s.deleteUser)))
	mux.HandleFunc("POST /api/v1/users/{id}/lifecycle/{op}", s.guard(s.withUser(s.lifecycle)))
	mux.HandleFunc("DELETE /api/v1/users/{id}/sessions", s.guard(s.withUser(s.clearSessions)))
	mux.HandleFunc("PUT /api/v1/groups/{gid}/users/{uid}", s.guard(s.addToGroup))
	fs, err := fakehttp.Start(ctx, mux, func(w http.ResponseWriter, status int, retry time.Duration) {
		if status == http.StatusTooManyRequests {
			// Okta sends no Retry-After: the reset is an epoch second.
			w.Header().Set("X-Rate-Limit-Limit", "600")
			w.Header().Set("X-Rate-Limit-Remaining", "0")
			w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(retry).Unix()+1, 10))
			oktaError(w, status, "E0000047", "API call exceeded rate limit due to too many requests.")
			return
		}
		oktaError(w, status, "E0000009", "Internal Server Error")
	})
	if err != nil {
		return nil, err
	}
	s.Server = fs
	return s, nil
}

// AddUser creates a user directly (set-up) and returns its id. profile needs
// login; status defaults to ACTIVE.
func (s *Server) AddUser(status string, profile map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == "" {
		status = "ACTIVE"
	}
	u := &User{ID: s.newID("00u"), Status: status, Profile: map[string]string{}, Sessions: 1, OAuthTokens: 1}
	for k, v := range profile {
		u.Profile[k] = v
	}
	s.users[u.ID] = u
	return u.ID
}

// AddGroup creates a group and returns its id.
func (s *Server) AddGroup() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID("00g")
	s.groups[id] = map[string]bool{}
	return id
}

// UpdateProfile changes profile attributes behind the connector's back (a
// rename done in the Okta admin console).
func (s *Server) UpdateProfile(id string, profile map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range profile {
		s.users[id].Profile[k] = v
	}
}

// SetStatus sets a user's status, as an admin does in the Okta admin console
// (reconciliation tests: a leaver turned back on by hand).
func (s *Server) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		u.Status = status
	}
}

// User returns a copy of user id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil {
		return User{}, false
	}
	c := *u
	c.Profile = map[string]string{}
	for k, v := range u.Profile {
		c.Profile[k] = v
	}
	return c, true
}

// Users returns the ids of every user, sorted.
func (s *Server) Users() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakehttp.SortedKeys(s.users)
}

// GroupMembers returns the sorted user ids in group gid.
func (s *Server) GroupMembers(gid string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakehttp.SortedKeys(s.groups[gid])
}

// RevokeToken makes the API token refused (401 E0000011).
func (s *Server) RevokeToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenOK = false
}

// Forbid makes every call a 403 E0000006 (the token's admin lost its role).
func (s *Server) Forbid() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden = true
}

func (s *Server) newID(prefix string) string {
	s.nextID++
	return fmt.Sprintf("%s%014dfake", prefix, s.nextID)
}

// oktaError writes Okta's error body.
func oktaError(w http.ResponseWriter, status int, code, summary string, causes ...string) {
	cs := []map[string]string{}
	for _, c := range causes {
		cs = append(cs, map[string]string{"errorSummary": c})
	}
	writeJSON(w, status, map[string]any{"errorCode": code, "errorSummary": summary,
		"errorLink": code, "errorId": "oae" + strconv.FormatInt(time.Now().UnixNano(), 36), "errorCauses": cs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, id, kind string) {
	oktaError(w, http.StatusNotFound, "E0000007", fmt.Sprintf("Not found: Resource not found: %s (%s)", id, kind))
}

// guard checks the SSWS token and the permission knob.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		tokenOK, forbidden := s.tokenOK, s.forbidden
		s.mu.Unlock()
		w.Header().Set("X-Rate-Limit-Limit", "600")
		w.Header().Set("X-Rate-Limit-Remaining", "599")
		w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10))
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "SSWS ")
		if !ok || !tokenOK || tok != s.opts.Token {
			oktaError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
			return
		}
		if forbidden {
			oktaError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
			return
		}
		h(w, r)
	}
}

func (s *Server) userJSON(r *http.Request, u *User) map[string]any {
	prof := map[string]any{}
	for k, v := range u.Profile {
		prof[k] = v
	}
	return map[string]any{
		"id": u.ID, "status": u.Status, "created": "2026-01-01T00:00:00.000Z", "activated": nil,
		"statusChanged": "2026-01-01T00:00:00.000Z", "lastLogin": nil, "lastUpdated": "2026-01-01T00:00:00.000Z",
		"passwordChanged": nil, "type": map[string]string{"id": "oty0000000000fake"}, "profile": prof,
		"credentials": map[string]any{"provider": map[string]string{"type": "OKTA", "name": "OKTA"}},
		"_links":      map[string]any{"self": map[string]string{"href": "http://" + r.Host + "/api/v1/users/" + u.ID}},
	}
}

// withUser runs h under the lock on the user named by the {id} path segment,
// or answers Okta's 404.
func (s *Server) withUser(h func(http.ResponseWriter, *http.Request, *User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		u := s.lookup(r.PathValue("id"))
		if u == nil {
			notFound(w, r.PathValue("id"), "User")
			return
		}
		h(w, r, u)
	}
}

// lookup finds a user by id or login (Okta accepts either in the path).
func (s *Server) lookup(idOrLogin string) *User {
	if u := s.users[idOrLogin]; u != nil {
		return u
	}
	for _, u := range s.users {
		if strings.EqualFold(u.Profile["login"], idOrLogin) {
			return u
		}
	}
	return nil
}

// A search clause: attribute eq "value" (Okta's SCIM-like filter syntax).
var clause = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z0-9_.]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$`)

func matches(u *User, attr, val string) bool {
	switch {
	case attr == "status":
		return u.Status == val
	case attr == "id":
		return u.ID == val
	case strings.HasPrefix(attr, "profile."):
		return strings.EqualFold(u.Profile[strings.TrimPrefix(attr, "profile.")], val)
	}
	return false
}

// listUsers: without search, every user but DEPROVISIONED ones (as Okta);
// with search=attr eq "v" (one clause, or clauses joined by " or "), any
// status. Paging: limit (capped) and an opaque after cursor, Link rel="next".
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	search := q.Get("search")
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > s.opts.LimitMax {
		limit = s.opts.LimitMax
	}
	type cond struct{ attr, val string }
	var conds []cond
	if search != "" {
		for _, part := range strings.Split(search, " or ") {
			m := clause.FindStringSubmatch(part)
			if m == nil {
				oktaError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
				return
			}
			conds = append(conds, cond{m[1], strings.ReplaceAll(m[2], `\"`, `"`)})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := fakehttp.SortedKeys(s.users)
	var hits []*User
	for _, id := range ids {
		u := s.users[id]
		if search == "" {
			if u.Status != "DEPROVISIONED" {
				hits = append(hits, u)
			}
			continue
		}
		for _, c := range conds {
			if matches(u, c.attr, c.val) {
				hits = append(hits, u)
				break
			}
		}
	}
	after := q.Get("after")
	start := 0
	if after != "" {
		start = len(hits)
		for i, u := range hits {
			if u.ID > after {
				start = i
				break
			}
		}
	}
	end := min(start+limit, len(hits))
	out := []map[string]any{}
	for _, u := range hits[start:end] {
		out = append(out, s.userJSON(r, u))
	}
	self := "http://" + r.Host + r.URL.Path + "?" + q.Encode()
	links := []string{"<" + self + `>; rel="self"`}
	if end < len(hits) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("after", hits[end-1].ID)
		nq.Set("limit", strconv.Itoa(limit))
		links = append(links, "<http://"+r.Host+r.URL.Path+"?"+nq.Encode()+`>; rel="next"`)
	}
	for _, l := range links {
		w.Header().Add("Link", l)
	}
	writeJSON(w, http.StatusOK, out)
}

func readProfile(r *http.Request) (map[string]string, error) {
	var b struct {
		Profile map[string]any `json:"profile"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range b.Profile {
		if v == nil {
			out[k] = ""
			continue
		}
		out[k] = fmt.Sprint(v)
	}
	return out, nil
}

// createUser: POST /api/v1/users?activate=true|false. Without credentials an
// activated user is PROVISIONED (Okta emails an activation link); login is
// unique across the org.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	prof, err := readProfile(r)
	if err != nil {
		oktaError(w, http.StatusBadRequest, "E0000003", "The request body was not well-formed.")
		return
	}
	var causes []string
	for _, f := range []string{"firstName", "lastName", "email", "login"} {
		if prof[f] == "" {
			causes = append(causes, f+": The field cannot be left blank")
		}
	}
	if len(causes) > 0 {
		oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: "+strings.Join(causes, ", "), causes...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.Profile["login"], prof["login"]) {
			oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: login",
				"login: An object with this field already exists in the current organization")
			return
		}
	}
	status := "STAGED"
	if r.URL.Query().Get("activate") != "false" { // Okta's default is activate=true
		status = "PROVISIONED"
	}
	u := &User{ID: s.newID("00u"), Status: status, Profile: prof}
	s.users[u.ID] = u
	writeJSON(w, http.StatusOK, s.userJSON(r, u))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, u *User) {
	writeJSON(w, http.StatusOK, s.userJSON(r, u))
}

// updateUser: POST /api/v1/users/{id} is a partial update of the profile.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, u *User) {
	prof, err := readProfile(r)
	if err != nil {
		oktaError(w, http.StatusBadRequest, "E0000003", "The request body was not well-formed.")
		return
	}
	if l := prof["login"]; l != "" {
		if o := s.lookup(l); o != nil && o != u {
			oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: login",
				"login: An object with this field already exists in the current organization")
			return
		}
	}
	for k, v := range prof {
		u.Profile[k] = v
	}
	writeJSON(w, http.StatusOK, s.userJSON(r, u))
}

// deleteUser: a live user is deactivated by the first DELETE; a DEPROVISIONED
// one is deleted for good.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, u *User) {
	if u.Status != "DEPROVISIONED" {
		s.deactivate(u)
	} else {
		delete(s.users, u.ID)
		for _, g := range s.groups {
			delete(g, u.ID)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// deactivate ends sessions and tokens too: a deprovisioned user cannot sign in.
func (s *Server) deactivate(u *User) {
	u.Status, u.Sessions, u.OAuthTokens = "DEPROVISIONED", 0, 0
}

// lifecycle: suspend (ACTIVE only), unsuspend (SUSPENDED only), deactivate
// (any but DEPROVISIONED), activate (STAGED or DEPROVISIONED; sendEmail=false
// answers the activation link instead of emailing it).
func (s *Server) lifecycle(w http.ResponseWriter, r *http.Request, u *User) {
	switch op := r.PathValue("op"); op {
	case "suspend":
		if u.Status != "ACTIVE" {
			oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: Cannot suspend a user that is not active",
				"Cannot suspend a user that is not active")
			return
		}
		u.Status = "SUSPENDED"
	case "unsuspend":
		if u.Status != "SUSPENDED" {
			oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: Cannot unsuspend a user that is not suspended",
				"Cannot unsuspend a user that is not suspended")
			return
		}
		u.Status = "ACTIVE"
	case "deactivate":
		if u.Status == "DEPROVISIONED" {
			oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: User is already deactivated",
				"User is already deactivated")
			return
		}
		s.deactivate(u)
	case "activate":
		if u.Status != "STAGED" && u.Status != "DEPROVISIONED" {
			oktaError(w, http.StatusForbidden, "E0000016", "Activation failed because the user is already active")
			return
		}
		u.Status = "PROVISIONED"
		if r.URL.Query().Get("sendEmail") == "false" {
			writeJSON(w, http.StatusOK, map[string]string{
				"activationUrl":   "http://" + r.Host + "/welcome/fake-" + u.ID,
				"activationToken": "fake-" + u.ID})
			return
		}
	default:
		notFound(w, op, "Operation")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// clearSessions ends every session; oauthTokens=true also revokes the
// user's OAuth/OIDC tokens.
func (s *Server) clearSessions(w http.ResponseWriter, r *http.Request, u *User) {
	u.Sessions = 0
	if r.URL.Query().Get("oauthTokens") == "true" {
		u.OAuthTokens = 0
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) addToGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.PathValue("gid")]
	if g == nil {
		notFound(w, r.PathValue("gid"), "UserGroup")
		return
	}
	u := s.users[r.PathValue("uid")]
	if u == nil {
		notFound(w, r.PathValue("uid"), "User")
		return
	}
	g[u.ID] = true
	w.WriteHeader(http.StatusNoContent)
}
