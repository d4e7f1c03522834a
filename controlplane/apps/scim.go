package apps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// SCIM 2.0 schema URNs (RFC 7643 §8.7, RFC 7644 §3.5.2).
const (
	scimUserSchema    = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimPatchOpSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	scimContentType   = "application/scim+json"
	// scimPageSize is the count asked per page when listing (servers may send fewer).
	scimPageSize = 100
)

// SCIMUser is the part of a SCIM User resource Lanyard reads and writes.
type SCIMUser struct {
	Schemas    []string  `json:"schemas,omitempty"`
	ID         string    `json:"id,omitempty"`
	ExternalID string    `json:"externalId,omitempty"`
	UserName   string    `json:"userName"`
	Name       *SCIMName `json:"name,omitempty"`
	Title      string    `json:"title,omitempty"`
	Emails     []struct {
		Value   string `json:"value"`
		Type    string `json:"type,omitempty"`
		Primary bool   `json:"primary,omitempty"`
	} `json:"emails,omitempty"`
	// Active is nil when the resource has no "active" attribute (RFC 7643 does not
	// require it): unknown, never false.
	Active *bool    `json:"active,omitempty"`
	Meta   scimMeta `json:"meta,omitempty"`
	// ETag is the entity tag from the response header (or meta.version).
	ETag string `json:"-"`
}

// SCIMName is the SCIM "name" complex attribute.
type SCIMName struct {
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
}

func (u SCIMUser) account() Account {
	a := Account{ID: u.ID, UserName: u.UserName, ExternalID: u.ExternalID, Active: u.Active}
	for _, e := range u.Emails {
		if a.Email == "" || e.Primary {
			a.Email = e.Value
		}
	}
	return a
}

// SCIMGroup is a SCIM Group resource.
type SCIMGroup struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Members     []struct {
		Value string `json:"value"`
	} `json:"members,omitempty"`
	Meta scimMeta `json:"meta,omitempty"`
	ETag string   `json:"-"`
}

type scimMeta struct {
	Version string `json:"version,omitempty"`
}

// HasMember reports whether userID is a member of g.
func (g SCIMGroup) HasMember(userID string) bool {
	for _, m := range g.Members {
		if m.Value == userID {
			return true
		}
	}
	return false
}

// SCIM auth kinds (app_connectors.auth_kind).
const (
	AuthBearer = "bearer"
	AuthBasic  = "basic"
	AuthOAuth  = "oauth" // OAuth 2.0 client credentials (RFC 6749 §4.4)
)

// SCIMClient is a SCIM 2.0 client (RFC 7644) and a Connector.
type SCIMClient struct {
	app     string
	base    string
	auth    func(*http.Request)
	oauth   *clientcredentials.Config
	hc      *http.Client
	retries int // attempts after a 412 Precondition Failed
}

var _ Connector = (*SCIMClient)(nil)

// SCIMOption configures a SCIMClient.
type SCIMOption func(*SCIMClient)

// WithHTTPClient sets the HTTP client (default: 15 s timeout).
func WithHTTPClient(hc *http.Client) SCIMOption { return func(c *SCIMClient) { c.hc = hc } }

// WithBasicAuth authenticates with HTTP basic auth instead of the bearer token.
func WithBasicAuth(user, password string) SCIMOption {
	return func(c *SCIMClient) { c.auth = func(r *http.Request) { r.SetBasicAuth(user, password) } }
}

// WithOAuth2 authenticates with OAuth 2.0 client credentials: tokens come from
// tokenURL and are cached until they expire.
func WithOAuth2(tokenURL, clientID, clientSecret string, scopes ...string) SCIMOption {
	return func(c *SCIMClient) {
		c.auth = nil
		c.oauth = &clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL, Scopes: scopes}
	}
}

// NewSCIMClient returns a client for the service provider at baseURL
// (the URL that /Users and /Groups hang off) authenticating with a bearer token
// unless an option picks basic auth or OAuth. app is the application name used in
// rules and results.
func NewSCIMClient(app, baseURL, token string, opts ...SCIMOption) *SCIMClient {
	c := &SCIMClient{
		app:     app,
		base:    strings.TrimSuffix(baseURL, "/"),
		hc:      &http.Client{Timeout: 15 * time.Second},
		retries: 3,
	}
	if token != "" {
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	}
	for _, o := range opts {
		o(c)
	}
	if c.oauth != nil {
		// The token source uses the same client (timeouts, test transport) as SCIM calls.
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.hc)
		oc := c.oauth.Client(ctx)
		oc.Timeout = c.hc.Timeout
		c.hc = oc
	}
	return c
}

// Capabilities implements Connector. SCIM has no session revocation.
func (c *SCIMClient) Capabilities() Capabilities {
	return Capabilities{Provision: true, Suspend: true, Reactivate: true, Remove: true, Groups: true, List: true}
}

func (c *SCIMClient) fail(op string, status int, kind error, code, detail string, err error) *TargetError {
	return &TargetError{App: c.app, Op: op, Status: status, Code: code, Detail: detail, Kind: kind, Err: err}
}

// do sends a request and decodes a JSON response into out (if non-nil).
// It returns the response ETag and whether a body was decoded. Every failure is a
// *TargetError carrying the target's status, scimType and detail.
func (c *SCIMClient) do(ctx context.Context, method, path, ifMatch string, body, out any) (string, bool, error) {
	op := method + " " + path
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", false, c.fail(op, 0, ErrRejected, "", "", fmt.Errorf("encode: %w", err))
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return "", false, c.fail(op, 0, ErrRejected, "", "", err)
	}
	req.Header.Set("Accept", scimContentType)
	if body != nil {
		req.Header.Set("Content-Type", scimContentType)
	}
	if c.auth != nil {
		c.auth(req)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", false, c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", false, c.fail(op, resp.StatusCode, ErrUnavailable, "", "", fmt.Errorf("read body: %w", err))
	}
	if resp.StatusCode >= 300 {
		te := c.fail(op, resp.StatusCode, ClassifyStatus(resp.StatusCode), "", "", nil)
		var eb struct {
			SCIMType string `json:"scimType"`
			Detail   string `json:"detail"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			te.Code, te.Detail = eb.SCIMType, strings.TrimSpace(eb.Detail)
		} else if len(raw) > 0 {
			te.Detail = truncate(strings.TrimSpace(string(raw)), 300)
		}
		te.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return "", false, te
	}
	decoded := false
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return "", false, c.fail(op, resp.StatusCode, ErrUnavailable, "", "", fmt.Errorf("decode: %w", err))
		}
		decoded = true
	}
	return resp.Header.Get("ETag"), decoded, nil
}

// transportError classifies a request that got no HTTP answer: the token endpoint
// refusing the client is ErrAuth, a timeout or network failure is transient, and a
// canceled caller is neither.
func (c *SCIMClient) transportError(ctx context.Context, op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		kind := ErrAuth
		if status == http.StatusTooManyRequests || status >= 500 {
			kind = ErrUnavailable
		}
		return c.fail(op+" (token)", status, kind, re.ErrorCode, re.ErrorDescription, nil)
	}
	if ctx.Err() != nil {
		// The caller gave up (shutdown, its own deadline): no verdict on the target.
		return c.fail(op, 0, nil, "", "", ctx.Err())
	}
	// No answer at all: refused, reset, or the client's timeout.
	return c.fail(op, 0, ErrUnavailable, "", "", err)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func filterQuery(attr, value string) string {
	return "?filter=" + url.QueryEscape(attr+" eq "+strconv.Quote(value))
}

type scimList struct {
	TotalResults int        `json:"totalResults"`
	StartIndex   int        `json:"startIndex"`
	Resources    []SCIMUser `json:"Resources"`
}

// findBy returns the first user whose attribute attr equals value (case-insensitively
// on our side, whatever the server's filter does), or ErrNotFound.
func (c *SCIMClient) findBy(ctx context.Context, attr, value string, match func(SCIMUser) bool) (SCIMUser, error) {
	var lr scimList
	if _, _, err := c.do(ctx, http.MethodGet, "/Users"+filterQuery(attr, value), "", nil, &lr); err != nil {
		return SCIMUser{}, err
	}
	for _, u := range lr.Resources {
		if match(u) {
			u.ETag = u.Meta.Version
			return u, nil
		}
	}
	return SCIMUser{}, fmt.Errorf("%s: user %s %q: %w", c.app, attr, value, ErrNotFound)
}

// FindUser returns the user with userName (compared case-insensitively), or ErrNotFound.
func (c *SCIMClient) FindUser(ctx context.Context, userName string) (SCIMUser, error) {
	return c.findBy(ctx, "userName", userName, func(u SCIMUser) bool { return strings.EqualFold(u.UserName, userName) })
}

// findPerson looks p up by externalId (the link Lanyard set), then by userName.
// A server that cannot filter on externalId (400 invalidFilter) is looked up by
// userName only.
func (c *SCIMClient) findPerson(ctx context.Context, p Person) (SCIMUser, error) {
	if p.ExternalID != "" {
		u, err := c.findBy(ctx, "externalId", p.ExternalID, func(u SCIMUser) bool { return u.ExternalID == p.ExternalID })
		var te *TargetError
		switch {
		case err == nil:
			return u, nil
		case errors.As(err, &te) && te.Status == http.StatusBadRequest:
		case !errors.Is(err, ErrNotFound):
			return SCIMUser{}, err
		}
	}
	return c.FindUser(ctx, p.UserName)
}

// findExisting is the lookup after a 409 uniqueness on create: the server's filter
// missed an account that exists (a case-sensitive userName filter, for one). It
// tries the email, then walks the whole list comparing case-insensitively.
func (c *SCIMClient) findExisting(ctx context.Context, p Person) (SCIMUser, error) {
	same := func(u SCIMUser) bool {
		if strings.EqualFold(u.UserName, p.UserName) || (p.ExternalID != "" && u.ExternalID == p.ExternalID) {
			return true
		}
		for _, e := range u.Emails {
			if p.Email != "" && strings.EqualFold(e.Value, p.Email) {
				return true
			}
		}
		return false
	}
	if p.Email != "" {
		u, err := c.findBy(ctx, "emails.value", p.Email, same)
		if err == nil {
			return u, nil
		}
	}
	var found SCIMUser
	errFound := errors.New("found")
	err := c.listUsers(ctx, func(u SCIMUser) error {
		if same(u) {
			found = u
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return found, nil
	}
	if err != nil {
		return SCIMUser{}, err
	}
	return SCIMUser{}, fmt.Errorf("%s: user %q: %w", c.app, p.UserName, ErrNotFound)
}

// GetUser fetches a user by id.
func (c *SCIMClient) GetUser(ctx context.Context, id string) (SCIMUser, error) {
	var u SCIMUser
	etag, _, err := c.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(id), "", nil, &u)
	if err != nil {
		return SCIMUser{}, err
	}
	u.ETag = firstNonEmpty(etag, u.Meta.Version)
	return u, nil
}

// CreateUser creates an active user for p.
func (c *SCIMClient) CreateUser(ctx context.Context, p Person) (SCIMUser, error) {
	body := map[string]any{
		"schemas":  []string{scimUserSchema},
		"userName": p.UserName,
		"active":   true,
	}
	if p.ExternalID != "" {
		body["externalId"] = p.ExternalID
	}
	if p.GivenName != "" || p.FamilyName != "" {
		body["name"] = map[string]string{"givenName": p.GivenName, "familyName": p.FamilyName}
		body["displayName"] = displayName(p)
	}
	if p.Title != "" {
		body["title"] = p.Title
	}
	if p.Email != "" {
		body["emails"] = []map[string]any{{"value": p.Email, "type": "work", "primary": true}}
	}
	var u SCIMUser
	etag, decoded, err := c.do(ctx, http.MethodPost, "/Users", "", body, &u)
	if err != nil {
		return SCIMUser{}, err
	}
	if !decoded || u.ID == "" {
		// 201 without a body: the id is in Location (RFC 7644 §3.3).
		return SCIMUser{}, c.fail("POST /Users", http.StatusCreated, ErrRejected, "", "created, but the answer carried no user id", nil)
	}
	u.ETag = firstNonEmpty(etag, u.Meta.Version)
	return u, nil
}

func displayName(p Person) string { return strings.TrimSpace(p.GivenName + " " + p.FamilyName) }

func patchBody(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{scimPatchOpSchema}, "Operations": ops}
}

// patchUser PATCHes user id (If-Match etag when known), refetching and retrying on
// 412. A 204 answer (RFC 7644 §3.5.2: the server may return no body) is followed by
// a GET so the caller always holds the user as it now is.
func (c *SCIMClient) patchUser(ctx context.Context, id, etag string, ops ...map[string]any) (SCIMUser, error) {
	for attempt := 0; ; attempt++ {
		var u SCIMUser
		newTag, decoded, err := c.do(ctx, http.MethodPatch, "/Users/"+url.PathEscape(id), etag, patchBody(ops...), &u)
		if err == nil {
			if !decoded || u.ID == "" {
				return c.GetUser(ctx, id)
			}
			u.ETag = firstNonEmpty(newTag, u.Meta.Version)
			return u, nil
		}
		if !isPrecondition(err) || attempt >= c.retries {
			return SCIMUser{}, err
		}
		cur, gerr := c.GetUser(ctx, id)
		if gerr != nil {
			return SCIMUser{}, gerr
		}
		etag = cur.ETag
	}
}

// SetActive sets active on user id.
func (c *SCIMClient) SetActive(ctx context.Context, id, etag string, active bool) (SCIMUser, error) {
	return c.patchUser(ctx, id, etag, map[string]any{"op": "replace", "path": "active", "value": active})
}

// DeleteUser deletes user id (If-Match etag when known). A missing user is
// not an error.
func (c *SCIMClient) DeleteUser(ctx context.Context, id, etag string) error {
	for attempt := 0; ; attempt++ {
		_, _, err := c.do(ctx, http.MethodDelete, "/Users/"+url.PathEscape(id), etag, nil, nil)
		if err == nil || errors.Is(err, ErrNotFound) {
			return nil
		}
		if !isPrecondition(err) || attempt >= c.retries {
			return err
		}
		cur, gerr := c.GetUser(ctx, id)
		if gerr != nil {
			if errors.Is(gerr, ErrNotFound) {
				return nil
			}
			return gerr
		}
		etag = cur.ETag
	}
}

// FindGroup returns the group with displayName. A group that does not exist is a
// rejected request (ErrRejected, not ErrNotFound): retrying cannot create it.
func (c *SCIMClient) FindGroup(ctx context.Context, displayName string) (SCIMGroup, error) {
	var lr struct {
		Resources []SCIMGroup `json:"Resources"`
	}
	if _, _, err := c.do(ctx, http.MethodGet, "/Groups"+filterQuery("displayName", displayName), "", nil, &lr); err != nil {
		return SCIMGroup{}, err
	}
	for _, g := range lr.Resources {
		if strings.EqualFold(g.DisplayName, displayName) {
			g.ETag = g.Meta.Version
			return g, nil
		}
	}
	return SCIMGroup{}, c.fail("group "+strconv.Quote(displayName), 0, ErrRejected, "noTarget",
		fmt.Sprintf("group %q does not exist on %s", displayName, c.app), nil)
}

// GetGroup fetches a group by id.
func (c *SCIMClient) GetGroup(ctx context.Context, id string) (SCIMGroup, error) {
	var g SCIMGroup
	etag, _, err := c.do(ctx, http.MethodGet, "/Groups/"+url.PathEscape(id), "", nil, &g)
	if err != nil {
		return SCIMGroup{}, err
	}
	g.ETag = firstNonEmpty(etag, g.Meta.Version)
	return g, nil
}

// AddMember adds userID to group g (no-op when already a member).
func (c *SCIMClient) AddMember(ctx context.Context, g SCIMGroup, userID string) error {
	return c.patchGroup(ctx, g, userID, true)
}

// RemoveMember removes userID from group g (no-op when not a member).
func (c *SCIMClient) RemoveMember(ctx context.Context, g SCIMGroup, userID string) error {
	return c.patchGroup(ctx, g, userID, false)
}

func (c *SCIMClient) patchGroup(ctx context.Context, g SCIMGroup, userID string, add bool) error {
	for attempt := 0; ; attempt++ {
		// After a 412 the group was refetched: it may already be as wanted.
		if attempt > 0 && g.HasMember(userID) == add {
			return nil
		}
		var op map[string]any
		if add {
			op = map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": userID}}}
		} else {
			op = map[string]any{"op": "remove", "path": "members[value eq " + strconv.Quote(userID) + "]"}
		}
		_, _, err := c.do(ctx, http.MethodPatch, "/Groups/"+url.PathEscape(g.ID), g.ETag, patchBody(op), nil)
		if err == nil {
			return nil
		}
		if !isPrecondition(err) || attempt >= c.retries {
			return err
		}
		if g, err = c.GetGroup(ctx, g.ID); err != nil {
			return err
		}
	}
}

func isPrecondition(err error) bool {
	var te *TargetError
	return errors.As(err, &te) && te.Status == http.StatusPreconditionFailed
}

func isUniqueness(err error) bool {
	var te *TargetError
	return errors.As(err, &te) && te.Status == http.StatusConflict
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// staleOps are the PATCH operations that link u to p (externalId) and bring the
// HR-owned attributes up to date; none when u already matches.
func staleOps(u SCIMUser, p Person) []map[string]any {
	var ops []map[string]any
	set := func(path string, v any) { ops = append(ops, map[string]any{"op": "replace", "path": path, "value": v}) }
	if p.ExternalID != "" && u.ExternalID != p.ExternalID {
		set("externalId", p.ExternalID)
	}
	var have SCIMName
	if u.Name != nil {
		have = *u.Name
	}
	if (p.GivenName != "" || p.FamilyName != "") && have != (SCIMName{GivenName: p.GivenName, FamilyName: p.FamilyName}) {
		set("name", map[string]string{"givenName": p.GivenName, "familyName": p.FamilyName})
		set("displayName", displayName(p))
	}
	if p.Title != "" && u.Title != p.Title {
		set("title", p.Title)
	}
	return ops
}

// Provision implements Connector: find (externalId, then userName) or create the
// user, link and update an existing one, and add it to every group. A known-inactive
// account is left for Reactivate and reported as "suspended".
func (c *SCIMClient) Provision(ctx context.Context, p Person, groups []string) (Result, error) {
	res := Result{App: c.app, Action: "unchanged"}
	u, err := c.findPerson(ctx, p)
	switch {
	case errors.Is(err, ErrNotFound):
		u, err = c.CreateUser(ctx, p)
		if isUniqueness(err) {
			// The lookup missed an account the server says exists (its filter is
			// case-sensitive, or an earlier attempt's answer was lost): find it another
			// way and adopt it; if nothing matches, the server's own words stand.
			cerr := err
			if u, err = c.findExisting(ctx, p); errors.Is(err, ErrNotFound) {
				return res, cerr
			}
			res.Action = "linked"
		} else if err == nil {
			res.Action = "created"
		}
		if err != nil {
			return res, err
		}
	case err != nil:
		return res, err
	}
	if ops := staleOps(u, p); len(ops) > 0 {
		if u, err = c.patchUser(ctx, u.ID, u.ETag, ops...); err != nil {
			return res, err
		}
		if res.Action == "unchanged" {
			res.Action = "linked"
		}
	}
	res.AccountID = u.ID
	if u.Active != nil && !*u.Active {
		res.Action = "suspended"
	}
	for _, name := range groups {
		g, err := c.FindGroup(ctx, name)
		if err != nil {
			return res, err
		}
		if !g.HasMember(u.ID) {
			if err := c.AddMember(ctx, g, u.ID); err != nil {
				return res, err
			}
		}
		res.Groups = append(res.Groups, name)
	}
	return res, nil
}

// Find implements Connector.
func (c *SCIMClient) Find(ctx context.Context, p Person) (Account, error) {
	u, err := c.findPerson(ctx, p)
	if err != nil {
		return Account{}, err
	}
	return u.account(), nil
}

// setActive is Suspend and Reactivate: absent when there is no account, unchanged
// when the target already says so, otherwise a PATCH. An account whose activity is
// unknown (no "active" attribute) is PATCHed: unknown is not the wanted state.
func (c *SCIMClient) setActive(ctx context.Context, p Person, active bool, done string) (Result, error) {
	res := Result{App: c.app}
	u, err := c.findPerson(ctx, p)
	if errors.Is(err, ErrNotFound) {
		res.Action = "absent"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if u.Active != nil && *u.Active == active {
		res.Action = "unchanged"
		return res, nil
	}
	if _, err := c.SetActive(ctx, u.ID, u.ETag, active); err != nil {
		if errors.Is(err, ErrNotFound) {
			res.Action = "absent" // deleted between the lookup and the PATCH
			return res, nil
		}
		return res, err
	}
	res.Action = done
	return res, nil
}

// Suspend implements Connector (active=false).
func (c *SCIMClient) Suspend(ctx context.Context, p Person) (Result, error) {
	return c.setActive(ctx, p, false, "suspended")
}

// Reactivate implements Connector (active=true).
func (c *SCIMClient) Reactivate(ctx context.Context, p Person) (Result, error) {
	return c.setActive(ctx, p, true, "reactivated")
}

// Remove implements Connector (DELETE).
func (c *SCIMClient) Remove(ctx context.Context, p Person) (Result, error) {
	res := Result{App: c.app}
	u, err := c.findPerson(ctx, p)
	if errors.Is(err, ErrNotFound) {
		res.Action = "absent"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if err := c.DeleteUser(ctx, u.ID, u.ETag); err != nil {
		return res, err
	}
	res.Action = "deleted"
	return res, nil
}

// List implements Connector, paging with startIndex/count (RFC 7644 §3.4.2.4).
func (c *SCIMClient) List(ctx context.Context, fn func(Account) error) error {
	return c.listUsers(ctx, func(u SCIMUser) error { return fn(u.account()) })
}

func (c *SCIMClient) listUsers(ctx context.Context, fn func(SCIMUser) error) error {
	start := 1
	for {
		var lr scimList
		q := fmt.Sprintf("/Users?startIndex=%d&count=%d", start, scimPageSize)
		if _, _, err := c.do(ctx, http.MethodGet, q, "", nil, &lr); err != nil {
			return err
		}
		for _, u := range lr.Resources {
			if err := fn(u); err != nil {
				return err
			}
		}
		start += len(lr.Resources)
		if len(lr.Resources) == 0 || start > lr.TotalResults {
			return nil
		}
	}
}
