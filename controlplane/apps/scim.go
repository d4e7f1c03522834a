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
)

// SCIM 2.0 schema URNs (RFC 7643 §8.7, RFC 7644 §3.5.2).
const (
	scimUserSchema    = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimPatchOpSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	scimContentType   = "application/scim+json"
)

// SCIMUser is the part of a SCIM User resource Lanyard reads and writes.
type SCIMUser struct {
	Schemas    []string `json:"schemas,omitempty"`
	ID         string   `json:"id,omitempty"`
	ExternalID string   `json:"externalId,omitempty"`
	UserName   string   `json:"userName"`
	Name       *struct {
		GivenName  string `json:"givenName,omitempty"`
		FamilyName string `json:"familyName,omitempty"`
	} `json:"name,omitempty"`
	Title  string `json:"title,omitempty"`
	Emails []struct {
		Value   string `json:"value"`
		Type    string `json:"type,omitempty"`
		Primary bool   `json:"primary,omitempty"`
	} `json:"emails,omitempty"`
	Active bool     `json:"active"`
	Meta   scimMeta `json:"meta,omitempty"`
	// ETag is the entity tag from the response header (or meta.version).
	ETag string `json:"-"`
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

// SCIMError is an error response from a SCIM service provider (RFC 7644 §3.12).
type SCIMError struct {
	Status   int
	SCIMType string
	Detail   string
	Method   string
	Path     string
}

func (e *SCIMError) Error() string {
	s := fmt.Sprintf("scim: %s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.SCIMType != "" {
		s += " " + e.SCIMType
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap maps the status to the package sentinels so callers can use errors.Is.
func (e *SCIMError) Unwrap() error {
	switch {
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusConflict || e.Status == http.StatusPreconditionFailed:
		return ErrConflict
	case e.Status == http.StatusNotImplemented:
		return ErrNotSupported
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		return ErrUnavailable
	}
	return nil
}

// SCIMClient is a SCIM 2.0 client (RFC 7644) and a GrantRevoker.
type SCIMClient struct {
	app     string
	base    string
	token   string
	hc      *http.Client
	retries int // attempts after a 412 Precondition Failed
}

// SCIMOption configures a SCIMClient.
type SCIMOption func(*SCIMClient)

// WithHTTPClient sets the HTTP client (default: 15 s timeout).
func WithHTTPClient(hc *http.Client) SCIMOption { return func(c *SCIMClient) { c.hc = hc } }

// NewSCIMClient returns a client for the service provider at baseURL
// (the URL that /Users and /Groups hang off) authenticating with a bearer token.
// app is the application name used in rules and results.
func NewSCIMClient(app, baseURL, token string, opts ...SCIMOption) *SCIMClient {
	c := &SCIMClient{
		app:     app,
		base:    strings.TrimSuffix(baseURL, "/"),
		token:   token,
		hc:      &http.Client{Timeout: 15 * time.Second},
		retries: 3,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// do sends a request and decodes a JSON response into out (if non-nil).
// It returns the response ETag.
func (c *SCIMClient) do(ctx context.Context, method, path, ifMatch string, body, out any) (string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", fmt.Errorf("scim: encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return "", fmt.Errorf("scim: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", scimContentType)
	if body != nil {
		req.Header.Set("Content-Type", scimContentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("scim: %s %s: %w", method, path, ctx.Err())
		}
		return "", fmt.Errorf("scim: %s %s: %v: %w", method, path, err, ErrUnavailable)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("scim: %s %s: read body: %v: %w", method, path, err, ErrUnavailable)
	}
	if resp.StatusCode >= 300 {
		se := &SCIMError{Status: resp.StatusCode, Method: method, Path: path}
		var eb struct {
			Status   any    `json:"status"`
			SCIMType string `json:"scimType"`
			Detail   string `json:"detail"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			se.SCIMType, se.Detail = eb.SCIMType, eb.Detail
		}
		return "", se
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return "", fmt.Errorf("scim: %s %s: decode: %w", method, path, err)
		}
	}
	return resp.Header.Get("ETag"), nil
}

func filterQuery(attr, value string) string {
	return "?filter=" + url.QueryEscape(attr+" eq "+strconv.Quote(value))
}

// FindUser returns the user with userName, or ErrNotFound.
func (c *SCIMClient) FindUser(ctx context.Context, userName string) (SCIMUser, error) {
	var lr struct {
		TotalResults int        `json:"totalResults"`
		Resources    []SCIMUser `json:"Resources"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/Users"+filterQuery("userName", userName), "", nil, &lr); err != nil {
		return SCIMUser{}, err
	}
	for _, u := range lr.Resources {
		if strings.EqualFold(u.UserName, userName) {
			u.ETag = u.Meta.Version
			return u, nil
		}
	}
	return SCIMUser{}, fmt.Errorf("scim: user %q: %w", userName, ErrNotFound)
}

// GetUser fetches a user by id.
func (c *SCIMClient) GetUser(ctx context.Context, id string) (SCIMUser, error) {
	var u SCIMUser
	etag, err := c.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(id), "", nil, &u)
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
		body["displayName"] = strings.TrimSpace(p.GivenName + " " + p.FamilyName)
	}
	if p.Title != "" {
		body["title"] = p.Title
	}
	if p.Email != "" {
		body["emails"] = []map[string]any{{"value": p.Email, "type": "work", "primary": true}}
	}
	var u SCIMUser
	etag, err := c.do(ctx, http.MethodPost, "/Users", "", body, &u)
	if err != nil {
		return SCIMUser{}, err
	}
	u.ETag = firstNonEmpty(etag, u.Meta.Version)
	return u, nil
}

func patchBody(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{scimPatchOpSchema}, "Operations": ops}
}

// SetActive sets active on user id with a PATCH (If-Match etag when known).
// On 412 it refetches and retries.
func (c *SCIMClient) SetActive(ctx context.Context, id, etag string, active bool) (SCIMUser, error) {
	for attempt := 0; ; attempt++ {
		var u SCIMUser
		newTag, err := c.do(ctx, http.MethodPatch, "/Users/"+url.PathEscape(id), etag,
			patchBody(map[string]any{"op": "replace", "path": "active", "value": active}), &u)
		if err == nil {
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

// DeleteUser deletes user id (If-Match etag when known). A missing user is
// not an error.
func (c *SCIMClient) DeleteUser(ctx context.Context, id, etag string) error {
	for attempt := 0; ; attempt++ {
		_, err := c.do(ctx, http.MethodDelete, "/Users/"+url.PathEscape(id), etag, nil, nil)
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

// FindGroup returns the group with displayName, or ErrNotFound.
func (c *SCIMClient) FindGroup(ctx context.Context, displayName string) (SCIMGroup, error) {
	var lr struct {
		Resources []SCIMGroup `json:"Resources"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/Groups"+filterQuery("displayName", displayName), "", nil, &lr); err != nil {
		return SCIMGroup{}, err
	}
	for _, g := range lr.Resources {
		if strings.EqualFold(g.DisplayName, displayName) {
			g.ETag = g.Meta.Version
			return g, nil
		}
	}
	return SCIMGroup{}, fmt.Errorf("scim: group %q: %w", displayName, ErrNotFound)
}

// GetGroup fetches a group by id.
func (c *SCIMClient) GetGroup(ctx context.Context, id string) (SCIMGroup, error) {
	var g SCIMGroup
	etag, err := c.do(ctx, http.MethodGet, "/Groups/"+url.PathEscape(id), "", nil, &g)
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
		_, err := c.do(ctx, http.MethodPatch, "/Groups/"+url.PathEscape(g.ID), g.ETag, patchBody(op), nil)
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
	var se *SCIMError
	return errors.As(err, &se) && se.Status == http.StatusPreconditionFailed
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Grant implements GrantRevoker: find or create the user, reactivate it if
// needed, and add it to every group.
func (c *SCIMClient) Grant(ctx context.Context, p Person, groups []string) (Result, error) {
	res := Result{App: c.app, Action: "unchanged"}
	u, err := c.FindUser(ctx, p.UserName)
	switch {
	case errors.Is(err, ErrNotFound):
		u, err = c.CreateUser(ctx, p)
		if errors.Is(err, ErrConflict) {
			// Created concurrently (or by an earlier attempt whose answer was lost).
			u, err = c.FindUser(ctx, p.UserName)
		} else if err == nil {
			res.Action = "created"
		}
		if err != nil {
			return res, fmt.Errorf("%s: create user: %w", c.app, err)
		}
	case err != nil:
		return res, fmt.Errorf("%s: find user: %w", c.app, err)
	}
	if !u.Active {
		if u, err = c.SetActive(ctx, u.ID, u.ETag, true); err != nil {
			return res, fmt.Errorf("%s: reactivate user: %w", c.app, err)
		}
		res.Action = "reactivated"
	}
	res.AccountID = u.ID
	for _, name := range groups {
		g, err := c.FindGroup(ctx, name)
		if err != nil {
			return res, fmt.Errorf("%s: group %q: %w", c.app, name, err)
		}
		if g.HasMember(u.ID) {
			res.Groups = append(res.Groups, name)
			continue
		}
		if err := c.AddMember(ctx, g, u.ID); err != nil {
			return res, fmt.Errorf("%s: add to group %q: %w", c.app, name, err)
		}
		res.Groups = append(res.Groups, name)
	}
	return res, nil
}

// Revoke implements GrantRevoker.
func (c *SCIMClient) Revoke(ctx context.Context, p Person, mode RevokeMode) (Result, error) {
	res := Result{App: c.app}
	u, err := c.FindUser(ctx, p.UserName)
	if errors.Is(err, ErrNotFound) {
		res.Action = "absent"
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("%s: find user: %w", c.app, err)
	}
	res.AccountID = u.ID
	switch mode {
	case RevokeDelete:
		if err := c.DeleteUser(ctx, u.ID, u.ETag); err != nil {
			return res, fmt.Errorf("%s: delete user: %w", c.app, err)
		}
		res.Action = "deleted"
	default:
		res.Action = "deactivated"
		if !u.Active {
			return res, nil
		}
		if _, err := c.SetActive(ctx, u.ID, u.ETag, false); err != nil {
			return res, fmt.Errorf("%s: deactivate user: %w", c.app, err)
		}
	}
	return res, nil
}

// Lookup implements the optional Lookup capability.
func (c *SCIMClient) Lookup(ctx context.Context, p Person) (string, bool, error) {
	u, err := c.FindUser(ctx, p.UserName)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return u.ID, u.Active, nil
}
