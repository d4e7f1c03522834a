// Package fakescim is an in-memory SCIM 2.0 service provider (RFC 7643 /
// RFC 7644) for Users and Groups, served over real HTTP on 127.0.0.1. It is
// used by tests and `make run` demos to exercise the SCIM connector the way a
// real application (Okta-style targets, GitHub Enterprise, Linear, Slack)
// would answer: bearer-token auth, application/scim+json, ListResponse with
// paging, `eq` filters, PATCH with add/replace/remove, weak ETags with
// If-Match (412 on mismatch), uniqueness conflicts (409), and a switch that
// makes the whole service answer 503 so callers can test outages.
//
// Options reproduce what real targets do that a conforming client must survive
// (each one exposed a bug against a third-party server): a case-sensitive userName
// filter while uniqueness stays case-insensitive (409 on create), users without
// "active", PATCH answered 204 with no body, basic auth, and an OAuth 2.0
// client-credentials token endpoint. Failures can be injected per request (429 with
// Retry-After, 5xx, a slow answer). REFERENCE.md lists the shapes followed.
package fakescim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SCIM schema URNs.
const (
	SchemaUser     = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup    = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaList     = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaPatchOp  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	SchemaError    = "urn:ietf:params:scim:api:messages:2.0:Error"
	SchemaSPConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	ContentType    = "application/scim+json"
)

// Name is the SCIM "name" complex attribute.
type Name struct {
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
	Formatted  string `json:"formatted,omitempty"`
}

// Email is one entry of the multi-valued "emails" attribute.
type Email struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

// Member is one entry of a Group's "members".
type Member struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
	Ref     string `json:"$ref,omitempty"`
}

// User is a stored user.
type User struct {
	ID          string
	ExternalID  string
	UserName    string
	Name        Name
	DisplayName string
	Title       string
	Emails      []Email
	Active      bool
	version     int
	created     time.Time
	modified    time.Time
}

// Group is a stored group.
type Group struct {
	ID          string
	ExternalID  string
	DisplayName string
	Members     []Member
	version     int
	created     time.Time
	modified    time.Time
}

// Server is the fake service provider. Create it with Start.
type Server struct {
	// URL is the base URL (http://127.0.0.1:port); SCIM endpoints are
	// URL+"/Users", URL+"/Groups".
	URL   string
	Token string

	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	users    map[string]*User
	groups   map[string]*Group
	down     bool
	requests int
	byMethod map[string]int
	now      func() time.Time

	opts   options
	fails  []failure
	delay  time.Duration
	tokens map[string]bool // issued OAuth access tokens still valid
}

type options struct {
	caseSensitiveFilter bool
	noActive            bool
	patchNoContent      bool
	basicUser, basicPwd string
	oauthID, oauthKey   string
}

// failure is an injected answer for the next request.
type failure struct {
	method     string // "" for any
	status     int
	retryAfter string
	scimType   string
	detail     string
}

// Option configures the fake at Start.
type Option func(*options)

// CaseSensitiveUserNameFilter makes `userName eq` compare case-sensitively, as some
// servers do, while creating a user whose name differs only in case still answers
// 409 uniqueness (userName is caseExact=false in RFC 7643 §4.1.1).
func CaseSensitiveUserNameFilter() Option { return func(o *options) { o.caseSensitiveFilter = true } }

// WithoutActive renders users without the "active" attribute (it is optional in
// RFC 7643 §4.1.1); PATCHes of active are still accepted and stored.
func WithoutActive() Option { return func(o *options) { o.noActive = true } }

// PatchNoContent answers a successful PATCH with 204 and no body (RFC 7644 §3.5.2).
func PatchNoContent() Option { return func(o *options) { o.patchNoContent = true } }

// BasicAuth requires HTTP basic auth (RFC 7617) with user and password instead of
// the bearer token.
func BasicAuth(user, password string) Option {
	return func(o *options) { o.basicUser, o.basicPwd = user, password }
}

// OAuthClient serves POST /oauth/token (client credentials, RFC 6749 §4.4) for one
// client and accepts only the access tokens it issued.
func OAuthClient(clientID, clientSecret string) Option {
	return func(o *options) { o.oauthID, o.oauthKey = clientID, clientSecret }
}

// Start listens on 127.0.0.1 on a free port and serves until Close.
func Start(token string, opts ...Option) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakescim: listen: %w", err)
	}
	s := &Server{
		URL:      "http://" + ln.Addr().String(),
		Token:    token,
		ln:       ln,
		users:    map[string]*User{},
		groups:   map[string]*Group{},
		byMethod: map[string]int{},
		now:      func() time.Time { return time.Now().UTC() },
		tokens:   map[string]bool{},
	}
	for _, o := range opts {
		o(&s.opts)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetDown makes every request answer 503 (true) or serves normally (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// FailNext makes the next n requests answer status with the SCIM error body, and a
// Retry-After header when retryAfter is not empty (429 throttling, 5xx outages,
// 401 expired credentials).
func (s *Server) FailNext(n, status int, retryAfter, scimType, detail string) {
	s.FailNextOn("", n, status, retryAfter, scimType, detail)
}

// FailNextOn is FailNext for requests of one HTTP method only ("POST": the create).
func (s *Server) FailNextOn(method string, n, status int, retryAfter, scimType, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.fails = append(s.fails, failure{method: method, status: status, retryAfter: retryAfter, scimType: scimType, detail: detail})
	}
}

// SetDelay makes every answer wait d first (a slow or hung target; the wait ends
// early when the client gives up).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// RevokeTokens invalidates every OAuth access token issued so far (the client must
// fetch a new one, as after a credential rotation).
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	s.tokens = map[string]bool{}
	s.mu.Unlock()
}

// TokenURL is the OAuth token endpoint (with OAuthClient).
func (s *Server) TokenURL() string { return s.URL + "/oauth/token" }

// AddUser stores a user directly (an account made in the app before Lanyard, or by
// an admin) as given (set Active) and returns its id.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	u.ID, u.version, u.created, u.modified = newID(), 1, now, now
	s.users[u.ID] = &u
	return u.ID
}

// RenameUser changes a user's userName in the app (an admin's edit Lanyard did not make).
func (s *Server) RenameUser(id, userName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[id]; ok {
		u.UserName = userName
		s.touchUser(u)
	}
}

// DeleteUser removes a user directly (deleted in the app by an admin).
func (s *Server) DeleteUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, id)
	for _, g := range s.groups {
		removeMember(g, id)
	}
}

// Users returns a copy of every user, oldest first.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []User
	for _, u := range s.sortedUsers() {
		out = append(out, *u)
	}
	return out
}

// Requests returns how many requests reached the server (including 503s).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// RequestsByMethod returns how many requests of an HTTP method were served.
func (s *Server) RequestsByMethod(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byMethod[method]
}

// AddGroup creates a group directly (as an admin of the app would) and
// returns its id.
func (s *Server) AddGroup(displayName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	g := &Group{ID: newID(), DisplayName: displayName, version: 1, created: now, modified: now}
	s.groups[g.ID] = g
	return g.ID
}

// UserByName returns a copy of the user with userName (case-insensitive).
func (s *Server) UserByName(userName string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.UserName, userName) {
			cp := *u
			cp.Emails = append([]Email(nil), u.Emails...)
			return cp, true
		}
	}
	return User{}, false
}

// UserChangedAt is UserByName with the time the user last changed (when a
// suspension landed, for benchmarks).
func (s *Server) UserChangedAt(userName string) (User, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.UserName, userName) {
			return *u, u.modified, true
		}
	}
	return User{}, time.Time{}, false
}

// GroupMembers returns the member user ids of the group named displayName.
func (s *Server) GroupMembers(displayName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		if g.DisplayName == displayName {
			out := make([]string, 0, len(g.Members))
			for _, m := range g.Members {
				out = append(out, m.Value)
			}
			sort.Strings(out)
			return out
		}
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// scimError writes an RFC 7644 §3.12 error response.
func scimError(w http.ResponseWriter, status int, scimType, detail string) {
	body := map[string]any{
		"schemas": []string{SchemaError},
		"status":  strconv.Itoa(status),
		"detail":  detail,
	}
	if scimType != "" {
		body["scimType"] = scimType
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, status int, etag string, v any) {
	w.Header().Set("Content-Type", ContentType)
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func etagOf(version int) string { return fmt.Sprintf(`W/"%d"`, version) }

// ServeHTTP routes SCIM requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.down {
		scimError(w, http.StatusServiceUnavailable, "", "service is down")
		return
	}
	if f, ok := s.takeFailure(r.Method); ok {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		scimError(w, f.status, f.scimType, orDefault(f.detail, http.StatusText(f.status)))
		return
	}
	s.byMethod[r.Method]++
	if r.URL.Path == "/oauth/token" && s.opts.oauthID != "" {
		s.issueToken(w, r)
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", s.challenge())
		scimError(w, http.StatusUnauthorized, "", "missing, invalid or expired credentials")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "ServiceProviderConfig" && r.Method == http.MethodGet:
		writeJSON(w, 200, "", map[string]any{
			"schemas":        []string{SchemaSPConfig},
			"patch":          map[string]bool{"supported": true},
			"bulk":           map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
			"filter":         map[string]any{"supported": true, "maxResults": 200},
			"changePassword": map[string]bool{"supported": false},
			"sort":           map[string]bool{"supported": false},
			"etag":           map[string]bool{"supported": true},
			"authenticationSchemes": []map[string]any{{
				"type": "oauthbearertoken", "name": "OAuth Bearer Token",
				"description": "Authentication scheme using the OAuth Bearer Token Standard",
			}},
		})
	case len(parts) == 1 && parts[0] == "Users":
		switch r.Method {
		case http.MethodGet:
			s.listUsers(w, r)
		case http.MethodPost:
			s.createUser(w, r)
		default:
			scimError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		}
	case len(parts) == 2 && parts[0] == "Users":
		s.userByID(w, r, parts[1])
	case len(parts) == 1 && parts[0] == "Groups":
		switch r.Method {
		case http.MethodGet:
			s.listGroups(w, r)
		case http.MethodPost:
			s.createGroup(w, r)
		default:
			scimError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		}
	case len(parts) == 2 && parts[0] == "Groups":
		s.groupByID(w, r, parts[1])
	default:
		scimError(w, http.StatusNotFound, "", "no such endpoint")
	}
}

// takeFailure pops the first injected failure that applies to method.
func (s *Server) takeFailure(method string) (failure, bool) {
	for i, f := range s.fails {
		if f.method == "" || f.method == method {
			s.fails = append(s.fails[:i], s.fails[i+1:]...)
			return f, true
		}
	}
	return failure{}, false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (s *Server) challenge() string {
	if s.opts.basicUser != "" {
		return `Basic realm="fakescim"`
	}
	return `Bearer realm="fakescim"`
}

// authorized checks the request's credentials against the configured scheme.
func (s *Server) authorized(r *http.Request) bool {
	switch {
	case s.opts.basicUser != "":
		u, p, ok := r.BasicAuth()
		return ok && u == s.opts.basicUser && p == s.opts.basicPwd
	case s.opts.oauthID != "":
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && s.tokens[tok]
	case s.Token != "":
		return r.Header.Get("Authorization") == "Bearer "+s.Token
	}
	return true
}

// issueToken is the token endpoint (RFC 6749 §4.4, errors per §5.2). The client
// authenticates with basic auth or client_id/client_secret in the form.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	oauthErr := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		oauthErr(http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
		return
	}
	if id != s.opts.oauthID || secret != s.opts.oauthKey {
		oauthErr(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	tok := newID()
	s.tokens[tok] = true
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

// ---- rendering ----

func (s *Server) renderUser(u *User) map[string]any {
	m := map[string]any{
		"schemas":  []string{SchemaUser},
		"id":       u.ID,
		"userName": u.UserName,
		"meta": map[string]any{
			"resourceType": "User",
			"created":      u.created.Format(time.RFC3339),
			"lastModified": u.modified.Format(time.RFC3339),
			"location":     s.URL + "/Users/" + u.ID,
			"version":      etagOf(u.version),
		},
	}
	if !s.opts.noActive {
		m["active"] = u.Active
	}
	if u.ExternalID != "" {
		m["externalId"] = u.ExternalID
	}
	if u.Name != (Name{}) {
		m["name"] = u.Name
	}
	if u.DisplayName != "" {
		m["displayName"] = u.DisplayName
	}
	if u.Title != "" {
		m["title"] = u.Title
	}
	if len(u.Emails) > 0 {
		m["emails"] = u.Emails
	}
	var groups []map[string]string
	for _, g := range s.sortedGroups() {
		for _, mem := range g.Members {
			if mem.Value == u.ID {
				groups = append(groups, map[string]string{"value": g.ID, "display": g.DisplayName, "$ref": s.URL + "/Groups/" + g.ID})
			}
		}
	}
	if len(groups) > 0 {
		m["groups"] = groups
	}
	return m
}

func (s *Server) renderGroup(g *Group) map[string]any {
	members := make([]Member, 0, len(g.Members))
	for _, mem := range g.Members {
		mem.Ref = s.URL + "/Users/" + mem.Value
		members = append(members, mem)
	}
	m := map[string]any{
		"schemas":     []string{SchemaGroup},
		"id":          g.ID,
		"displayName": g.DisplayName,
		"members":     members,
		"meta": map[string]any{
			"resourceType": "Group",
			"created":      g.created.Format(time.RFC3339),
			"lastModified": g.modified.Format(time.RFC3339),
			"location":     s.URL + "/Groups/" + g.ID,
			"version":      etagOf(g.version),
		},
	}
	if g.ExternalID != "" {
		m["externalId"] = g.ExternalID
	}
	return m
}

func (s *Server) sortedUsers() []*User {
	out := make([]*User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].created.Before(out[j].created) || (out[i].created.Equal(out[j].created) && out[i].ID < out[j].ID)
	})
	return out
}

func (s *Server) sortedGroups() []*Group {
	out := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].DisplayName < out[j].DisplayName || (out[i].DisplayName == out[j].DisplayName && out[i].ID < out[j].ID)
	})
	return out
}

// ---- filtering and paging (RFC 7644 §3.4.2) ----

// filterExpr is a conjunction of `attr eq "value"` comparisons, the subset
// of the filter grammar provisioning clients use.
type filterExpr []struct{ attr, value string }

func parseFilter(f string) (filterExpr, error) {
	var out filterExpr
	if strings.TrimSpace(f) == "" {
		return nil, nil
	}
	for _, clause := range splitAnd(f) {
		clause = strings.TrimSpace(clause)
		sp := strings.SplitN(clause, " ", 3)
		if len(sp) != 3 || !strings.EqualFold(sp[1], "eq") {
			return nil, fmt.Errorf("unsupported filter clause %q", clause)
		}
		v := strings.TrimSpace(sp[2])
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, fmt.Errorf("filter value must be a quoted string: %q", clause)
		}
		unq, err := strconv.Unquote(v)
		if err != nil {
			return nil, fmt.Errorf("bad filter value %s: %w", v, err)
		}
		out = append(out, struct{ attr, value string }{strings.ToLower(sp[0]), unq})
	}
	return out, nil
}

// splitAnd splits on " and " outside quoted strings.
func splitAnd(f string) []string {
	var parts []string
	inQ := false
	start := 0
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == '\\' && inQ:
			i++
		case f[i] == '"':
			inQ = !inQ
		case !inQ && i+5 <= len(f) && strings.EqualFold(f[i:i+5], " and "):
			parts = append(parts, f[start:i])
			start = i + 5
			i += 4
		}
	}
	return append(parts, f[start:])
}

func userAttr(u *User, attr string) (string, bool, error) {
	switch attr {
	case "username":
		return u.UserName, false, nil // userName is caseExact=false (RFC 7643 §4.1.1)
	case "externalid":
		return u.ExternalID, true, nil
	case "id":
		return u.ID, true, nil
	case "displayname":
		return u.DisplayName, false, nil
	case "emails", "emails.value":
		for _, e := range u.Emails {
			return e.Value, false, nil
		}
		return "", false, nil
	case "active":
		return strconv.FormatBool(u.Active), true, nil
	}
	return "", false, fmt.Errorf("unsupported filter attribute %q", attr)
}

func groupAttr(g *Group, attr string) (string, bool, error) {
	switch attr {
	case "displayname":
		return g.DisplayName, false, nil
	case "externalid":
		return g.ExternalID, true, nil
	case "id":
		return g.ID, true, nil
	}
	return "", false, fmt.Errorf("unsupported filter attribute %q", attr)
}

func eq(got, want string, caseExact bool) bool {
	if caseExact {
		return got == want
	}
	return strings.EqualFold(got, want)
}

func paging(r *http.Request) (start, count int, err error) {
	start, count = 1, 100
	q := r.URL.Query()
	if v := q.Get("startIndex"); v != "" {
		if start, err = strconv.Atoi(v); err != nil {
			return 0, 0, fmt.Errorf("bad startIndex")
		}
		if start < 1 {
			start = 1 // RFC 7644 §3.4.2.4: values less than 1 are interpreted as 1
		}
	}
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil {
			return 0, 0, fmt.Errorf("bad count")
		}
		if count < 0 {
			count = 0
		}
	}
	return start, count, nil
}

func listResponse(total, start int, resources []map[string]any) map[string]any {
	if resources == nil {
		resources = []map[string]any{}
	}
	return map[string]any{
		"schemas":      []string{SchemaList},
		"totalResults": total,
		"startIndex":   start,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}
}

func page[T any](all []T, start, count int) []T {
	if start-1 >= len(all) {
		return nil
	}
	end := start - 1 + count
	if end > len(all) {
		end = len(all)
	}
	return all[start-1 : end]
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	attr := userAttr
	if s.opts.caseSensitiveFilter {
		attr = func(u *User, a string) (string, bool, error) {
			v, exact, err := userAttr(u, a)
			return v, exact || a == "username", err
		}
	}
	listResources(w, r, s.sortedUsers(), attr, s.renderUser)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	listResources(w, r, s.sortedGroups(), groupAttr, s.renderGroup)
}

// listResources answers a SCIM list request (filter, startIndex, count) for one resource
// type; Users and Groups differ only in their attributes and rendering.
func listResources[T any](w http.ResponseWriter, r *http.Request, all []T,
	attr func(T, string) (string, bool, error), render func(T) map[string]any) {
	f, err := parseFilter(r.URL.Query().Get("filter"))
	if err != nil {
		scimError(w, 400, "invalidFilter", err.Error())
		return
	}
	start, count, err := paging(r)
	if err != nil {
		scimError(w, 400, "invalidValue", err.Error())
		return
	}
	var match []T
	for _, item := range all {
		ok := true
		for _, c := range f {
			got, exact, err := attr(item, c.attr)
			if err != nil {
				scimError(w, 400, "invalidFilter", err.Error())
				return
			}
			if !eq(got, c.value, exact) {
				ok = false
				break
			}
		}
		if ok {
			match = append(match, item)
		}
	}
	var res []map[string]any
	for _, item := range page(match, start, count) {
		res = append(res, render(item))
	}
	writeJSON(w, 200, "", listResponse(len(match), start, res))
}

// ---- users ----

type userBody struct {
	Schemas     []string `json:"schemas"`
	ExternalID  string   `json:"externalId"`
	UserName    string   `json:"userName"`
	Name        *Name    `json:"name"`
	DisplayName string   `json:"displayName"`
	Title       string   `json:"title"`
	Emails      []Email  `json:"emails"`
	Active      *bool    `json:"active"`
}

func readJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func hasSchema(schemas []string, want string) bool {
	for _, s := range schemas {
		if s == want {
			return true
		}
	}
	return false
}

func (s *Server) userNameTaken(name, exceptID string) bool {
	for _, u := range s.users {
		if u.ID != exceptID && strings.EqualFold(u.UserName, name) {
			return true
		}
	}
	return false
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var b userBody
	if err := readJSON(r, &b); err != nil {
		scimError(w, 400, "invalidSyntax", "body is not valid JSON: "+err.Error())
		return
	}
	if !hasSchema(b.Schemas, SchemaUser) {
		scimError(w, 400, "invalidValue", "schemas must include "+SchemaUser)
		return
	}
	if strings.TrimSpace(b.UserName) == "" {
		scimError(w, 400, "invalidValue", "userName is required")
		return
	}
	if s.userNameTaken(b.UserName, "") {
		scimError(w, 409, "uniqueness", "userName is already in use")
		return
	}
	now := s.now()
	u := &User{ID: newID(), ExternalID: b.ExternalID, UserName: b.UserName, DisplayName: b.DisplayName,
		Title: b.Title, Emails: b.Emails, Active: true, version: 1, created: now, modified: now}
	if b.Name != nil {
		u.Name = *b.Name
	}
	if b.Active != nil {
		u.Active = *b.Active
	}
	s.users[u.ID] = u
	w.Header().Set("Location", s.URL+"/Users/"+u.ID)
	writeJSON(w, http.StatusCreated, etagOf(u.version), s.renderUser(u))
}

// checkIfMatch enforces If-Match (RFC 7644 §3.14, RFC 7232 §3.1).
func checkIfMatch(w http.ResponseWriter, r *http.Request, version int) bool {
	im := r.Header.Get("If-Match")
	if im == "" || im == "*" {
		return true
	}
	cur := etagOf(version)
	for _, t := range strings.Split(im, ",") {
		t = strings.TrimSpace(t)
		// Weak comparison: W/"3" matches "3".
		if strings.TrimPrefix(t, "W/") == strings.TrimPrefix(cur, "W/") {
			return true
		}
	}
	scimError(w, http.StatusPreconditionFailed, "", "resource version is "+cur)
	return false
}

func (s *Server) userByID(w http.ResponseWriter, r *http.Request, id string) {
	u, ok := s.users[id]
	if !ok {
		scimError(w, 404, "", "User "+id+" not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		if inm := r.Header.Get("If-None-Match"); inm != "" && strings.TrimPrefix(inm, "W/") == strings.TrimPrefix(etagOf(u.version), "W/") {
			w.Header().Set("ETag", etagOf(u.version))
			w.WriteHeader(http.StatusNotModified)
			return
		}
		writeJSON(w, 200, etagOf(u.version), s.renderUser(u))
	case http.MethodPut:
		if !checkIfMatch(w, r, u.version) {
			return
		}
		var b userBody
		if err := readJSON(r, &b); err != nil {
			scimError(w, 400, "invalidSyntax", err.Error())
			return
		}
		if strings.TrimSpace(b.UserName) == "" {
			scimError(w, 400, "invalidValue", "userName is required")
			return
		}
		if s.userNameTaken(b.UserName, u.ID) {
			scimError(w, 409, "uniqueness", "userName is already in use")
			return
		}
		u.UserName, u.ExternalID, u.DisplayName, u.Title, u.Emails = b.UserName, b.ExternalID, b.DisplayName, b.Title, b.Emails
		u.Name = Name{}
		if b.Name != nil {
			u.Name = *b.Name
		}
		if b.Active != nil {
			u.Active = *b.Active
		}
		s.touchUser(u)
		writeJSON(w, 200, etagOf(u.version), s.renderUser(u))
	case http.MethodPatch:
		if !checkIfMatch(w, r, u.version) {
			return
		}
		ops, ok := readPatch(w, r)
		if !ok {
			return
		}
		cp := *u
		for _, op := range ops {
			if err := applyUserOp(&cp, op); err != nil {
				scimError(w, 400, err.scimType, err.detail)
				return
			}
		}
		if s.userNameTaken(cp.UserName, u.ID) {
			scimError(w, 409, "uniqueness", "userName is already in use")
			return
		}
		*u = cp
		s.touchUser(u)
		if s.opts.patchNoContent {
			w.Header().Set("ETag", etagOf(u.version))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, 200, etagOf(u.version), s.renderUser(u))
	case http.MethodDelete:
		if !checkIfMatch(w, r, u.version) {
			return
		}
		delete(s.users, id)
		for _, g := range s.groups {
			if removeMember(g, id) {
				s.touchGroup(g)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		scimError(w, http.StatusMethodNotAllowed, "", "method not allowed")
	}
}

func (s *Server) touchUser(u *User) {
	u.version++
	u.modified = s.now()
}

func (s *Server) touchGroup(g *Group) {
	g.version++
	g.modified = s.now()
}

// ---- PATCH (RFC 7644 §3.5.2) ----

type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

type opError struct{ scimType, detail string }

func readPatch(w http.ResponseWriter, r *http.Request) ([]patchOp, bool) {
	var body struct {
		Schemas    []string  `json:"schemas"`
		Operations []patchOp `json:"Operations"`
	}
	if err := readJSON(r, &body); err != nil {
		scimError(w, 400, "invalidSyntax", "body is not valid JSON: "+err.Error())
		return nil, false
	}
	if !hasSchema(body.Schemas, SchemaPatchOp) {
		scimError(w, 400, "invalidValue", "schemas must be "+SchemaPatchOp)
		return nil, false
	}
	if len(body.Operations) == 0 {
		scimError(w, 400, "invalidValue", "Operations is empty")
		return nil, false
	}
	for i := range body.Operations {
		body.Operations[i].Op = strings.ToLower(body.Operations[i].Op)
		switch body.Operations[i].Op {
		case "add", "replace", "remove":
		default:
			scimError(w, 400, "invalidSyntax", "unknown op "+body.Operations[i].Op)
			return nil, false
		}
		if body.Operations[i].Op == "remove" && body.Operations[i].Path == "" {
			scimError(w, 400, "noTarget", "remove requires a path")
			return nil, false
		}
	}
	return body.Operations, true
}

// parseBool accepts JSON true/false and the strings "True"/"False" that some
// clients (Azure AD) send.
func parseBool(raw json.RawMessage) (bool, bool) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := strconv.ParseBool(s); err == nil {
			return v, true
		}
	}
	return false, false
}

func applyUserOp(u *User, op patchOp) *opError {
	path := strings.ToLower(op.Path)
	if path == "" {
		// No path: value is a partial resource whose attributes are replaced.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(op.Value, &m); err != nil {
			return &opError{"invalidValue", "value must be an object when path is omitted"}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if e := applyUserOp(u, patchOp{Op: op.Op, Path: k, Value: m[k]}); e != nil {
				return e
			}
		}
		return nil
	}
	str := func(dst *string) *opError {
		if op.Op == "remove" {
			*dst = ""
			return nil
		}
		if err := json.Unmarshal(op.Value, dst); err != nil {
			return &opError{"invalidValue", op.Path + " must be a string"}
		}
		return nil
	}
	switch path {
	case "active":
		if op.Op == "remove" {
			return &opError{"mutability", "active cannot be removed"}
		}
		v, ok := parseBool(op.Value)
		if !ok {
			return &opError{"invalidValue", "active must be a boolean"}
		}
		u.Active = v
	case "username":
		if op.Op == "remove" {
			return &opError{"mutability", "userName is required"}
		}
		return str(&u.UserName)
	case "externalid":
		return str(&u.ExternalID)
	case "displayname":
		return str(&u.DisplayName)
	case "title":
		return str(&u.Title)
	case "name.givenname":
		return str(&u.Name.GivenName)
	case "name.familyname":
		return str(&u.Name.FamilyName)
	case "name":
		if op.Op == "remove" {
			u.Name = Name{}
			return nil
		}
		if err := json.Unmarshal(op.Value, &u.Name); err != nil {
			return &opError{"invalidValue", "name must be an object"}
		}
	case "emails":
		if op.Op == "remove" {
			u.Emails = nil
			return nil
		}
		var es []Email
		if err := json.Unmarshal(op.Value, &es); err != nil {
			return &opError{"invalidValue", "emails must be an array"}
		}
		if op.Op == "add" {
			u.Emails = append(u.Emails, es...)
		} else {
			u.Emails = es
		}
	case "id", "meta", "schemas", "groups":
		return &opError{"mutability", op.Path + " is read-only"}
	default:
		return &opError{"invalidPath", "unsupported path " + op.Path}
	}
	return nil
}

// ---- groups ----

type groupBody struct {
	Schemas     []string `json:"schemas"`
	ExternalID  string   `json:"externalId"`
	DisplayName string   `json:"displayName"`
	Members     []Member `json:"members"`
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	var b groupBody
	if err := readJSON(r, &b); err != nil {
		scimError(w, 400, "invalidSyntax", err.Error())
		return
	}
	if !hasSchema(b.Schemas, SchemaGroup) {
		scimError(w, 400, "invalidValue", "schemas must include "+SchemaGroup)
		return
	}
	if strings.TrimSpace(b.DisplayName) == "" {
		scimError(w, 400, "invalidValue", "displayName is required")
		return
	}
	for _, g := range s.groups {
		if strings.EqualFold(g.DisplayName, b.DisplayName) {
			scimError(w, 409, "uniqueness", "displayName is already in use")
			return
		}
	}
	now := s.now()
	g := &Group{ID: newID(), DisplayName: b.DisplayName, ExternalID: b.ExternalID, version: 1, created: now, modified: now}
	for _, m := range b.Members {
		if _, ok := s.users[m.Value]; !ok {
			scimError(w, 400, "invalidValue", "member "+m.Value+" does not exist")
			return
		}
		addMember(g, Member{Value: m.Value, Display: m.Display})
	}
	s.groups[g.ID] = g
	w.Header().Set("Location", s.URL+"/Groups/"+g.ID)
	writeJSON(w, http.StatusCreated, etagOf(g.version), s.renderGroup(g))
}

func addMember(g *Group, m Member) bool {
	for _, e := range g.Members {
		if e.Value == m.Value {
			return false
		}
	}
	g.Members = append(g.Members, Member{Value: m.Value, Display: m.Display})
	return true
}

func removeMember(g *Group, id string) bool {
	for i, e := range g.Members {
		if e.Value == id {
			g.Members = append(g.Members[:i], g.Members[i+1:]...)
			return true
		}
	}
	return false
}

func (s *Server) groupByID(w http.ResponseWriter, r *http.Request, id string) {
	g, ok := s.groups[id]
	if !ok {
		scimError(w, 404, "", "Group "+id+" not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, 200, etagOf(g.version), s.renderGroup(g))
	case http.MethodPatch:
		if !checkIfMatch(w, r, g.version) {
			return
		}
		ops, ok := readPatch(w, r)
		if !ok {
			return
		}
		cp := *g
		cp.Members = append([]Member(nil), g.Members...)
		for _, op := range ops {
			if e := s.applyGroupOp(&cp, op); e != nil {
				scimError(w, 400, e.scimType, e.detail)
				return
			}
		}
		*g = cp
		s.touchGroup(g)
		writeJSON(w, 200, etagOf(g.version), s.renderGroup(g))
	case http.MethodPut:
		if !checkIfMatch(w, r, g.version) {
			return
		}
		var b groupBody
		if err := readJSON(r, &b); err != nil {
			scimError(w, 400, "invalidSyntax", err.Error())
			return
		}
		cp := *g
		cp.DisplayName, cp.ExternalID, cp.Members = b.DisplayName, b.ExternalID, nil
		for _, m := range b.Members {
			if _, ok := s.users[m.Value]; !ok {
				scimError(w, 400, "invalidValue", "member "+m.Value+" does not exist")
				return
			}
			addMember(&cp, m)
		}
		*g = cp
		s.touchGroup(g)
		writeJSON(w, 200, etagOf(g.version), s.renderGroup(g))
	case http.MethodDelete:
		if !checkIfMatch(w, r, g.version) {
			return
		}
		delete(s.groups, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		scimError(w, http.StatusMethodNotAllowed, "", "method not allowed")
	}
}

// memberFilterPath parses `members[value eq "id"]`.
func memberFilterPath(p string) (string, bool) {
	lp := strings.ToLower(p)
	if !strings.HasPrefix(lp, "members[") || !strings.HasSuffix(lp, "]") {
		return "", false
	}
	f, err := parseFilter(p[len("members[") : len(p)-1])
	if err != nil || len(f) != 1 || f[0].attr != "value" {
		return "", false
	}
	return f[0].value, true
}

func (s *Server) applyGroupOp(g *Group, op patchOp) *opError {
	path := strings.ToLower(op.Path)
	if id, ok := memberFilterPath(op.Path); ok {
		if op.Op != "remove" {
			return &opError{"invalidPath", "only remove is supported on a filtered members path"}
		}
		removeMember(g, id)
		return nil
	}
	switch path {
	case "", "members":
		if path == "" {
			var m struct {
				DisplayName *string  `json:"displayName"`
				Members     []Member `json:"members"`
			}
			if err := json.Unmarshal(op.Value, &m); err != nil {
				return &opError{"invalidValue", "value must be an object when path is omitted"}
			}
			if m.DisplayName != nil {
				g.DisplayName = *m.DisplayName
			}
			if m.Members == nil {
				return nil
			}
			return s.applyMembers(g, op.Op, m.Members)
		}
		if op.Op == "remove" && len(op.Value) == 0 {
			g.Members = nil
			return nil
		}
		var ms []Member
		if err := json.Unmarshal(op.Value, &ms); err != nil {
			return &opError{"invalidValue", "members must be an array"}
		}
		return s.applyMembers(g, op.Op, ms)
	case "displayname":
		if op.Op == "remove" {
			return &opError{"mutability", "displayName is required"}
		}
		if err := json.Unmarshal(op.Value, &g.DisplayName); err != nil {
			return &opError{"invalidValue", "displayName must be a string"}
		}
	case "externalid":
		if op.Op == "remove" {
			g.ExternalID = ""
			return nil
		}
		if err := json.Unmarshal(op.Value, &g.ExternalID); err != nil {
			return &opError{"invalidValue", "externalId must be a string"}
		}
	default:
		return &opError{"invalidPath", "unsupported path " + op.Path}
	}
	return nil
}

func (s *Server) applyMembers(g *Group, op string, ms []Member) *opError {
	switch op {
	case "add", "replace":
		if op == "replace" {
			g.Members = nil
		}
		for _, m := range ms {
			if _, ok := s.users[m.Value]; !ok {
				return &opError{"invalidValue", "member " + m.Value + " does not exist"}
			}
			addMember(g, m)
		}
	case "remove":
		for _, m := range ms {
			removeMember(g, m.Value)
		}
	}
	return nil
}
