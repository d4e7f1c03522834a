// Package fakegraph is an in-memory Microsoft Entra ID tenant that answers the
// parts of Microsoft Graph v1.0 and the Microsoft identity platform token
// endpoint the entra connector uses, over real HTTP on 127.0.0.1. It follows
// Graph's published shapes (REFERENCE.md names each page): OData collections
// with @odata.context, value and @odata.nextLink; $filter eq/or, $select, $top,
// $count with the ConsistencyLevel: eventual rule; the {"error":{code, message,
// innerError}} body; and the token endpoint's client_credentials grant with
// AADSTS errors. Tests turn knobs on it (throttling with Retry-After, failing
// 5xx, revoked or expired credentials, denied permissions, hanging) and inspect
// its state (accountEnabled, sessions revoked, licenses, group members).
package fakegraph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps/internal/fakehttp"
)

// Options configure a fake tenant.
type Options struct {
	TenantID     string
	ClientID     string
	ClientSecret string
	// SKUs are the tenant's subscribed license skuIds (assignLicense refuses others).
	SKUs []string
	// TokenLifetime defaults to an hour, as Entra issues.
	TokenLifetime time.Duration
	// PageSize is the page length without $top and caps it with one (default
	// 100, Graph's default for users); tests lower it to exercise paging.
	PageSize int
}

// User is a stored user.
type User struct {
	ID                string
	UserPrincipalName string
	Mail              string
	MailNickname      string
	DisplayName       string
	GivenName         string
	Surname           string
	JobTitle          string
	Department        string
	EmployeeID        string
	UsageLocation     string
	AccountEnabled    bool
	PasswordSet       bool
	ForceChange       bool
	Licenses          []string // assigned skuIds
	SessionsRevoked   int      // revokeSignInSessions calls
	// DisabledAt and SessionsRevokedAt are when sign-in was last blocked and sessions last
	// revoked (what a benchmark of the offboarding's access step measures).
	DisabledAt, SessionsRevokedAt time.Time
}

// Group is a stored security or Microsoft 365 group.
type Group struct {
	ID          string
	DisplayName string
	Members     map[string]bool
}

// Server is the fake tenant.
type Server struct {
	*fakehttp.Server
	opts Options

	mu          sync.Mutex
	secretValid bool
	secretGone  string // AADSTS code when the secret was revoked/expired
	tokens      map[string]time.Time
	denyWrites  bool
	lagging     map[string]bool
	users       map[string]*User
	groups      map[string]*Group
	skus        map[string]bool
}

// Start serves a tenant until ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.PageSize == 0 {
		opts.PageSize = 100
	}
	s := &Server{opts: opts, secretValid: true, tokens: map[string]time.Time{},
		users: map[string]*User{}, lagging: map[string]bool{}, groups: map[string]*Group{}, skus: map[string]bool{}}
	for _, k := range opts.SKUs {
		s.skus[strings.ToLower(k)] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	mux.HandleFunc("GET /v1.0/users", s.authed(s.listUsers))
	mux.HandleFunc("POST /v1.0/users", s.authed(s.createUser))
	mux.HandleFunc("GET /v1.0/users/{id}", s.authed(s.getUser))
	mux.HandleFunc("PATCH /v1.0/users/{id}", s.authed(s.patchUser))
	mux.HandleFunc("DELETE /v1.0/users/{id}", s.authed(s.deleteUser))
	mux.HandleFunc("POST /v1.0/users/{id}/assignLicense", s.authed(s.assignLicense))
	mux.HandleFunc("POST /v1.0/users/{id}/revokeSignInSessions", s.authed(s.revokeSessions))
	mux.HandleFunc("GET /v1.0/users/{id}/memberOf", s.authed(s.memberOf))
	mux.HandleFunc("GET /v1.0/groups", s.authed(s.listGroups))
	mux.HandleFunc("POST /v1.0/groups/{id}/members/$ref", s.authed(s.addMember))
	mux.HandleFunc("DELETE /v1.0/groups/{id}/members/{uid}/$ref", s.authed(s.removeMember))
	fs, err := fakehttp.Start(ctx, mux, func(w http.ResponseWriter, status int, retry time.Duration) {
		code, msg := "serviceNotAvailable", "The service is temporarily unavailable."
		if status == http.StatusTooManyRequests {
			code, msg = "TooManyRequests", "Too many requests. Please try again later."
			w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
		}
		graphError(w, status, code, msg)
	})
	if err != nil {
		return nil, err
	}
	s.Server = fs
	return s, nil
}

// TokenURL is the tenant's token endpoint on this fake.
func (s *Server) TokenURL() string { return s.URL + "/" + s.opts.TenantID + "/oauth2/v2.0/token" }

// RevokeCredentials makes the client secret invalid (an admin deleted it) and
// every issued token rejected, as Entra does once a secret is removed and the
// token lifetime ends.
func (s *Server) RevokeCredentials() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secretValid, s.secretGone = false, "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."
	s.tokens = map[string]time.Time{}
}

// ExpireSecret makes the client secret expired (AADSTS7000222) and issued
// tokens expired.
func (s *Server) ExpireSecret() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secretValid, s.secretGone = false, "AADSTS7000222: The provided client secret keys for app '"+s.opts.ClientID+"' are expired."
	for t := range s.tokens {
		s.tokens[t] = time.Time{}
	}
}

// ExpireTokens makes every issued token expired while the secret stays valid:
// the client must fetch a new one.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.tokens {
		s.tokens[t] = time.Time{}
	}
}

// DenyWrites makes every write answer 403 Authorization_RequestDenied, as when
// the app registration lacks User.ReadWrite.All or admin consent.
func (s *Server) DenyWrites(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyWrites = deny
}

// Lag hides a user from $filter queries (not from /users/{id}), as Graph's
// eventually consistent index does for a while after an object is written.
func (s *Server) Lag(id string, lag bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lagging[id] = lag
}

// AddGroup creates a group and returns its id.
func (s *Server) AddGroup(displayName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.groups[id] = &Group{ID: id, DisplayName: displayName, Members: map[string]bool{}}
	return id
}

// AddUser stores u (a pre-existing account) and returns its id.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = newID()
	}
	s.users[u.ID] = &u
	return u.ID
}

// AddToGroup makes userID a member of groupID directly (set-up for tests).
func (s *Server) AddToGroup(groupID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[groupID].Members[userID] = true
}

// RenameUser changes a user's userPrincipalName and mail, as an admin renaming
// the account in the Entra admin center would.
func (s *Server) RenameUser(id, upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		u.UserPrincipalName, u.Mail = upn, upn
	}
}

// SetAccountEnabled blocks or allows sign-in, as an admin does in the Entra
// admin center (reconciliation tests: a leaver turned back on by hand).
func (s *Server) SetAccountEnabled(id string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		u.AccountEnabled = enabled
	}
}

// User returns a copy of the user with id or userPrincipalName key.
func (s *Server) User(key string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(key)
	if u == nil {
		return User{}, false
	}
	c := *u
	c.Licenses = append([]string(nil), u.Licenses...)
	return c, true
}

// Members returns the sorted member ids of a group.
func (s *Server) Members(groupID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[groupID]; g != nil {
		return fakehttp.SortedKeys(g.Members)
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// graphError writes Graph's error body (Microsoft Graph error responses).
func graphError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{
			"date":       time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id": newID(), "client-request-id": newID(),
		},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.Header().Set("request-id", newID())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, id string) {
	graphError(w, http.StatusNotFound, "Request_ResourceNotFound",
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
}

// token is the v2.0 token endpoint's client credentials grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	oauthErr := func(status int, code, desc string) {
		writeJSON(w, status, map[string]any{"error": code, "error_description": desc,
			"error_codes": []int{}, "timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"),
			"trace_id": newID(), "correlation_id": newID()})
	}
	if r.PathValue("tenant") != s.opts.TenantID {
		oauthErr(http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant '"+r.PathValue("tenant")+"' not found.")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok { // client_secret_basic is accepted too
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
		return
	case r.PostForm.Get("scope") != "https://graph.microsoft.com/.default":
		oauthErr(http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
		return
	case id != s.opts.ClientID:
		oauthErr(http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+id+"' was not found in the directory.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.secretValid {
		oauthErr(http.StatusUnauthorized, "invalid_client", s.secretGone)
		return
	}
	if secret != s.opts.ClientSecret {
		oauthErr(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	tok := "eyJ0eXAiOiJKV1QifQ." + newID()
	s.tokens[tok] = time.Now().Add(s.opts.TokenLifetime)
	secs := int(s.opts.TokenLifetime / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": secs,
		"ext_expires_in": secs, "access_token": tok})
}

// authed checks the bearer token and, for writes, the app's permissions.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		exp, known := s.tokens[tok]
		deny := s.denyWrites && r.Method != http.MethodGet
		s.mu.Unlock()
		switch {
		case !ok || tok == "":
			graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		case !known:
			graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).")
		case !time.Now().Before(exp):
			graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		case deny:
			graphError(w, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		default:
			h(w, r)
		}
	}
}

// lookup finds a user by object id or userPrincipalName (Graph accepts both
// in /users/{id | userPrincipalName}); caller holds mu.
func (s *Server) lookup(key string) *User {
	if u := s.users[key]; u != nil {
		return u
	}
	for _, u := range s.users {
		if strings.EqualFold(u.UserPrincipalName, key) {
			return u
		}
	}
	return nil
}

// userProps are the user properties this fake stores, by Graph name.
func userProps(u *User) map[string]any {
	lic := []map[string]any{}
	for _, k := range u.Licenses {
		lic = append(lic, map[string]any{"skuId": k, "disabledPlans": []string{}})
	}
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{
		"id": u.ID, "userPrincipalName": u.UserPrincipalName, "mail": null(u.Mail),
		"mailNickname": u.MailNickname, "displayName": u.DisplayName,
		"givenName": null(u.GivenName), "surname": null(u.Surname), "jobTitle": null(u.JobTitle),
		"department": null(u.Department), "employeeId": null(u.EmployeeID),
		"usageLocation": null(u.UsageLocation), "accountEnabled": u.AccountEnabled,
		"assignedLicenses": lic, "businessPhones": []string{}, "mobilePhone": nil,
		"officeLocation": nil, "preferredLanguage": nil,
	}
}

// defaultUserProps is what GET /users returns without $select: note that
// accountEnabled and employeeId are not among them.
var defaultUserProps = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail",
	"mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

func project(all map[string]any, sel []string) map[string]any {
	out := map[string]any{}
	for _, k := range sel {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out
}

func (s *Server) selectList(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	raw := r.URL.Query().Get("$select")
	if raw == "" {
		return defaultUserProps, true
	}
	probe := userProps(&User{})
	var sel []string
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		if _, ok := probe[f]; !ok {
			graphError(w, http.StatusBadRequest, "Request_BadRequest",
				fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.DirectoryServices.User'.", f))
			return nil, false
		}
		sel = append(sel, f)
	}
	return sel, true
}

func (s *Server) context(r *http.Request, entity string) string {
	return "http://" + r.Host + "/v1.0/$metadata#" + entity
}

// clause is one "prop eq 'value'" of a $filter.
type clause struct{ prop, value string }

// parseFilter reads "a eq 'x' or b eq 'y'" (string literals with ” escapes, or
// true/false). Anything else is Request_UnsupportedQuery, as Graph answers.
func parseFilter(f string, allowed map[string]bool) ([]clause, error) {
	var out []clause
	rest := strings.TrimSpace(f)
	for rest != "" {
		prop, after, ok := strings.Cut(rest, " ")
		if !ok || !allowed[prop] {
			return nil, fmt.Errorf("Unsupported or invalid query filter clause specified for property '%s' of resource 'User'.", prop)
		}
		after = strings.TrimLeft(after, " ")
		op, after, _ := strings.Cut(after, " ")
		if op != "eq" {
			return nil, fmt.Errorf("Unsupported Query.")
		}
		after = strings.TrimLeft(after, " ")
		var val string
		switch {
		case strings.HasPrefix(after, "'"):
			i := 1
			var b strings.Builder
			for ; i < len(after); i++ {
				if after[i] == '\'' {
					if i+1 < len(after) && after[i+1] == '\'' {
						b.WriteByte('\'')
						i++
						continue
					}
					break
				}
				b.WriteByte(after[i])
			}
			if i >= len(after) {
				return nil, fmt.Errorf("Invalid filter clause: unterminated string literal.")
			}
			val, after = b.String(), after[i+1:]
		case strings.HasPrefix(after, "true"), strings.HasPrefix(after, "false"):
			val, after, _ = strings.Cut(after, " ")
			after = " " + after
		default:
			return nil, fmt.Errorf("Invalid filter clause.")
		}
		out = append(out, clause{prop, val})
		after = strings.TrimSpace(after)
		if after == "" {
			break
		}
		conj, next, _ := strings.Cut(after, " ")
		if conj != "or" {
			return nil, fmt.Errorf("Unsupported Query.")
		}
		rest = strings.TrimSpace(next)
	}
	return out, nil
}

func matches(props map[string]any, cs []clause) bool {
	if len(cs) == 0 {
		return true
	}
	for _, c := range cs {
		switch v := props[c.prop].(type) {
		case string:
			if strings.EqualFold(v, c.value) { // directory string comparisons ignore case
				return true
			}
		case bool:
			if strconv.FormatBool(v) == c.value {
				return true
			}
		}
	}
	return false
}

// collection answers an OData collection with $top/$skiptoken paging and,
// under advanced query rules, @odata.count.
func (s *Server) collection(w http.ResponseWriter, r *http.Request, entity string, all []map[string]any) {
	q := r.URL.Query()
	top := s.opts.PageSize
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > 999 {
			graphError(w, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid page size specified: '"+t+"'. Must be between 1 and 999 inclusive.")
			return
		}
		top = min(n, s.opts.PageSize)
	}
	start := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "X%27"))
		if err != nil || n < 0 || n > len(all) {
			graphError(w, http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		start = n
	}
	end := min(start+top, len(all))
	body := map[string]any{"@odata.context": s.context(r, entity), "value": all[start:end]}
	if q.Get("$count") == "true" {
		body["@odata.count"] = len(all)
	}
	if end < len(all) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$skiptoken", "X%27"+strconv.Itoa(end))
		body["@odata.nextLink"] = "http://" + r.Host + r.URL.Path + "?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}

// advancedOK enforces the advanced-query rule: $count on directory objects
// needs ConsistencyLevel: eventual.
func advancedOK(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Query().Get("$count") == "true" && !strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual") {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "$count is not currently supported.")
		return false
	}
	return true
}

var userFilterProps = map[string]bool{"employeeId": true, "userPrincipalName": true, "mail": true,
	"accountEnabled": true, "displayName": true, "mailNickname": true}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	if !advancedOK(w, r) {
		return
	}
	sel, ok := s.selectList(w, r)
	if !ok {
		return
	}
	cs, err := parseFilter(r.URL.Query().Get("$filter"), userFilterProps)
	if err != nil {
		graphError(w, http.StatusBadRequest, "Request_UnsupportedQuery", err.Error())
		return
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.users))
	for id := range s.users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []map[string]any
	for _, id := range ids {
		p := userProps(s.users[id])
		if len(cs) > 0 && s.lagging[id] {
			continue
		}
		if matches(p, cs) {
			out = append(out, project(p, sel))
		}
	}
	s.mu.Unlock()
	if out == nil {
		out = []map[string]any{}
	}
	s.collection(w, r, "users", out)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	sel, ok := s.selectList(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	var p map[string]any
	if u != nil {
		p = project(userProps(u), sel)
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r.PathValue("id"))
		return
	}
	p["@odata.context"] = s.context(r, "users/$entity")
	writeJSON(w, http.StatusOK, p)
}

// userBody is the writable part of a user (create and update).
type userBody struct {
	AccountEnabled    *bool   `json:"accountEnabled"`
	DisplayName       *string `json:"displayName"`
	MailNickname      *string `json:"mailNickname"`
	UserPrincipalName *string `json:"userPrincipalName"`
	PasswordProfile   *struct {
		ForceChangePasswordNextSignIn bool   `json:"forceChangePasswordNextSignIn"`
		Password                      string `json:"password"`
	} `json:"passwordProfile"`
	EmployeeID    *string `json:"employeeId"`
	GivenName     *string `json:"givenName"`
	Surname       *string `json:"surname"`
	JobTitle      *string `json:"jobTitle"`
	Department    *string `json:"department"`
	UsageLocation *string `json:"usageLocation"`
	Mail          *string `json:"mail"`
}

func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		graphError(w, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return false
	}
	return true
}

// validate applies Graph's property rules that a connector can trip over.
func validate(b *userBody) string {
	if b.EmployeeID != nil && len(*b.EmployeeID) > 16 {
		return "The value for property employeeId exceeds the maximum allowed length of 16."
	}
	if b.UsageLocation != nil && *b.UsageLocation != "" && len(*b.UsageLocation) != 2 {
		return "Invalid value specified for property 'usageLocation' of resource 'User'."
	}
	if b.PasswordProfile != nil && len(b.PasswordProfile.Password) < 8 {
		return "The specified password does not comply with password complexity requirements. Please provide a different password."
	}
	return ""
}

func (s *Server) upnTaken(upn, except string) bool {
	for id, u := range s.users {
		if id != except && strings.EqualFold(u.UserPrincipalName, upn) {
			return true
		}
	}
	return false
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var b userBody
	if !readBody(w, r, &b) {
		return
	}
	for prop, missing := range map[string]bool{
		"accountEnabled": b.AccountEnabled == nil, "displayName": b.DisplayName == nil,
		"mailNickname": b.MailNickname == nil, "userPrincipalName": b.UserPrincipalName == nil,
		"passwordProfile": b.PasswordProfile == nil,
	} {
		if missing {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property '"+prop+"' of resource 'User'.")
			return
		}
	}
	if msg := validate(&b); msg != "" {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", msg)
		return
	}
	s.mu.Lock()
	if s.upnTaken(*b.UserPrincipalName, "") {
		s.mu.Unlock()
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
		return
	}
	u := &User{ID: newID(), PasswordSet: true, ForceChange: b.PasswordProfile.ForceChangePasswordNextSignIn}
	applyUser(u, &b)
	if u.Mail == "" { // Exchange sets mail from the UPN once the mailbox exists; the fake does it at once
		u.Mail = u.UserPrincipalName
	}
	s.users[u.ID] = u
	p := userProps(u)
	s.mu.Unlock()
	p["@odata.context"] = s.context(r, "users/$entity")
	writeJSON(w, http.StatusCreated, p)
}

func applyUser(u *User, b *userBody) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	if b.AccountEnabled != nil {
		if u.AccountEnabled && !*b.AccountEnabled {
			u.DisabledAt = time.Now()
		}
		u.AccountEnabled = *b.AccountEnabled
	}
	set(&u.DisplayName, b.DisplayName)
	set(&u.MailNickname, b.MailNickname)
	set(&u.UserPrincipalName, b.UserPrincipalName)
	set(&u.EmployeeID, b.EmployeeID)
	set(&u.GivenName, b.GivenName)
	set(&u.Surname, b.Surname)
	set(&u.JobTitle, b.JobTitle)
	set(&u.Department, b.Department)
	set(&u.UsageLocation, b.UsageLocation)
	set(&u.Mail, b.Mail)
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) {
	var b userBody
	if !readBody(w, r, &b) {
		return
	}
	if msg := validate(&b); msg != "" {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(r.PathValue("id"))
	if u == nil {
		notFound(w, r.PathValue("id"))
		return
	}
	if b.UserPrincipalName != nil && s.upnTaken(*b.UserPrincipalName, u.ID) {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
		return
	}
	applyUser(u, &b)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	if u != nil {
		delete(s.users, u.ID)
		for _, g := range s.groups {
			delete(g.Members, u.ID)
		}
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r.PathValue("id"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) assignLicense(w http.ResponseWriter, r *http.Request) {
	var b struct {
		AddLicenses *[]struct {
			SkuID         string   `json:"skuId"`
			DisabledPlans []string `json:"disabledPlans"`
		} `json:"addLicenses"`
		RemoveLicenses *[]string `json:"removeLicenses"`
	}
	if !readBody(w, r, &b) {
		return
	}
	if b.AddLicenses == nil || b.RemoveLicenses == nil { // both are required, possibly empty
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'addLicenses' of resource 'User'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(r.PathValue("id"))
	if u == nil {
		notFound(w, r.PathValue("id"))
		return
	}
	if len(*b.AddLicenses) > 0 && u.UsageLocation == "" {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "License assignment cannot be done for user with invalid usage location.")
		return
	}
	have := map[string]bool{}
	for _, k := range u.Licenses {
		have[k] = true
	}
	for _, a := range *b.AddLicenses {
		k := strings.ToLower(a.SkuID)
		if !s.skus[k] {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "License "+a.SkuID+" does not correspond to a valid company License.")
			return
		}
		have[k] = true
	}
	for _, k := range *b.RemoveLicenses {
		k = strings.ToLower(k)
		if !have[k] {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "User does not have a corresponding license.")
			return
		}
		delete(have, k)
	}
	u.Licenses = u.Licenses[:0]
	for k := range have {
		u.Licenses = append(u.Licenses, k)
	}
	sort.Strings(u.Licenses)
	p := userProps(u)
	p["@odata.context"] = s.context(r, "users/$entity")
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) revokeSessions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	if u != nil {
		u.SessionsRevoked++
		u.SessionsRevokedAt = time.Now()
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.context(r, "Edm.Boolean"), "value": true})
}

func groupProps(g *Group) map[string]any {
	return map[string]any{"@odata.type": "#microsoft.graph.group", "id": g.ID,
		"displayName": g.DisplayName, "securityEnabled": true, "mailEnabled": false,
		"groupTypes": []string{}}
}

func (s *Server) sortedGroups() []*Group {
	out := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) memberOf(w http.ResponseWriter, r *http.Request) {
	if !advancedOK(w, r) {
		return
	}
	s.mu.Lock()
	u := s.lookup(r.PathValue("id"))
	var out []map[string]any
	if u != nil {
		for _, g := range s.sortedGroups() {
			if g.Members[u.ID] {
				out = append(out, groupProps(g))
			}
		}
		// Every user holds a directory role object in real tenants now and then;
		// the fake lists none, but the connector must skip non-groups anyway.
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w, r.PathValue("id"))
		return
	}
	if out == nil {
		out = []map[string]any{}
	}
	s.collection(w, r, "directoryObjects", out)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	if !advancedOK(w, r) {
		return
	}
	cs, err := parseFilter(r.URL.Query().Get("$filter"), map[string]bool{"displayName": true, "id": true})
	if err != nil {
		graphError(w, http.StatusBadRequest, "Request_UnsupportedQuery", err.Error())
		return
	}
	s.mu.Lock()
	var out []map[string]any
	for _, g := range s.sortedGroups() {
		if p := groupProps(g); matches(p, cs) {
			out = append(out, p)
		}
	}
	s.mu.Unlock()
	if out == nil {
		out = []map[string]any{}
	}
	s.collection(w, r, "groups", out)
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	var b map[string]string
	if !readBody(w, r, &b) {
		return
	}
	ref := b["@odata.id"]
	i := strings.LastIndex(ref, "/directoryObjects/")
	if i < 0 {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid URL format specified in @odata.id.")
		return
	}
	uid := ref[i+len("/directoryObjects/"):]
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.PathValue("id")]
	switch {
	case g == nil:
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+r.PathValue("id")+"' does not exist or one of its queried reference-property objects are not present.")
	case s.users[uid] == nil:
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+uid+"' does not exist or one of its queried reference-property objects are not present.")
	case g.Members[uid]:
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'members'.")
	default:
		g.Members[uid] = true
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.PathValue("id")]
	uid := r.PathValue("uid")
	switch {
	case g == nil:
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+r.PathValue("id")+"' does not exist or one of its queried reference-property objects are not present.")
	case !g.Members[uid]:
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+uid+"' does not exist or one of its queried reference-property objects are not present.")
	default:
		delete(g.Members, uid)
		w.WriteHeader(http.StatusNoContent)
	}
}
