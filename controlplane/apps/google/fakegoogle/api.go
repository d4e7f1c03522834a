package fakegoogle

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	scopeUser  = "https://www.googleapis.com/auth/admin.directory.user"
	scopeSec   = "https://www.googleapis.com/auth/admin.directory.user.security"
	scopeGroup = "https://www.googleapis.com/auth/admin.directory.group"
	scopeMemb  = "https://www.googleapis.com/auth/admin.directory.group.member"
	scopeDT    = "https://www.googleapis.com/auth/admin.datatransfer"
	scopeGmail = "https://www.googleapis.com/auth/gmail.settings.basic"
)

func (s *Server) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /token", s.token)
	d := "/admin/directory/v1"
	m.Handle("GET "+d+"/users", s.api(s.listUsers, true, scopeUser))
	m.Handle("POST "+d+"/users", s.api(s.insertUser, true, scopeUser))
	m.Handle("GET "+d+"/users/{userKey}", s.api(s.getUser, true, scopeUser))
	m.Handle("PUT "+d+"/users/{userKey}", s.api(s.updateUser, true, scopeUser))
	m.Handle("DELETE "+d+"/users/{userKey}", s.api(s.deleteUser, true, scopeUser))
	// users.signOut names admin.directory.user.security as its only scope.
	m.Handle("POST "+d+"/users/{userKey}/signOut", s.api(s.signOut, true, scopeSec))
	m.Handle("GET "+d+"/groups", s.api(s.listGroups, true, scopeGroup))
	m.Handle("POST "+d+"/groups/{groupKey}/members", s.api(s.insertMember, true, scopeGroup, scopeMemb))
	m.Handle("DELETE "+d+"/groups/{groupKey}/members/{memberKey}", s.api(s.deleteMember, true, scopeGroup, scopeMemb))
	m.Handle("GET /admin/datatransfer/v1/transfers", s.api(s.listTransfers, true, scopeDT))
	m.Handle("POST /admin/datatransfer/v1/transfers", s.api(s.insertTransfer, true, scopeDT))
	m.Handle("PUT /gmail/v1/users/{userId}/settings/vacation", s.api(s.updateVacation, false, scopeGmail))
	return m
}

// gerr writes Google's JSON error body.
func gerr(w http.ResponseWriter, code int, reason, msg string) {
	status := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
		409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}[code]
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg, "status": status,
		"errors": []map[string]string{{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

// api wraps a handler with what every Google API call goes through: the
// knobs, the bearer token, its scopes and (for the Admin SDK) an admin sub.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, token), admin bool, scopes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, r.Method+" "+r.URL.Path)
		hang := s.hang
		s.mu.Unlock()
		if hang {
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			return
		}
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		tok, known := s.tokens[bearer]
		s.mu.Unlock()
		if !ok || !known {
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
			gerr(w, 401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
			return
		}
		granted := false
		for _, sc := range scopes {
			granted = granted || tok.scopes[sc]
		}
		if !granted {
			gerr(w, 403, "insufficientPermissions", "Request had insufficient authentication scopes.")
			return
		}
		if admin && !s.isAdmin(tok.sub) {
			gerr(w, 403, "forbidden", "Not Authorized to access this resource/api")
			return
		}
		s.mu.Lock()
		switch {
		case s.throttle > 0:
			s.throttle--
			mode := s.throttleM
			s.mu.Unlock()
			if mode == "429" {
				w.Header().Set("Retry-After", "7")
				gerr(w, 429, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.")
			} else {
				// The Directory API's limits page documents 403 userRateLimitExceeded.
				gerr(w, 403, "userRateLimitExceeded", "Rate Limit Exceeded")
			}
			return
		case s.fail > 0:
			s.fail--
			s.mu.Unlock()
			gerr(w, 503, "backendError", "Backend Error")
			return
		}
		s.mu.Unlock()
		h(w, r, tok)
	})
}

func (s *Server) isAdmin(sub string) bool {
	for _, a := range s.opts.Admins {
		if strings.EqualFold(a, sub) {
			return true
		}
	}
	return false
}

func etag(v ...any) string { return fmt.Sprintf("%q", fmt.Sprintf("fake-%x", fmt.Sprint(v...))) }

func (s *Server) userJSON(u *User) map[string]any {
	m := map[string]any{
		"kind": "admin#directory#user", "id": u.ID, "etag": etag(u.ID, u.PrimaryEmail, u.Suspended),
		"primaryEmail": u.PrimaryEmail, "isAdmin": s.isAdmin(u.PrimaryEmail),
		"name":      map[string]string{"givenName": u.GivenName, "familyName": u.FamilyName, "fullName": strings.TrimSpace(u.GivenName + " " + u.FamilyName)},
		"suspended": u.Suspended, "changePasswordAtNextLogin": u.ChangePasswordAtNextLogin,
		"orgUnitPath": firstNonEmpty(u.OrgUnitPath, "/"), "customerId": s.opts.CustomerID,
		"creationTime": u.CreationTime.Format(time.RFC3339Nano), "emails": []map[string]any{{"address": u.PrimaryEmail, "primary": true}},
	}
	if len(u.ExternalIDs) > 0 {
		m["externalIds"] = u.ExternalIDs
	}
	if len(u.Organizations) > 0 {
		m["organizations"] = u.Organizations
	}
	return m
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Server) checkCustomer(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	c, d := q.Get("customer"), q.Get("domain")
	switch {
	case c == "" && d == "":
		gerr(w, 400, "badRequest", "Bad Request")
	case c != "" && c != "my_customer" && c != s.opts.CustomerID:
		gerr(w, 400, "badRequest", "Bad Request")
	case d != "" && !strings.EqualFold(d, s.opts.Domain):
		gerr(w, 400, "badRequest", "Bad Request")
	default:
		return true
	}
	return false
}

// page cuts a sorted slice by maxResults and pageToken (an opaque offset).
func page(w http.ResponseWriter, r *http.Request, n, def, most int) (lo, hi int, next string, ok bool) {
	q := r.URL.Query()
	max := def
	if v := q.Get("maxResults"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > most {
			gerr(w, 400, "invalid", "Invalid value '"+v+"'. Values must be within the range: [1, "+strconv.Itoa(most)+"]")
			return 0, 0, "", false
		}
		max = m
	}
	if t := q.Get("pageToken"); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		off, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "off:"))
		if err != nil || err2 != nil || off < 0 || off > n {
			gerr(w, 400, "invalid", "Invalid Input: pageToken")
			return 0, 0, "", false
		}
		lo = off
	}
	hi = min(lo+max, n)
	if hi < n {
		next = base64.RawURLEncoding.EncodeToString([]byte("off:" + strconv.Itoa(hi)))
	}
	return lo, hi, next, true
}

// matches implements the part of the user search language the connector
// uses: email:X and externalId:X (X optionally quoted).
func matches(u *User, query string) (bool, bool) {
	if query == "" {
		return true, true
	}
	field, val, ok := strings.Cut(query, ":")
	if !ok {
		return false, false
	}
	val = strings.TrimSpace(val)
	if len(val) >= 2 && (val[0] == '\'' || val[0] == '"') && val[len(val)-1] == val[0] {
		val = strings.ReplaceAll(val[1:len(val)-1], `\'`, "'")
	}
	switch field {
	case "email":
		return strings.EqualFold(u.PrimaryEmail, val), true
	case "externalId":
		for _, e := range u.ExternalIDs {
			if e["value"] == val {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ token) {
	if !s.checkCustomer(w, r) {
		return
	}
	s.mu.Lock()
	var all []*User
	for _, u := range s.users {
		ok, valid := matches(u, r.URL.Query().Get("query"))
		if !valid {
			s.mu.Unlock()
			gerr(w, 400, "invalidInput", "Invalid Input: "+r.URL.Query().Get("query"))
			return
		}
		if ok {
			all = append(all, u)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].PrimaryEmail < all[j].PrimaryEmail })
	lo, hi, next, ok := page(w, r, len(all), 100, 500)
	if !ok {
		s.mu.Unlock()
		return
	}
	out := map[string]any{"kind": "admin#directory#users", "etag": etag(len(all), lo)}
	var users []map[string]any
	for _, u := range all[lo:hi] {
		users = append(users, s.userJSON(u))
	}
	s.mu.Unlock()
	if len(users) > 0 {
		out["users"] = users
	}
	if next != "" {
		out["nextPageToken"] = next
	}
	writeJSON(w, out)
}

func (s *Server) userOr404(w http.ResponseWriter, r *http.Request) *User {
	u := s.lookup(r.PathValue("userKey"))
	if u == nil {
		gerr(w, 404, "notFound", "Resource Not Found: userKey")
	}
	return u
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.userOr404(w, r); u != nil {
		writeJSON(w, s.userJSON(u))
	}
}

type userBody struct {
	PrimaryEmail *string `json:"primaryEmail"`
	Name         *struct {
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
	} `json:"name"`
	Password                  *string             `json:"password"`
	ChangePasswordAtNextLogin *bool               `json:"changePasswordAtNextLogin"`
	Suspended                 *bool               `json:"suspended"`
	ExternalIDs               []map[string]string `json:"externalIds"`
	Organizations             []map[string]any    `json:"organizations"`
	OrgUnitPath               *string             `json:"orgUnitPath"`
}

// apply sets the fields present in b (users.update has patch semantics).
func (b userBody) apply(u *User) {
	if b.PrimaryEmail != nil {
		u.PrimaryEmail = strings.ToLower(*b.PrimaryEmail)
	}
	if b.Name != nil {
		u.GivenName, u.FamilyName = b.Name.GivenName, b.Name.FamilyName
	}
	if b.Password != nil {
		u.HasPassword = true // the fake keeps no password, only that one was set
	}
	if b.ChangePasswordAtNextLogin != nil {
		u.ChangePasswordAtNextLogin = *b.ChangePasswordAtNextLogin
	}
	if b.Suspended != nil {
		if !u.Suspended && *b.Suspended {
			u.SuspendedAt = time.Now()
		}
		u.Suspended = *b.Suspended
	}
	if b.ExternalIDs != nil {
		u.ExternalIDs = b.ExternalIDs
	}
	if b.Organizations != nil {
		u.Organizations = b.Organizations
	}
	if b.OrgUnitPath != nil {
		u.OrgUnitPath = *b.OrgUnitPath
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		gerr(w, 400, "parseError", "Parse Error")
		return false
	}
	return true
}

func (s *Server) insertUser(w http.ResponseWriter, r *http.Request, _ token) {
	var b userBody
	if !decode(w, r, &b) {
		return
	}
	switch {
	case b.PrimaryEmail == nil || !strings.HasSuffix(strings.ToLower(*b.PrimaryEmail), "@"+s.opts.Domain):
		gerr(w, 400, "invalid", "Invalid Input: primary_user_email")
		return
	case b.Name == nil || b.Name.GivenName == "" || b.Name.FamilyName == "":
		gerr(w, 400, "required", "Invalid Given/Family Name: FamilyName")
		return
	case b.Password == nil || len(*b.Password) < 8:
		gerr(w, 400, "invalid", "Invalid Password")
		return
	}
	s.mu.Lock()
	if s.lookup(*b.PrimaryEmail) != nil {
		s.mu.Unlock()
		gerr(w, 409, "duplicate", "Entity already exists.")
		return
	}
	s.mu.Unlock()
	var u User
	b.apply(&u)
	id := s.AddUser(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, s.userJSON(s.users[id]))
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, _ token) {
	var b userBody
	if !decode(w, r, &b) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userOr404(w, r)
	if u == nil {
		return
	}
	if b.PrimaryEmail != nil {
		if o := s.lookup(*b.PrimaryEmail); o != nil && o != u {
			gerr(w, 409, "duplicate", "Entity already exists.")
			return
		}
	}
	b.apply(u)
	writeJSON(w, s.userJSON(u))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, _ token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userOr404(w, r)
	if u == nil {
		return
	}
	delete(s.users, u.ID)
	for _, m := range s.groups {
		delete(m, u.ID)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request, _ token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userOr404(w, r)
	if u == nil {
		return
	}
	s.signOuts[u.ID]++
	u.SignedOutAt = time.Now()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) groupJSON(email string) map[string]any {
	return map[string]any{"kind": "admin#directory#group", "id": "0" + fmt.Sprintf("%x", email)[:15], "etag": etag(email, len(s.groups[email])),
		"email": email, "name": strings.Split(email, "@")[0], "directMembersCount": strconv.Itoa(len(s.groups[email])), "adminCreated": true}
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, _ token) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	if uk := q.Get("userKey"); uk != "" {
		u := s.lookup(uk)
		if u == nil {
			gerr(w, 404, "notFound", "Resource Not Found: userKey")
			return
		}
		for g, m := range s.groups {
			if m[u.ID] {
				names = append(names, g)
			}
		}
	} else {
		if !s.checkCustomer(w, r) {
			return
		}
		for g := range s.groups {
			names = append(names, g)
		}
	}
	sort.Strings(names)
	lo, hi, next, ok := page(w, r, len(names), 200, 200)
	if !ok {
		return
	}
	out := map[string]any{"kind": "admin#directory#groups", "etag": etag(names)}
	var groups []map[string]any
	for _, g := range names[lo:hi] {
		groups = append(groups, s.groupJSON(g))
	}
	if len(groups) > 0 {
		out["groups"] = groups
	}
	if next != "" {
		out["nextPageToken"] = next
	}
	writeJSON(w, out)
}

func (s *Server) insertMember(w http.ResponseWriter, r *http.Request, _ token) {
	var b struct{ Email, ID, Role string }
	if !decode(w, r, &b) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := strings.ToLower(r.PathValue("groupKey"))
	members, ok := s.groups[g]
	if !ok {
		gerr(w, 404, "notFound", "Resource Not Found: groupKey")
		return
	}
	u := s.lookup(firstNonEmpty(b.Email, b.ID))
	if u == nil {
		gerr(w, 404, "notFound", "Resource Not Found: memberKey")
		return
	}
	if members[u.ID] {
		gerr(w, 409, "duplicate", "Member already exists.")
		return
	}
	members[u.ID] = true
	writeJSON(w, map[string]any{"kind": "admin#directory#member", "etag": etag(g, u.ID), "id": u.ID, "email": u.PrimaryEmail,
		"role": firstNonEmpty(b.Role, "MEMBER"), "type": "USER", "status": "ACTIVE"})
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request, _ token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	members, ok := s.groups[strings.ToLower(r.PathValue("groupKey"))]
	if !ok {
		gerr(w, 404, "notFound", "Resource Not Found: groupKey")
		return
	}
	u := s.lookup(r.PathValue("memberKey"))
	if u == nil || !members[u.ID] {
		gerr(w, 404, "notFound", "Resource Not Found: memberKey")
		return
	}
	delete(members, u.ID)
	w.WriteHeader(http.StatusNoContent)
}

func transferJSON(t Transfer) map[string]any {
	return map[string]any{"kind": "admin#datatransfer#DataTransfer", "etag": etag(t.ID), "id": t.ID,
		"oldOwnerUserId": t.OldOwnerUserID, "newOwnerUserId": t.NewOwnerUserID,
		"applicationDataTransfers": t.ApplicationDataTransfers, "overallTransferStatusCode": "inProgress",
		"requestTime": time.Now().UTC().Format(time.RFC3339)}
}

func (s *Server) listTransfers(w http.ResponseWriter, r *http.Request, _ token) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, t := range s.transfers {
		if (q.Get("oldOwnerUserId") == "" || q.Get("oldOwnerUserId") == t.OldOwnerUserID) &&
			(q.Get("newOwnerUserId") == "" || q.Get("newOwnerUserId") == t.NewOwnerUserID) {
			out = append(out, transferJSON(t))
		}
	}
	resp := map[string]any{"kind": "admin#datatransfer#dataTransfersList", "etag": etag(len(out))}
	if len(out) > 0 {
		resp["dataTransfers"] = out
	}
	writeJSON(w, resp)
}

func (s *Server) insertTransfer(w http.ResponseWriter, r *http.Request, _ token) {
	var b struct {
		OldOwnerUserID           string           `json:"oldOwnerUserId"`
		NewOwnerUserID           string           `json:"newOwnerUserId"`
		ApplicationDataTransfers []map[string]any `json:"applicationDataTransfers"`
	}
	if !decode(w, r, &b) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The API takes user ids, not emails.
	if s.users[b.OldOwnerUserID] == nil || s.users[b.NewOwnerUserID] == nil || len(b.ApplicationDataTransfers) == 0 {
		gerr(w, 400, "invalid", "Invalid Input")
		return
	}
	for _, a := range b.ApplicationDataTransfers {
		if a["applicationId"] == nil || a["applicationId"] == "" {
			gerr(w, 400, "invalid", "Invalid Input: applicationId")
			return
		}
		a["applicationTransferStatus"] = "pending"
	}
	t := Transfer{ID: fmt.Sprintf("AKrEtIfake%04d", len(s.transfers)+1), OldOwnerUserID: b.OldOwnerUserID,
		NewOwnerUserID: b.NewOwnerUserID, ApplicationDataTransfers: b.ApplicationDataTransfers}
	s.transfers = append(s.transfers, t)
	writeJSON(w, transferJSON(t))
}

func (s *Server) updateVacation(w http.ResponseWriter, r *http.Request, tok token) {
	id := strings.ToLower(r.PathValue("userId"))
	if id == "me" {
		id = tok.sub
	}
	if id != tok.sub {
		gerr(w, 403, "forbidden", "Delegation denied for "+tok.sub)
		return
	}
	var v Vacation
	if !decode(w, r, &v) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(id)
	if u == nil {
		gerr(w, 400, "failedPrecondition", "Mail service not enabled")
		return
	}
	if u.Suspended {
		gerr(w, 400, "failedPrecondition", "Mail service not enabled")
		return
	}
	s.vacation[id] = v
	writeJSON(w, v)
}
