// Package fakegithub is an in-memory GitHub organisation answering the REST
// endpoints the github connector uses (organisation memberships, members,
// invitations, teams and team memberships) over real HTTP on 127.0.0.1, with
// GitHub's shapes (REFERENCE.md): bearer tokens, X-GitHub-Api-Version,
// {message, documentation_url} errors, Link-header paging, and both rate
// limits (primary: 403 with x-ratelimit-remaining 0 and x-ratelimit-reset;
// secondary: 429 with retry-after, or 403/429 with only the message).
package fakegithub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps/internal/fakehttp"
)

// APIVersion is the REST API version the fake serves.
const APIVersion = "2022-11-28"

// Options configure the organisation.
type Options struct {
	Org   string
	Token string
	// PerPageMax caps per_page (GitHub: 100); tests lower it to page.
	PerPageMax int
}

// Membership is a user's standing in the org.
type Membership struct {
	State string // "active" or "pending"
	Role  string // "admin" or "member"
}

// Invitation is a pending organisation invitation.
type Invitation struct {
	ID      int64
	Login   string // empty for an email invitation
	Email   string
	Role    string
	TeamIDs []int64
}

// Team is an org team.
type Team struct {
	ID      int64
	Slug    string
	Name    string
	Members map[string]string // login → state (active, pending)
}

// Server is the fake organisation.
type Server struct {
	*fakehttp.Server
	opts Options

	mu          sync.Mutex
	tokenOK     bool
	rateReset   time.Time        // primary rate limit exhausted until then
	secondary   int              // next N requests hit a secondary limit without retry-after
	secondaryAs int              // the status they get: 403 or 429
	users       map[string]int64 // login → user id (every GitHub account known to the fake)
	members     map[string]*Membership
	invitations []*Invitation
	teams       map[string]*Team
	nextID      int64
}

// Start serves the organisation until ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.PerPageMax == 0 {
		opts.PerPageMax = 100
	}
	s := &Server{opts: opts, tokenOK: true, users: map[string]int64{}, members: map[string]*Membership{},
		teams: map[string]*Team{}, nextID: 1000}
	o := "/orgs/{org}"
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+o+"/memberships/{username}", s.guard(s.getMembership))
	mux.HandleFunc("PUT "+o+"/memberships/{username}", s.guard(s.putMembership))
	mux.HandleFunc("GET "+o+"/members", s.guard(s.listMembers))
	mux.HandleFunc("DELETE "+o+"/members/{username}", s.guard(s.deleteMember))
	mux.HandleFunc("GET "+o+"/invitations", s.guard(s.listInvitations))
	mux.HandleFunc("POST "+o+"/invitations", s.guard(s.createInvitation))
	mux.HandleFunc("DELETE "+o+"/invitations/{id}", s.guard(s.deleteInvitation))
	mux.HandleFunc("GET "+o+"/teams/{slug}", s.guard(s.getTeam))
	mux.HandleFunc("PUT "+o+"/teams/{slug}/memberships/{username}", s.guard(s.putTeamMembership))
	mux.HandleFunc("DELETE "+o+"/teams/{slug}/memberships/{username}", s.guard(s.deleteTeamMembership))
	fs, err := fakehttp.Start(ctx, mux, func(w http.ResponseWriter, status int, retry time.Duration) {
		msg := "Server Error"
		if status == http.StatusTooManyRequests {
			w.Header().Set("retry-after", strconv.Itoa(int(retry/time.Second)))
			msg = secondaryMessage
		}
		ghError(w, status, msg)
	})
	if err != nil {
		return nil, err
	}
	s.Server = fs
	return s, nil
}

// AddUser makes a GitHub account exist (outside the org).
func (s *Server) AddUser(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.users[strings.ToLower(login)] = s.nextID
}

// AddMember makes login an active member.
func (s *Server) AddMember(login, role string) {
	s.AddUser(login)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[strings.ToLower(login)] = &Membership{State: "active", Role: role}
}

// AddTeam creates a team and returns its id.
func (s *Server) AddTeam(slug string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.teams[slug] = &Team{ID: s.nextID, Slug: slug, Name: slug, Members: map[string]string{}}
	return s.nextID
}

// AddToTeam puts a member on a team (set-up).
func (s *Server) AddToTeam(slug, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.teams[slug].Members[strings.ToLower(login)] = "active"
}

// Accept makes login accept their pending membership (they clicked the email).
func (s *Server) Accept(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.members[strings.ToLower(login)]; m != nil {
		m.State = "active"
	}
}

// RevokeToken makes the token refused (401 Bad credentials).
func (s *Server) RevokeToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenOK = false
}

// ExhaustRateLimit makes every request a primary rate-limit 403 until resetIn passes.
func (s *Server) ExhaustRateLimit(resetIn time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateReset = time.Now().Add(resetIn)
}

// SecondaryLimit answers the next n requests with a secondary rate limit as
// GitHub may send it: status 403 or 429, the secondary-limit message, and no
// retry-after header (GitHub's docs: "If the retry-after response header is
// present…"; otherwise wait at least a minute).
func (s *Server) SecondaryLimit(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secondary, s.secondaryAs = n, status
}

// ResetRateLimit lifts the primary rate limit.
func (s *Server) ResetRateLimit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateReset = time.Time{}
}

// Member returns login's membership.
func (s *Server) Member(login string) (Membership, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[strings.ToLower(login)]
	if m == nil {
		return Membership{}, false
	}
	return *m, true
}

// Invitations returns the pending invitations.
func (s *Server) Invitations() []Invitation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Invitation
	for _, i := range s.invitations {
		out = append(out, *i)
	}
	return out
}

// TeamMembers returns the sorted logins on a team.
func (s *Server) TeamMembers(slug string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.teams[slug]; t != nil {
		return fakehttp.SortedKeys(t.Members)
	}
	return nil
}

const docs = "https://docs.github.com/rest"

func ghError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "documentation_url": docs, "status": strconv.Itoa(status)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// guard checks the token, API version, org and primary rate limit.
// takeSecondary answers a pending secondary-limit knob; it reports whether it did.
func (s *Server) takeSecondary(w http.ResponseWriter) bool {
	s.mu.Lock()
	hit, status := s.secondary > 0, s.secondaryAs
	if hit {
		s.secondary--
	}
	s.mu.Unlock()
	if hit {
		ghError(w, status, secondaryMessage)
	}
	return hit
}

// secondaryMessage is GitHub's wording for a secondary rate limit.
const secondaryMessage = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."

func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		tokenOK, reset := s.tokenOK, s.rateReset
		s.mu.Unlock()
		w.Header().Set("x-ratelimit-limit", "5000")
		w.Header().Set("x-github-api-version-selected", APIVersion)
		if v := r.Header.Get("X-GitHub-Api-Version"); v != "" && v != APIVersion {
			ghError(w, http.StatusBadRequest, "API version '"+v+"' is not supported.")
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			tok, ok = strings.CutPrefix(auth, "token ")
		}
		if !ok || !tokenOK || tok != s.opts.Token {
			ghError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		if time.Now().Before(reset) {
			w.Header().Set("x-ratelimit-remaining", "0")
			w.Header().Set("x-ratelimit-reset", strconv.FormatInt(reset.Unix()+1, 10))
			ghError(w, http.StatusForbidden, "API rate limit exceeded for user ID 1.")
			return
		}
		w.Header().Set("x-ratelimit-remaining", "4999")
		if s.takeSecondary(w) {
			return
		}
		if r.PathValue("org") != s.opts.Org {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		h(w, r)
	}
}

func (s *Server) membershipJSON(login string, m *Membership) map[string]any {
	return map[string]any{"url": "", "state": m.State, "role": m.Role,
		"organization": map[string]any{"login": s.opts.Org},
		"user":         map[string]any{"login": login, "id": s.users[login], "type": "User"}}
}

func (s *Server) getMembership(w http.ResponseWriter, r *http.Request) {
	login := strings.ToLower(r.PathValue("username"))
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[login]
	if m == nil {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.membershipJSON(login, m))
}

// putMembership adds or updates a membership: a new member is invited
// ("pending") until they accept; an existing one just gets the role.
func (s *Server) putMembership(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Role string `json:"role"`
	}
	_ = json.NewDecoder(r.Body).Decode(&b)
	if b.Role == "" {
		b.Role = "member"
	}
	if b.Role != "member" && b.Role != "admin" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
			"errors":            []map[string]string{{"resource": "OrganizationMembership", "field": "role", "code": "invalid"}},
			"documentation_url": docs, "status": "422"})
		return
	}
	login := strings.ToLower(r.PathValue("username"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[login]; !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	m := s.members[login]
	if m == nil {
		m = &Membership{State: "pending"}
		s.members[login] = m
	}
	m.Role = b.Role
	writeJSON(w, http.StatusOK, s.membershipJSON(login, m))
}

// page applies per_page/page and writes GitHub's Link header.
func (s *Server) page(w http.ResponseWriter, r *http.Request, n int) (int, int) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, s.opts.PerPageMax)
	pg, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pg = max(pg, 1)
	start := min((pg-1)*per, n)
	end := min(start+per, n)
	last := max((n+per-1)/per, 1)
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf(`<http://%s%s?%s>; rel="%s"`, r.Host, r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if pg < last {
		links = append(links, link(pg+1, "next"), link(last, "last"))
	}
	if pg > 1 {
		links = append(links, link(1, "first"), link(pg-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	return start, end
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var logins []string
	for l, m := range s.members {
		if m.State == "active" { // pending members are invitations, not members
			logins = append(logins, l)
		}
	}
	sort.Strings(logins)
	out := []map[string]any{}
	start, end := s.page(w, r, len(logins))
	for _, l := range logins[start:end] {
		out = append(out, map[string]any{"login": l, "id": s.users[l], "type": "User", "site_admin": false})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) {
	login := strings.ToLower(r.PathValue("username"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[login]; !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	// Removing a user removes them from every team and cancels their invitation;
	// GitHub answers 204 whether or not they were a member.
	delete(s.members, login)
	for _, t := range s.teams {
		delete(t.Members, login)
	}
	s.invitations = removeInv(s.invitations, func(i *Invitation) bool { return strings.EqualFold(i.Login, login) })
	w.WriteHeader(http.StatusNoContent)
}

func removeInv(is []*Invitation, drop func(*Invitation) bool) []*Invitation {
	out := is[:0]
	for _, i := range is {
		if !drop(i) {
			out = append(out, i)
		}
	}
	return out
}

func (s *Server) invitationJSON(i *Invitation) map[string]any {
	var login any
	if i.Login != "" {
		login = i.Login
	}
	var email any
	if i.Email != "" {
		email = i.Email
	}
	return map[string]any{"id": i.ID, "login": login, "email": email, "role": i.Role,
		"created_at": "2026-01-01T00:00:00Z", "team_count": len(i.TeamIDs),
		"invitation_source": "member", "inviter": map[string]any{"login": "lanyard-bot"}}
}

func (s *Server) listInvitations(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := []map[string]any{}
	start, end := s.page(w, r, len(s.invitations))
	for _, i := range s.invitations[start:end] {
		out = append(out, s.invitationJSON(i))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createInvitation(w http.ResponseWriter, r *http.Request) {
	var b struct {
		InviteeID int64   `json:"invitee_id"`
		Email     string  `json:"email"`
		Role      string  `json:"role"`
		TeamIDs   []int64 `json:"team_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		ghError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if b.Role == "" {
		b.Role = "direct_member"
	}
	invalid := func(field, msg string) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
			"errors":            []map[string]string{{"resource": "OrganizationInvitation", "field": field, "code": "invalid", "message": msg}},
			"documentation_url": docs, "status": "422"})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case b.Email == "" && b.InviteeID == 0:
		invalid("email", "email or invitee_id is required")
		return
	case b.Role != "direct_member" && b.Role != "admin" && b.Role != "billing_manager" && b.Role != "reinstate":
		invalid("role", "role is not included in the list")
		return
	}
	for _, i := range s.invitations {
		if b.Email != "" && strings.EqualFold(i.Email, b.Email) {
			invalid("email", "Invitee has already been invited")
			return
		}
	}
	for _, id := range b.TeamIDs {
		if !s.teamIDExists(id) {
			invalid("team_ids", fmt.Sprintf("Team %d does not exist", id))
			return
		}
	}
	s.nextID++
	inv := &Invitation{ID: s.nextID, Email: b.Email, Role: b.Role, TeamIDs: b.TeamIDs}
	s.invitations = append(s.invitations, inv)
	writeJSON(w, http.StatusCreated, s.invitationJSON(inv))
}

func (s *Server) teamIDExists(id int64) bool {
	for _, t := range s.teams {
		if t.ID == id {
			return true
		}
	}
	return false
}

func (s *Server) deleteInvitation(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.invitations)
	s.invitations = removeInv(s.invitations, func(i *Invitation) bool { return i.ID == id })
	if len(s.invitations) == n {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getTeam(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.teams[r.PathValue("slug")]
	if t == nil {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": t.ID, "slug": t.Slug, "name": t.Name,
		"privacy": "closed", "members_count": len(t.Members)})
}

func (s *Server) putTeamMembership(w http.ResponseWriter, r *http.Request) {
	login := strings.ToLower(r.PathValue("username"))
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.teams[r.PathValue("slug")]
	if t == nil {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	if _, ok := s.users[login]; !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	state := "active"
	if m := s.members[login]; m == nil || m.State != "active" {
		state = "pending" // GitHub invites a non-member to the org first
		if m == nil {
			s.members[login] = &Membership{State: "pending", Role: "member"}
		}
	}
	t.Members[login] = state
	writeJSON(w, http.StatusOK, map[string]any{"url": "", "role": "member", "state": state})
}

func (s *Server) deleteTeamMembership(w http.ResponseWriter, r *http.Request) {
	login := strings.ToLower(r.PathValue("username"))
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.teams[r.PathValue("slug")]
	if t == nil || t.Members[login] == "" {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	delete(t.Members, login)
	w.WriteHeader(http.StatusNoContent)
}
