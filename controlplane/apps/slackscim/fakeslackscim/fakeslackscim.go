// Package fakeslackscim is an in-memory Slack workspace answering Slack's SCIM
// 2.0 API (base /scim/v2) over real HTTP on 127.0.0.1: Users (create, filter
// by userName or email, PATCH, DELETE = deactivate) and Groups (filter by
// displayName, PATCH members), with Slack's own error shape
// {"Errors":{"description","code"}} and its 429 + Retry-After rate limiting.
// REFERENCE.md says what is followed and from where.
package fakeslackscim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps/internal/fakehttp"
)

// Schema URNs Slack uses.
const (
	SchemaUser    = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaList    = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// Options configure the workspace.
type Options struct {
	Token string
	// MaxCount caps a page (Slack: 1000); tests lower it.
	MaxCount int
}

// User is a stored member.
type User struct {
	ID         string
	UserName   string
	Email      string
	ExternalID string
	GivenName  string
	FamilyName string
	Title      string
	Active     bool
}

// Server is the fake workspace.
type Server struct {
	*fakehttp.Server
	opts Options

	mu      sync.Mutex
	tokenOK bool
	users   map[string]*User
	groups  map[string]*group
}

type group struct {
	id, name string
	members  map[string]bool
}

// Start serves the workspace until ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.MaxCount == 0 {
		opts.MaxCount = 1000
	}
	s := &Server{opts: opts, tokenOK: true, users: map[string]*User{}, groups: map[string]*group{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /scim/v2/Users", s.guard(s.listUsers))
	mux.HandleFunc("POST /scim/v2/Users", s.guard(s.createUser))
	mux.HandleFunc("GET /scim/v2/Users/{id}", s.guard(s.getUser))
	mux.HandleFunc("PATCH /scim/v2/Users/{id}", s.guard(s.patchUser))
	mux.HandleFunc("DELETE /scim/v2/Users/{id}", s.guard(s.deleteUser))
	mux.HandleFunc("GET /scim/v2/Groups", s.guard(s.listGroups))
	mux.HandleFunc("PATCH /scim/v2/Groups/{id}", s.guard(s.patchGroup))
	fs, err := fakehttp.Start(ctx, mux, func(w http.ResponseWriter, status int, retry time.Duration) {
		desc := "internal_error"
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
			desc = "ratelimited"
		}
		slackError(w, status, desc)
	})
	if err != nil {
		return nil, err
	}
	s.Server = fs
	return s, nil
}

// BaseURL is what the connector is configured with (Slack: https://api.slack.com/scim/v2).
func (s *Server) BaseURL() string { return s.URL + "/scim/v2" }

// RevokeToken makes the token refused, as when the admin who made it leaves.
func (s *Server) RevokeToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenOK = false
}

// AddUser stores a member and returns the id.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = newID("U")
	}
	s.users[u.ID] = &u
	return u.ID
}

// AddGroup creates a user group and returns its id.
func (s *Server) AddGroup(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID("S")
	s.groups[id] = &group{id: id, name: name, members: map[string]bool{}}
	return id
}

// AddToGroup makes a member belong to a group (set-up).
func (s *Server) AddToGroup(gid, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[gid].members[uid] = true
}

// User returns a copy of a member by id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		return *u, true
	}
	return User{}, false
}

// Rename changes a member's userName and email, as an admin would in Slack.
func (s *Server) Rename(id, userName, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		u.UserName, u.Email = userName, email
	}
}

// SetActive deactivates or reactivates a member, as a workspace admin does
// (reconciliation tests: a leaver turned back on by hand).
func (s *Server) SetActive(id string, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		u.Active = active
	}
}

// Members returns the sorted member ids of a group.
func (s *Server) Members(gid string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakehttp.SortedKeys(s.groups[gid].members)
}

func newID(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToUpper(hex.EncodeToString(b[:]))
}

// slackError writes Slack's SCIM error body (not RFC 7644's).
func slackError(w http.ResponseWriter, status int, desc string) {
	writeJSON(w, status, map[string]any{"Errors": map[string]any{"description": desc, "code": status}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ok := s.tokenOK
		s.mu.Unlock()
		tok, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !bearer || !ok || tok != s.opts.Token {
			slackError(w, http.StatusUnauthorized, "invalid_authentication")
			return
		}
		h(w, r)
	}
}

func (s *Server) render(u *User) map[string]any {
	groups := []map[string]string{}
	for _, g := range s.sortedGroups() {
		if g.members[u.ID] {
			groups = append(groups, map[string]string{"value": g.id, "display": g.name})
		}
	}
	out := map[string]any{
		"schemas": []string{SchemaUser}, "id": u.ID, "userName": u.UserName, "active": u.Active,
		"displayName": strings.TrimSpace(u.GivenName + " " + u.FamilyName),
		"name":        map[string]string{"givenName": u.GivenName, "familyName": u.FamilyName},
		"emails":      []map[string]any{{"value": u.Email, "primary": true}},
		"title":       u.Title, "groups": groups,
		"meta": map[string]string{"created": "2026-01-01T00:00:00-00:00", "location": "https://api.slack.com/scim/v2/Users/" + u.ID},
	}
	if u.ExternalID != "" {
		out["externalId"] = u.ExternalID
	}
	return out
}

func (s *Server) sortedGroups() []*group {
	out := make([]*group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

var filterRE = regexp.MustCompile(`^(\w+(?:\.\w+)?) eq "((?:[^"\\]|\\.)*)"$`)

// parseFilter reads the one form Slack documents: attribute eq "value".
func parseFilter(f string) (attr, val string, ok bool) {
	if f == "" {
		return "", "", true
	}
	m := filterRE.FindStringSubmatch(strings.TrimSpace(f))
	if m == nil {
		return "", "", false
	}
	v, err := strconv.Unquote(`"` + m[2] + `"`)
	if err != nil {
		return "", "", false
	}
	return m[1], v, true
}

// defaultCount is Slack's page size when no count is sent; a larger count
// than MaxCount is served as MaxCount, not refused (Slack changelog
// 2019-06-have-scim-will-paginate).
const defaultCount = 10

func (s *Server) list(w http.ResponseWriter, r *http.Request, all []map[string]any) {
	start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
	start = max(start, 1)
	count, err := strconv.Atoi(r.URL.Query().Get("count"))
	if err != nil || count <= 0 {
		count = defaultCount
	}
	count = min(count, s.opts.MaxCount)
	from := min(start-1, len(all))
	to := min(from+count, len(all))
	writeJSON(w, http.StatusOK, map[string]any{"schemas": []string{SchemaList}, "totalResults": len(all),
		"itemsPerPage": to - from, "startIndex": start, "Resources": all[from:to]})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	attr, val, ok := parseFilter(r.URL.Query().Get("filter"))
	if !ok || (attr != "" && attr != "userName" && attr != "email" && attr != "emails.value") {
		slackError(w, http.StatusBadRequest, "invalid_filter")
		return
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.users))
	for id := range s.users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := []map[string]any{}
	for _, id := range ids {
		u := s.users[id]
		match := attr == "" || (attr == "userName" && strings.EqualFold(u.UserName, val)) ||
			(attr != "userName" && strings.EqualFold(u.Email, val))
		if match {
			out = append(out, s.render(u))
		}
	}
	s.mu.Unlock()
	s.list(w, r, out)
}

type userBody struct {
	UserName   *string `json:"userName"`
	ExternalID *string `json:"externalId"`
	Active     *bool   `json:"active"`
	Title      *string `json:"title"`
	Name       *struct {
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
	} `json:"name"`
	Emails []struct {
		Value   string `json:"value"`
		Primary bool   `json:"primary"`
	} `json:"emails"`
}

var handleRE = regexp.MustCompile(`^[a-z0-9._-]{1,21}$`)

// conflict reports Slack's uniqueness errors; caller holds mu.
func (s *Server) conflict(userName, email, except string) string {
	for id, u := range s.users {
		if id == except {
			continue
		}
		if userName != "" && strings.EqualFold(u.UserName, userName) {
			return "username_taken"
		}
		if email != "" && strings.EqualFold(u.Email, email) {
			return "email_taken"
		}
	}
	return ""
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var b userBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.UserName == nil || len(b.Emails) == 0 {
		slackError(w, http.StatusBadRequest, "invalid_syntax")
		return
	}
	if !handleRE.MatchString(*b.UserName) {
		slackError(w, http.StatusBadRequest, "invalid_username")
		return
	}
	if !strings.Contains(b.Emails[0].Value, "@") {
		slackError(w, http.StatusBadRequest, "invalid_email")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conflict(*b.UserName, b.Emails[0].Value, ""); c != "" {
		slackError(w, http.StatusConflict, c)
		return
	}
	u := &User{ID: newID("U"), UserName: *b.UserName, Email: b.Emails[0].Value, Active: true}
	apply(u, &b)
	s.users[u.ID] = u
	writeJSON(w, http.StatusCreated, s.render(u))
}

func apply(u *User, b *userBody) {
	if b.ExternalID != nil {
		u.ExternalID = *b.ExternalID
	}
	if b.Active != nil {
		u.Active = *b.Active
	}
	if b.Title != nil {
		u.Title = *b.Title
	}
	if b.Name != nil {
		u.GivenName, u.FamilyName = b.Name.GivenName, b.Name.FamilyName
	}
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[r.PathValue("id")]
	if u == nil {
		slackError(w, http.StatusNotFound, "no_such_user")
		return
	}
	writeJSON(w, http.StatusOK, s.render(u))
}

type patch struct {
	Schemas    []string `json:"schemas"`
	Operations []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	} `json:"Operations"`
}

func readPatch(w http.ResponseWriter, r *http.Request) (patch, bool) {
	var p patch
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil || len(p.Operations) == 0 ||
		len(p.Schemas) != 1 || p.Schemas[0] != SchemaPatchOp {
		slackError(w, http.StatusBadRequest, "invalid_syntax")
		return p, false
	}
	return p, true
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) {
	p, ok := readPatch(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[r.PathValue("id")]
	if u == nil {
		slackError(w, http.StatusNotFound, "no_such_user")
		return
	}
	for _, op := range p.Operations {
		if !strings.EqualFold(op.Op, "replace") && !strings.EqualFold(op.Op, "add") {
			slackError(w, http.StatusBadRequest, "invalid_operation")
			return
		}
		var b userBody
		var err error
		switch op.Path {
		case "": // value is a partial resource
			err = json.Unmarshal(op.Value, &b)
		case "active":
			err = json.Unmarshal(op.Value, &b.Active)
		case "externalId":
			err = json.Unmarshal(op.Value, &b.ExternalID)
		case "title":
			err = json.Unmarshal(op.Value, &b.Title)
		default:
			slackError(w, http.StatusBadRequest, "invalid_path")
			return
		}
		if err != nil {
			slackError(w, http.StatusBadRequest, "invalid_syntax")
			return
		}
		apply(u, &b)
	}
	writeJSON(w, http.StatusOK, s.render(u))
}

// deleteUser deactivates, as Slack does: the member stays, inactive.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[r.PathValue("id")]
	if u == nil {
		slackError(w, http.StatusNotFound, "no_such_user")
		return
	}
	u.Active = false
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	attr, val, ok := parseFilter(r.URL.Query().Get("filter"))
	if !ok || (attr != "" && attr != "displayName") {
		slackError(w, http.StatusBadRequest, "invalid_filter")
		return
	}
	s.mu.Lock()
	out := []map[string]any{}
	for _, g := range s.sortedGroups() {
		if attr == "" || strings.EqualFold(g.name, val) {
			out = append(out, map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
				"id": g.id, "displayName": g.name})
		}
	}
	s.mu.Unlock()
	s.list(w, r, out)
}

var memberPathRE = regexp.MustCompile(`^members\[value eq "([^"]+)"\]$`)

func (s *Server) patchGroup(w http.ResponseWriter, r *http.Request) {
	p, ok := readPatch(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.PathValue("id")]
	if g == nil {
		slackError(w, http.StatusNotFound, "no_such_group")
		return
	}
	for _, op := range p.Operations {
		switch {
		case strings.EqualFold(op.Op, "add") && op.Path == "members":
			var ms []struct {
				Value string `json:"value"`
			}
			if err := json.Unmarshal(op.Value, &ms); err != nil {
				slackError(w, http.StatusBadRequest, "invalid_syntax")
				return
			}
			for _, m := range ms {
				if s.users[m.Value] == nil {
					slackError(w, http.StatusBadRequest, "invalid_members")
					return
				}
				g.members[m.Value] = true
			}
		case strings.EqualFold(op.Op, "remove") && memberPathRE.MatchString(op.Path):
			delete(g.members, memberPathRE.FindStringSubmatch(op.Path)[1])
		case strings.EqualFold(op.Op, "remove") && op.Path == "members":
			// The form Slack's own Java SDK sends: the members to drop as the value.
			var ms []struct {
				Value string `json:"value"`
			}
			if err := json.Unmarshal(op.Value, &ms); err != nil || len(ms) == 0 {
				slackError(w, http.StatusBadRequest, "invalid_syntax")
				return
			}
			for _, m := range ms {
				delete(g.members, m.Value)
			}
		default:
			slackError(w, http.StatusBadRequest, "invalid_operation")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
