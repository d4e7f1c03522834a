// Package entra is the Microsoft Entra ID (Microsoft 365) connector: it creates,
// licenses, groups, blocks, reactivates and deletes users through Microsoft
// Graph v1.0 with plain net/http, authenticating as an app registration with the
// OAuth 2.0 client credentials grant. Both the Graph base URL (Spec.BaseURL) and
// the identity platform's authority (settings.authority_url) are configuration,
// so tests and the demo point it at fakegraph and production at Microsoft.
//
// The app registration needs these application permissions, with admin
// consent: User.ReadWrite.All (create, update, block, delete),
// User.RevokeSessions.All (sign-out), LicenseAssignment.ReadWrite.All
// (licenses), GroupMember.ReadWrite.All (group membership). A 403 names the one
// the failed call needs.
//
// Licenses at offboarding: remove_licenses_after "" keeps them; "0s" removes
// them at suspension; a longer duration (e.g. "720h": mailbox kept a month)
// leaves them, and the caller schedules RemoveLicenses at LicenseRemovalAt of
// the suspension time. RemoveLicenses does nothing to an account that has been
// reactivated meanwhile, so a late job cannot strip a rehire.
package entra

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/internal/rest"
)

// Public endpoints, used when configuration leaves them empty.
const (
	DefaultGraphURL     = "https://graph.microsoft.com"
	DefaultAuthorityURL = "https://login.microsoftonline.com"
	graphScope          = "https://graph.microsoft.com/.default"
	// userSelect is every property the connector reads: accountEnabled and
	// employeeId are not in Graph's default set, so they must be named.
	userSelect = "id,userPrincipalName,mail,employeeId,accountEnabled,displayName,givenName,surname,jobTitle,department,assignedLicenses"
)

// Settings is the connector's JSON settings.
type Settings struct {
	TenantID string `json:"tenant_id"`
	ClientID string `json:"client_id"`
	// Domain completes a user name without "@" into a userPrincipalName.
	Domain string `json:"domain,omitempty"`
	// UsageLocation (ISO 3166 alpha-2) is required by Microsoft before a
	// license can be assigned.
	UsageLocation string   `json:"usage_location,omitempty"`
	LicenseSKUIDs []string `json:"license_sku_ids,omitempty"`
	// GroupsOnSuspend is "remove" (the default) or "keep".
	GroupsOnSuspend string `json:"groups_on_suspend,omitempty"`
	// RemoveLicensesAfter is a Go duration; see the package comment.
	RemoveLicensesAfter string `json:"remove_licenses_after,omitempty"`
	// AuthorityURL is the identity platform (default login.microsoftonline.com).
	AuthorityURL string `json:"authority_url,omitempty"`
}

// Connector is an apps.Connector for one Entra tenant.
type Connector struct {
	app          string
	set          Settings
	removeAfter  time.Duration
	removeOnSusp bool // licenses go at suspension ("0s")
	removeLater  bool // licenses go at removeAfter
	api          rest.Client
	tokens       *tokenCache
}

var _ apps.Connector = (*Connector)(nil)

// Build is the apps.Builder for kind "entra". The Spec's Secret is the app
// registration's client secret.
func Build(_ context.Context, s apps.Spec) (apps.Connector, error) {
	return New(s)
}

// New returns the concrete connector (RemoveLicenses is beyond the contract).
func New(s apps.Spec) (*Connector, error) {
	var set Settings
	if len(s.Settings) > 0 {
		if err := json.Unmarshal(s.Settings, &set); err != nil {
			return nil, fmt.Errorf("entra %s: settings: %w", s.App, err)
		}
	}
	if set.TenantID == "" || set.ClientID == "" {
		return nil, fmt.Errorf("entra %s: settings need tenant_id and client_id", s.App)
	}
	if len(s.Secret) == 0 {
		return nil, fmt.Errorf("entra %s: no client secret", s.App)
	}
	c := &Connector{app: s.App, set: set}
	switch set.GroupsOnSuspend {
	case "":
		c.set.GroupsOnSuspend = "remove"
	case "remove", "keep":
	default:
		return nil, fmt.Errorf("entra %s: groups_on_suspend %q: want remove or keep", s.App, set.GroupsOnSuspend)
	}
	if set.RemoveLicensesAfter != "" {
		d, err := time.ParseDuration(set.RemoveLicensesAfter)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("entra %s: remove_licenses_after %q: want a duration such as 720h", s.App, set.RemoveLicensesAfter)
		}
		c.removeAfter, c.removeOnSusp, c.removeLater = d, d == 0, d > 0
	}
	base := strings.TrimSuffix(s.BaseURL, "/")
	if base == "" {
		base = DefaultGraphURL
	}
	authority := strings.TrimSuffix(set.AuthorityURL, "/")
	if authority == "" {
		authority = DefaultAuthorityURL
	}
	hc := rest.DefaultHTTPClient(s.HTTPClient)
	c.tokens = &tokenCache{app: s.App, hc: hc, cfg: &clientcredentials.Config{
		ClientID:     set.ClientID,
		ClientSecret: string(s.Secret),
		TokenURL:     authority + "/" + url.PathEscape(set.TenantID) + "/oauth2/v2.0/token",
		Scopes:       []string{graphScope},
		AuthStyle:    oauth2.AuthStyleInParams, // as Microsoft's own examples send it
	}}
	c.api = rest.Client{
		App: s.App, Base: base + "/v1.0", HC: hc,
		Header:     http.Header{"Accept": {"application/json"}},
		Auth:       c.tokens.authorize,
		ParseError: parseGraphError,
	}
	return c, nil
}

// Capabilities: everything Entra offers; licenses only when some are configured.
func (c *Connector) Capabilities() apps.Capabilities {
	return apps.Capabilities{Provision: true, Suspend: true, RevokeSessions: true, Reactivate: true,
		Remove: true, Groups: true, Licenses: len(c.set.LicenseSKUIDs) > 0, List: true}
}

// tokenCache holds one client-credentials token and fetches another when it
// expires or Graph refuses it.
type tokenCache struct {
	app string
	hc  *http.Client
	cfg *clientcredentials.Config
	mu  sync.Mutex
	tok *oauth2.Token
}

func (t *tokenCache) authorize(ctx context.Context, r *http.Request) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.tok.Valid() {
		tok, err := t.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, t.hc))
		if err != nil {
			return tokenError(t.app, ctx, err)
		}
		t.tok = tok
	}
	r.Header.Set("Authorization", "Bearer "+t.tok.AccessToken)
	return nil
}

func (t *tokenCache) drop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tok = nil
}

// tokenError classifies a failed token request: the identity platform refusing
// the client (400/401 invalid_client, unauthorized_client) is ErrAuth with its
// AADSTS text, which names the cause (expired or wrong secret, unknown app).
func tokenError(app string, ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		kind := apps.ClassifyStatus(re.Response.StatusCode)
		if re.Response.StatusCode == http.StatusBadRequest {
			kind = apps.ErrAuth
		}
		return &apps.TargetError{App: app, Op: "token", Status: re.Response.StatusCode,
			Code: re.ErrorCode, Detail: firstLine(re.ErrorDescription), Kind: kind,
			RetryAfter: rest.RetryAfter(re.Response.Header, time.Now())}
	}
	if ctx.Err() != nil {
		return &apps.TargetError{App: app, Op: "token", Err: ctx.Err()}
	}
	return &apps.TargetError{App: app, Op: "token", Kind: apps.ErrUnavailable, Err: err}
}

// firstLine drops the trace and correlation ids the identity platform appends
// on further lines.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// graphErrorBody is Graph's error resource.
type graphErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID string `json:"request-id"`
			Date      string `json:"date"`
		} `json:"innerError"`
	} `json:"error"`
}

func parseGraphError(status int, _ http.Header, body []byte) rest.ErrorInfo {
	var eb graphErrorBody
	_ = json.Unmarshal(body, &eb)
	info := rest.ErrorInfo{Code: eb.Error.Code, Detail: eb.Error.Message}
	if id := eb.Error.InnerError.RequestID; id != "" {
		info.Detail += " (request-id " + id + ")" // what Microsoft support asks for
	}
	switch {
	case eb.Error.Code == "Request_ResourceNotFound":
		info.Kind = apps.ErrNotFound
	case status == http.StatusBadRequest:
		info.Kind = apps.ErrRejected
	}
	return info
}

// permissions names the application permission each operation needs, for a
// 403 Authorization_RequestDenied.
var permissions = map[string]string{
	"provision": "User.ReadWrite.All", "link": "User.ReadWrite.All", "suspend": "User.ReadWrite.All",
	"reactivate": "User.ReadWrite.All", "remove": "User.ReadWrite.All", "find": "User.Read.All",
	"list": "User.Read.All", "revoke sessions": "User.RevokeSessions.All",
	"assign license": "LicenseAssignment.ReadWrite.All", "remove licenses": "LicenseAssignment.ReadWrite.All",
	"add to group": "GroupMember.ReadWrite.All", "remove from group": "GroupMember.ReadWrite.All",
	"find group": "GroupMember.Read.All", "list groups": "GroupMember.Read.All",
}

// call is one Graph request. A 401 gets one more try with a fresh token (a
// token revoked or expired early); a 403 is told which permission is missing.
func (c *Connector) call(ctx context.Context, op, method, path string, body, out any, hdr ...string) (rest.Response, error) {
	resp, err := c.api.Do(ctx, op, method, path, body, out, hdr...)
	var te *apps.TargetError
	if errors.As(err, &te) && te.Status == http.StatusUnauthorized && te.Op != "token" {
		c.tokens.drop()
		resp, err = c.api.Do(ctx, op, method, path, body, out, hdr...)
	}
	if errors.As(err, &te) && te.Status == http.StatusForbidden && te.Code == "Authorization_RequestDenied" {
		if p := permissions[op]; p != "" {
			te.Detail += "; the app registration needs the application permission " + p + " with admin consent"
		}
	}
	return resp, err
}

// user is the part of a Graph user the connector reads.
type user struct {
	ID                string  `json:"id"`
	UserPrincipalName string  `json:"userPrincipalName"`
	Mail              *string `json:"mail"`
	EmployeeID        *string `json:"employeeId"`
	AccountEnabled    *bool   `json:"accountEnabled"`
	DisplayName       string  `json:"displayName"`
	GivenName         *string `json:"givenName"`
	Surname           *string `json:"surname"`
	JobTitle          *string `json:"jobTitle"`
	Department        *string `json:"department"`
	AssignedLicenses  []struct {
		SkuID string `json:"skuId"`
	} `json:"assignedLicenses"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (u user) account() apps.Account {
	return apps.Account{ID: u.ID, UserName: u.UserPrincipalName, Email: str(u.Mail),
		ExternalID: str(u.EmployeeID), Active: u.AccountEnabled}
}

func (u user) hasLicense(sku string) bool {
	return slices.ContainsFunc(u.AssignedLicenses, func(l struct {
		SkuID string `json:"skuId"`
	}) bool {
		return strings.EqualFold(l.SkuID, sku)
	})
}

type page[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// query builds an OData query string; spaces are %20, as Graph's examples.
func query(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[i] + "=" + strings.ReplaceAll(url.QueryEscape(kv[i+1]), "+", "%20"))
	}
	return b.String()
}

// literal quotes an OData string literal (” escapes ').
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// findUsers runs a $filter on /users. employeeId and mail filters are sent as
// advanced queries (ConsistencyLevel: eventual with $count=true), which Graph
// documents as always accepted for directory objects.
func (c *Connector) findUsers(ctx context.Context, filter string) ([]user, error) {
	var pg page[user]
	_, err := c.call(ctx, "find", http.MethodGet,
		"/users?"+query("$filter", filter, "$select", userSelect, "$count", "true"),
		nil, &pg, "ConsistencyLevel", "eventual")
	return pg.Value, err
}

func (c *Connector) upn(p apps.Person) string {
	name := p.UserName
	if name == "" {
		name = p.Email
	}
	if name != "" && !strings.Contains(name, "@") && c.set.Domain != "" {
		name += "@" + c.set.Domain
	}
	return name
}

// find returns p's user: by employeeId (the link Provision writes), then by
// userPrincipalName or mail (an account made before Lanyard).
func (c *Connector) find(ctx context.Context, p apps.Person) (user, error) {
	if p.ExternalID != "" {
		us, err := c.findUsers(ctx, "employeeId eq "+literal(p.ExternalID))
		if err != nil {
			return user{}, err
		}
		if len(us) > 1 {
			return user{}, &apps.TargetError{App: c.app, Op: "find", Kind: apps.ErrConflict,
				Detail: fmt.Sprintf("%d users have employeeId %s", len(us), p.ExternalID)}
		}
		if len(us) == 1 {
			return us[0], nil
		}
	}
	var clauses []string
	for _, n := range dedupe(c.upn(p), p.Email) {
		clauses = append(clauses, "userPrincipalName eq "+literal(n), "mail eq "+literal(n))
	}
	if len(clauses) == 0 {
		return user{}, &apps.TargetError{App: c.app, Op: "find", Kind: apps.ErrNotFound, Detail: "no employee id, user name or email to look up"}
	}
	us, err := c.findUsers(ctx, strings.Join(clauses, " or "))
	if err != nil {
		return user{}, err
	}
	// An account linked to someone else is not this person's, whatever its name.
	us = slices.DeleteFunc(us, func(u user) bool {
		return p.ExternalID != "" && str(u.EmployeeID) != "" && !strings.EqualFold(str(u.EmployeeID), p.ExternalID)
	})
	switch len(us) {
	case 0:
		return user{}, &apps.TargetError{App: c.app, Op: "find", Kind: apps.ErrNotFound,
			Detail: "no user with employeeId " + p.ExternalID + " or name " + c.upn(p)}
	case 1:
		return us[0], nil
	}
	return user{}, &apps.TargetError{App: c.app, Op: "find", Kind: apps.ErrConflict,
		Detail: fmt.Sprintf("%d users match %s", len(us), c.upn(p))}
}

func dedupe(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, s) }) {
			out = append(out, s)
		}
	}
	return out
}

// Find returns p's account.
func (c *Connector) Find(ctx context.Context, p apps.Person) (apps.Account, error) {
	p = graphPerson(p)
	u, err := c.find(ctx, p)
	if err != nil {
		return apps.Account{}, err
	}
	return u.account(), nil
}

func displayName(p apps.Person, upn string) string {
	if n := strings.TrimSpace(p.GivenName + " " + p.FamilyName); n != "" {
		return n
	}
	local, _, _ := strings.Cut(upn, "@")
	return local
}

var nicknameBad = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// mailNickname is the UPN's local part with the characters Exchange refuses
// dropped.
func mailNickname(upn string) string {
	local, _, _ := strings.Cut(upn, "@")
	n := strings.Trim(nicknameBad.ReplaceAllString(local, ""), ".")
	if n == "" {
		n = "user"
	}
	return n
}

// password is a random initial password meeting Entra's complexity rule
// (three of four classes, 8-256 characters). Nobody ever sees it: sign-in is by
// SSO or a reset, and it is never logged or returned.
func password() (string, error) {
	classes := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!@#$%^&*-_=+?"}
	var b strings.Builder
	for i := 0; i < 24; i++ {
		set := classes[i%len(classes)]
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return "", fmt.Errorf("entra: password: %w", err)
		}
		b.WriteByte(set[n.Int64()])
	}
	return b.String(), nil
}

// hrPatch is the HR-owned attributes that differ on u (nil: nothing to do).
func hrPatch(p apps.Person, u user) map[string]any {
	want := map[string]string{"employeeId": p.ExternalID, "givenName": p.GivenName,
		"surname": p.FamilyName, "jobTitle": p.Title, "department": p.Department}
	have := map[string]string{"employeeId": str(u.EmployeeID), "givenName": str(u.GivenName),
		"surname": str(u.Surname), "jobTitle": str(u.JobTitle), "department": str(u.Department)}
	patch := map[string]any{}
	for k, v := range want {
		if v != "" && v != have[k] {
			patch[k] = v
		}
	}
	if dn := strings.TrimSpace(p.GivenName + " " + p.FamilyName); dn != "" && dn != u.DisplayName {
		patch["displayName"] = dn
	}
	if len(patch) == 0 {
		return nil
	}
	return patch
}

func alreadyExists(err error) bool {
	var te *apps.TargetError
	return errors.As(err, &te) && te.Status == http.StatusBadRequest &&
		strings.Contains(te.Detail, "userPrincipalName already exists")
}

// Provision creates or adopts p's user, links it (employeeId), updates the
// HR-owned attributes, assigns the configured licenses and adds the groups
// (display names or object ids). Action: created, linked (an existing account
// adopted), updated, or unchanged. A blocked account stays blocked and gets no
// licenses: Reactivate decides that.
func (c *Connector) Provision(ctx context.Context, p apps.Person, groups []string) (apps.Result, error) {
	p = graphPerson(p)
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	switch {
	case errors.Is(err, apps.ErrNotFound):
		u, err = c.create(ctx, p)
		if alreadyExists(err) {
			// The lookup missed an account Graph says exists (replication lag, or
			// a name our filters did not match): read it by UPN and adopt it.
			u, err = c.byUPN(ctx, c.upn(p))
			res.Action = "linked"
			if err == nil && str(u.EmployeeID) != "" && p.ExternalID != "" && !strings.EqualFold(str(u.EmployeeID), p.ExternalID) {
				return res, &apps.TargetError{App: c.app, Op: "provision", Kind: apps.ErrRejected,
					Detail: fmt.Sprintf("%s belongs to employeeId %s, not %s", c.upn(p), str(u.EmployeeID), p.ExternalID)}
			}
		} else if err == nil {
			res.Action = "created"
		}
	case err == nil && str(u.EmployeeID) == "" && p.ExternalID != "":
		res.Action = "linked"
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if res.Action != "created" {
		if patch := hrPatch(p, u); patch != nil {
			op := "link"
			if _, err := c.call(ctx, op, http.MethodPatch, "/users/"+u.ID, patch, nil); err != nil {
				return res, err
			}
			if res.Action == "unchanged" {
				res.Action = "updated"
			}
		}
	}
	enabled := u.AccountEnabled == nil || *u.AccountEnabled
	if enabled {
		if err := c.addLicenses(ctx, u); err != nil {
			return res, err
		}
	}
	for _, g := range groups {
		gid, err := c.groupID(ctx, g)
		if err != nil {
			return res, err
		}
		if err := c.addMember(ctx, gid, u.ID); err != nil {
			return res, fmt.Errorf("entra %s: group %q: %w", c.app, g, err)
		}
		res.Groups = append(res.Groups, g)
	}
	return res, nil
}

func (c *Connector) create(ctx context.Context, p apps.Person) (user, error) {
	upn := c.upn(p)
	pw, err := password()
	if err != nil {
		return user{}, err
	}
	body := map[string]any{
		"accountEnabled":    true,
		"displayName":       displayName(p, upn),
		"mailNickname":      mailNickname(upn),
		"userPrincipalName": upn,
		"passwordProfile":   map[string]any{"forceChangePasswordNextSignIn": true, "password": pw},
	}
	for k, v := range map[string]string{"employeeId": p.ExternalID, "givenName": p.GivenName,
		"surname": p.FamilyName, "jobTitle": p.Title, "department": p.Department,
		"usageLocation": c.set.UsageLocation} {
		if v != "" {
			body[k] = v
		}
	}
	var u user
	_, err = c.call(ctx, "provision", http.MethodPost, "/users", body, &u)
	return u, err
}

func (c *Connector) byUPN(ctx context.Context, upn string) (user, error) {
	var u user
	_, err := c.call(ctx, "find", http.MethodGet, "/users/"+url.PathEscape(upn)+"?"+query("$select", userSelect), nil, &u)
	return u, err
}

func (c *Connector) addLicenses(ctx context.Context, u user) error {
	var add []map[string]any
	for _, sku := range c.set.LicenseSKUIDs {
		if !u.hasLicense(sku) {
			add = append(add, map[string]any{"skuId": sku, "disabledPlans": []string{}})
		}
	}
	if len(add) == 0 {
		return nil
	}
	_, err := c.call(ctx, "assign license", http.MethodPost, "/users/"+u.ID+"/assignLicense",
		map[string]any{"addLicenses": add, "removeLicenses": []string{}}, nil)
	return err
}

var objectID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// groupID resolves a group named in rules: an object id as is, else the one
// group with that displayName. A missing or ambiguous group is rejected (a
// person must fix the rule), not retried.
func (c *Connector) groupID(ctx context.Context, name string) (string, error) {
	if objectID.MatchString(name) {
		return name, nil
	}
	var pg page[struct {
		ID string `json:"id"`
	}]
	if _, err := c.call(ctx, "find group", http.MethodGet,
		"/groups?"+query("$filter", "displayName eq "+literal(name), "$select", "id,displayName"), nil, &pg); err != nil {
		return "", err
	}
	switch len(pg.Value) {
	case 1:
		return pg.Value[0].ID, nil
	case 0:
		return "", &apps.TargetError{App: c.app, Op: "find group", Kind: apps.ErrRejected,
			Detail: fmt.Sprintf("no group named %q in the tenant", name)}
	}
	return "", &apps.TargetError{App: c.app, Op: "find group", Kind: apps.ErrRejected,
		Detail: fmt.Sprintf("%d groups are named %q; name it by object id", len(pg.Value), name)}
}

func (c *Connector) addMember(ctx context.Context, gid, uid string) error {
	_, err := c.call(ctx, "add to group", http.MethodPost, "/groups/"+gid+"/members/$ref",
		map[string]string{"@odata.id": DefaultGraphURL + "/v1.0/directoryObjects/" + uid}, nil)
	var te *apps.TargetError
	if errors.As(err, &te) && te.Status == http.StatusBadRequest && strings.Contains(te.Detail, "already exist") {
		return nil // already a member: the goal holds
	}
	return err
}

// Suspend blocks sign-in (accountEnabled false), revokes every sign-in session
// (refresh tokens and browser session cookies), removes group memberships
// unless groups_on_suspend is keep, and licenses when remove_licenses_after is
// 0s. Sessions are revoked even on an already-blocked account, so a retry after
// a partial failure finishes the job.
func (c *Connector) Suspend(ctx context.Context, p apps.Person) (apps.Result, error) {
	p = graphPerson(p)
	u, res, err := c.existing(ctx, p)
	if err != nil || res.Action == "absent" {
		return res, err
	}
	if u.AccountEnabled == nil || *u.AccountEnabled {
		if _, err := c.call(ctx, "suspend", http.MethodPatch, "/users/"+u.ID, map[string]any{"accountEnabled": false}, nil); err != nil {
			return res, err
		}
		res.Action = "suspended"
	}
	if _, err := c.call(ctx, "revoke sessions", http.MethodPost, "/users/"+u.ID+"/revokeSignInSessions", nil, nil); err != nil {
		return res, err
	}
	if c.set.GroupsOnSuspend == "remove" {
		removed, err := c.removeGroups(ctx, u.ID)
		res.Groups = removed
		if err != nil {
			return res, err
		}
		if len(removed) > 0 {
			res.Action = "suspended"
		}
	}
	if c.removeOnSusp {
		n, err := c.removeLicenses(ctx, u)
		if err != nil {
			return res, err
		}
		if n > 0 {
			res.Action = "suspended"
		}
	}
	return res, nil
}

// existing finds p's user for an operation that counts a missing account as
// done: Action "absent" then, else "unchanged" with the account id.
func (c *Connector) existing(ctx context.Context, p apps.Person) (user, apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	if errors.Is(err, apps.ErrNotFound) {
		res.Action = "absent"
		return u, res, nil
	}
	res.AccountID = u.ID
	return u, res, err
}

type directoryObject struct {
	Type        string `json:"@odata.type"`
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// removeGroups drops uid from every group it is a direct member of. Directory
// roles and administrative units in memberOf are left alone (they are not
// groups); a group gone meanwhile counts as done.
func (c *Connector) removeGroups(ctx context.Context, uid string) ([]string, error) {
	var groups []directoryObject
	next := "/users/" + uid + "/memberOf?" + query("$select", "id,displayName")
	for next != "" {
		var pg page[directoryObject]
		if _, err := c.call(ctx, "remove from group", http.MethodGet, next, nil, &pg); err != nil {
			return nil, err
		}
		for _, o := range pg.Value {
			if o.Type == "#microsoft.graph.group" {
				groups = append(groups, o)
			}
		}
		next = pg.NextLink
	}
	var removed []string
	for _, g := range groups {
		_, err := c.call(ctx, "remove from group", http.MethodDelete, "/groups/"+g.ID+"/members/"+uid+"/$ref", nil, nil)
		if err != nil && !errors.Is(err, apps.ErrNotFound) {
			return removed, fmt.Errorf("entra %s: group %q: %w", c.app, g.DisplayName, err)
		}
		removed = append(removed, g.DisplayName)
	}
	return removed, nil
}

// removeLicenses takes the configured SKUs off u (all assigned ones when none
// are configured) and reports how many went.
func (c *Connector) removeLicenses(ctx context.Context, u user) (int, error) {
	var drop []string
	for _, l := range u.AssignedLicenses {
		if len(c.set.LicenseSKUIDs) == 0 || slices.ContainsFunc(c.set.LicenseSKUIDs, func(s string) bool { return strings.EqualFold(s, l.SkuID) }) {
			drop = append(drop, l.SkuID)
		}
	}
	if len(drop) == 0 {
		return 0, nil
	}
	_, err := c.call(ctx, "remove licenses", http.MethodPost, "/users/"+u.ID+"/assignLicense",
		map[string]any{"addLicenses": []any{}, "removeLicenses": drop}, nil)
	return len(drop), err
}

// LicenseRemovalAt says when licenses should go for an account suspended at
// suspendedAt; false when the settings keep them or Suspend already removed them.
func (c *Connector) LicenseRemovalAt(suspendedAt time.Time) (time.Time, bool) {
	return suspendedAt.Add(c.removeAfter), c.removeLater
}

// RemoveLicenses is the scheduled half of license removal. It removes licenses
// only from a still-blocked account (Action "licenses_removed"); a reactivated
// or missing account is "unchanged" or "absent".
func (c *Connector) RemoveLicenses(ctx context.Context, p apps.Person) (apps.Result, error) {
	p = graphPerson(p)
	u, res, err := c.existing(ctx, p)
	if err != nil || res.Action == "absent" {
		return res, err
	}
	if u.AccountEnabled == nil || *u.AccountEnabled {
		return res, nil
	}
	n, err := c.removeLicenses(ctx, u)
	if err == nil && n > 0 {
		res.Action = "licenses_removed"
	}
	return res, err
}

// Reactivate unblocks sign-in and gives back the configured licenses. Groups
// removed at suspension are restored by the next Provision with the rules'
// groups.
func (c *Connector) Reactivate(ctx context.Context, p apps.Person) (apps.Result, error) {
	p = graphPerson(p)
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if u.AccountEnabled == nil || !*u.AccountEnabled {
		if _, err := c.call(ctx, "reactivate", http.MethodPatch, "/users/"+u.ID, map[string]any{"accountEnabled": true}, nil); err != nil {
			return res, err
		}
		res.Action = "reactivated"
	}
	return res, c.addLicenses(ctx, u)
}

// Remove deletes the user (Entra keeps it restorable for 30 days).
func (c *Connector) Remove(ctx context.Context, p apps.Person) (apps.Result, error) {
	p = graphPerson(p)
	u, res, err := c.existing(ctx, p)
	if err != nil || res.Action == "absent" {
		return res, err
	}
	_, err = c.call(ctx, "remove", http.MethodDelete, "/users/"+u.ID, nil, nil)
	switch {
	case errors.Is(err, apps.ErrNotFound):
		res.Action = "absent"
		return res, nil
	case err != nil:
		return res, err
	}
	res.Action = "deleted"
	return res, nil
}

// List walks every user, following @odata.nextLink.
func (c *Connector) List(ctx context.Context, fn func(apps.Account) error) error {
	next := "/users?" + query("$select", userSelect, "$top", "999")
	for next != "" {
		var pg page[user]
		if _, err := c.call(ctx, "list", http.MethodGet, next, nil, &pg); err != nil {
			return err
		}
		for _, u := range pg.Value {
			if err := fn(u.account()); err != nil {
				return err
			}
		}
		next = pg.NextLink
	}
	return nil
}

// maxEmployeeID is Graph's limit on employeeId (16 characters).
const maxEmployeeID = 16

// graphPerson fits p's link id into employeeId: a Lanyard id longer than Graph allows
// (a UUID is 36) becomes "lny-" and 12 hex digits of its SHA-256, the same every time, so
// the link still finds the account, and reconciliation matches it through LinkKey.
func graphPerson(p apps.Person) apps.Person {
	if len(p.ExternalID) > maxEmployeeID {
		sum := sha256.Sum256([]byte(p.ExternalID))
		p.ExternalID = "lny-" + hex.EncodeToString(sum[:6])
	}
	return p
}

// LinkKey is the employeeId a Lanyard id is stored as, so reconciliation matches an
// account by its link even after it was renamed (its email no longer the person's).
func (c *Connector) LinkKey(lanyardID string) string {
	return graphPerson(apps.Person{ExternalID: lanyardID}).ExternalID
}
