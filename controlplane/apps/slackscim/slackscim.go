// Package slackscim is the Slack connector over Slack's SCIM 2.0 API
// (https://api.slack.com/scim/v2, a bearer token from an Org Owner or Admin
// with the admin scope). It is written beside apps.SCIMClient rather than on
// it: Slack answers errors as {"Errors":{"description","code"}} rather than
// RFC 7644's, identifies members by a handle (userName) that is not the email,
// and cannot delete a member.
//
// Suspension is PATCH active=false. Slack's DELETE /Users/{id} also only
// deactivates; the connector does not use it, so "deleted" is never reported
// for an account that still exists. Deactivation signs the member out of every
// Slack session, so RevokeSessions holds. Remove is not supported.
package slackscim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/internal/rest"
)

// DefaultBaseURL is Slack's SCIM 2.0 base.
const DefaultBaseURL = "https://api.slack.com/scim/v2"

const (
	schemaUser    = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// Connector is an apps.Connector for one Slack workspace or Grid org.
type Connector struct {
	app string
	api rest.Client
}

var _ apps.Connector = (*Connector)(nil)

// Build is the apps.Builder for kind "slack". Spec.Secret is the SCIM token.
func Build(_ context.Context, s apps.Spec) (apps.Connector, error) { return New(s) }

// New returns the concrete connector.
func New(s apps.Spec) (*Connector, error) {
	if len(s.Secret) == 0 {
		return nil, fmt.Errorf("slack %s: no SCIM token", s.App)
	}
	base := strings.TrimSuffix(s.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	token := string(s.Secret)
	return &Connector{app: s.App, api: rest.Client{
		App: s.App, Base: base, HC: rest.DefaultHTTPClient(s.HTTPClient),
		Header:     http.Header{"Accept": {"application/json"}},
		Auth:       rest.Bearer(token),
		ParseError: parseError,
	}}, nil
}

// Capabilities: no deletion through Slack's SCIM API.
func (c *Connector) Capabilities() apps.Capabilities {
	return apps.Capabilities{Provision: true, Suspend: true, RevokeSessions: true, Reactivate: true,
		Groups: true, List: true}
}

// parseError reads Slack's {"Errors":{"description","code"}}; the description
// is Slack's code word (email_taken, no_such_user, invalid_authentication).
// Slack's own SCIM 2.0 client (java-slack-sdk SCIM2ApiErrorResponse) also
// reads RFC 7644's {"schemas","detail","status","scimType"} from the same
// endpoints, so that shape is read too rather than lost.
func parseError(status int, _ http.Header, body []byte) rest.ErrorInfo {
	var eb struct {
		Errors struct {
			Description string `json:"description"`
			Code        int    `json:"code"`
		} `json:"Errors"`
		Detail   string `json:"detail"`
		ScimType string `json:"scimType"`
	}
	_ = json.Unmarshal(body, &eb)
	if d := eb.Errors.Description; d != "" {
		return rest.ErrorInfo{Code: d, Detail: d}
	}
	return rest.ErrorInfo{Code: eb.ScimType, Detail: strings.TrimSpace(eb.Detail)}
}

type user struct {
	ID         string `json:"id"`
	UserName   string `json:"userName"`
	ExternalID string `json:"externalId"`
	Active     *bool  `json:"active"`
	Title      string `json:"title"`
	Name       struct {
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
	} `json:"name"`
	Emails []struct {
		Value   string `json:"value"`
		Primary bool   `json:"primary"`
	} `json:"emails"`
	Groups []struct {
		Display string `json:"display"`
	} `json:"groups"`
}

func (u user) email() string {
	for _, e := range u.Emails {
		if e.Primary {
			return e.Value
		}
	}
	if len(u.Emails) > 0 {
		return u.Emails[0].Value
	}
	return ""
}

func (u user) account() apps.Account {
	a := apps.Account{ID: u.ID, UserName: u.UserName, Email: u.email(), ExternalID: u.ExternalID, Active: u.Active}
	for _, g := range u.Groups {
		a.Groups = append(a.Groups, g.Display)
	}
	return a
}

type listResponse[T any] struct {
	TotalResults int `json:"totalResults"`
	ItemsPerPage int `json:"itemsPerPage"`
	StartIndex   int `json:"startIndex"`
	Resources    []T `json:"Resources"`
}

func filter(attr, value string) string {
	return "filter=" + strings.ReplaceAll(url.QueryEscape(attr+" eq "+strconv.Quote(value)), "+", "%20")
}

func (c *Connector) email(p apps.Person) string {
	if p.Email != "" {
		return p.Email
	}
	return p.UserName
}

var handleBad = regexp.MustCompile(`[^a-z0-9._-]`)

// handle is the Slack userName for p: the email's local part, lowercased, in
// Slack's alphabet and 21 characters.
func handle(p apps.Person) string {
	local, _, _ := strings.Cut(p.UserName, "@")
	if local == "" {
		local, _, _ = strings.Cut(p.Email, "@")
	}
	h := handleBad.ReplaceAllString(strings.ToLower(local), "")
	if len(h) > 21 {
		h = h[:21]
	}
	return h
}

// find looks p up by the account id Lanyard recorded (Slack cannot filter on
// externalId, and an admin may have changed both the email and the handle), then
// by email (what stays stable when a member changes their handle), then by
// handle; a match linked to another person is not theirs.
func (c *Connector) find(ctx context.Context, p apps.Person) (user, error) {
	if p.AccountID != "" {
		var u user
		_, err := c.api.Do(ctx, "find", http.MethodGet, "/Users/"+url.PathEscape(p.AccountID), nil, &u)
		switch {
		case err == nil && (u.ExternalID == "" || p.ExternalID == "" || u.ExternalID == p.ExternalID):
			return u, nil
		case err != nil && !errors.Is(err, apps.ErrNotFound):
			return user{}, err
		}
	}
	for _, q := range [][2]string{{"email", c.email(p)}, {"userName", handle(p)}} {
		if q[1] == "" {
			continue
		}
		var lr listResponse[user]
		if _, err := c.api.Do(ctx, "find", http.MethodGet, "/Users?"+filter(q[0], q[1]), nil, &lr); err != nil {
			return user{}, err
		}
		for _, u := range lr.Resources {
			if u.ExternalID == "" || p.ExternalID == "" || u.ExternalID == p.ExternalID {
				return u, nil
			}
		}
	}
	return user{}, &apps.TargetError{App: c.app, Op: "find", Kind: apps.ErrNotFound, Detail: "no member with email " + c.email(p)}
}

// Find returns p's member.
func (c *Connector) Find(ctx context.Context, p apps.Person) (apps.Account, error) {
	u, err := c.find(ctx, p)
	if err != nil {
		return apps.Account{}, err
	}
	return u.account(), nil
}

func (c *Connector) patch(ctx context.Context, op, id string, ops ...map[string]any) error {
	_, err := c.api.Do(ctx, op, http.MethodPatch, "/Users/"+url.PathEscape(id),
		map[string]any{"schemas": []string{schemaPatchOp}, "Operations": ops}, nil)
	return err
}

// Provision creates or adopts (links externalId, updates names and title) p's
// member and adds them to the groups. Action: created, linked, updated,
// unchanged. An email Slack already holds (email_taken, 409) is adopted.
func (c *Connector) Provision(ctx context.Context, p apps.Person, groups []string) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	if errors.Is(err, apps.ErrNotFound) {
		body := map[string]any{
			"schemas": []string{schemaUser}, "userName": handle(p), "active": true,
			"emails": []map[string]any{{"value": c.email(p), "primary": true}},
			"name":   map[string]string{"givenName": p.GivenName, "familyName": p.FamilyName},
		}
		if p.ExternalID != "" {
			body["externalId"] = p.ExternalID
		}
		if p.Title != "" {
			body["title"] = p.Title
		}
		_, err = c.api.Do(ctx, "provision", http.MethodPost, "/Users", body, &u)
		res.Action = "created"
		var te *apps.TargetError
		if errors.As(err, &te) && te.Status == http.StatusConflict && te.Code == "email_taken" {
			// A race or a case our lookup missed; an email held by someone
			// else's linked member stays Slack's refusal.
			if u, err = c.find(ctx, p); errors.Is(err, apps.ErrNotFound) {
				err = te
			}
			res.Action = "linked"
		}
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if res.Action != "created" {
		var ops []map[string]any
		if p.ExternalID != "" && u.ExternalID != p.ExternalID {
			ops = append(ops, map[string]any{"op": "replace", "path": "externalId", "value": p.ExternalID})
			res.Action = "linked"
		}
		if p.Title != "" && u.Title != p.Title {
			ops = append(ops, map[string]any{"op": "replace", "path": "title", "value": p.Title})
		}
		if (p.GivenName != "" && u.Name.GivenName != p.GivenName) || (p.FamilyName != "" && u.Name.FamilyName != p.FamilyName) {
			ops = append(ops, map[string]any{"op": "replace", "value": map[string]any{
				"name": map[string]string{"givenName": p.GivenName, "familyName": p.FamilyName}}})
		}
		if len(ops) > 0 {
			if err := c.patch(ctx, "link", u.ID, ops...); err != nil {
				return res, err
			}
			if res.Action == "unchanged" {
				res.Action = "updated"
			}
		}
	}
	have := map[string]bool{}
	for _, g := range u.Groups {
		have[strings.ToLower(g.Display)] = true
	}
	for _, g := range groups {
		res.Groups = append(res.Groups, g)
		if have[strings.ToLower(g)] {
			continue
		}
		gid, err := c.groupID(ctx, g)
		if err != nil {
			return res, err
		}
		if _, err := c.api.Do(ctx, "add to group", http.MethodPatch, "/Groups/"+url.PathEscape(gid),
			map[string]any{"schemas": []string{schemaPatchOp}, "Operations": []map[string]any{
				{"op": "add", "path": "members", "value": []map[string]string{{"value": u.ID}}}}}, nil); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (c *Connector) groupID(ctx context.Context, name string) (string, error) {
	var lr listResponse[struct {
		ID string `json:"id"`
	}]
	if _, err := c.api.Do(ctx, "find group", http.MethodGet, "/Groups?"+filter("displayName", name), nil, &lr); err != nil {
		return "", err
	}
	if len(lr.Resources) != 1 {
		return "", &apps.TargetError{App: c.app, Op: "find group", Kind: apps.ErrRejected,
			Detail: fmt.Sprintf("%d Slack user groups named %q", len(lr.Resources), name)}
	}
	return lr.Resources[0].ID, nil
}

func (c *Connector) setActive(ctx context.Context, p apps.Person, active bool, op, did string) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if u.Active != nil && *u.Active == active {
		return res, nil
	}
	if err := c.patch(ctx, op, u.ID, map[string]any{"op": "replace", "path": "active", "value": active}); err != nil {
		return res, err
	}
	res.Action = did
	return res, nil
}

// Suspend deactivates the member (PATCH active false), which signs them out.
func (c *Connector) Suspend(ctx context.Context, p apps.Person) (apps.Result, error) {
	res, err := c.setActive(ctx, p, false, "suspend", "suspended")
	if errors.Is(err, apps.ErrNotFound) {
		return apps.Result{App: c.app, Action: "absent"}, nil
	}
	return res, err
}

// Reactivate sets active true again.
func (c *Connector) Reactivate(ctx context.Context, p apps.Person) (apps.Result, error) {
	return c.setActive(ctx, p, true, "reactivate", "reactivated")
}

// Remove is not possible: Slack keeps every member; Suspend deactivates.
func (c *Connector) Remove(context.Context, apps.Person) (apps.Result, error) {
	return apps.Result{App: c.app}, &apps.TargetError{App: c.app, Op: "remove", Kind: apps.ErrNotSupported,
		Detail: "Slack's SCIM API cannot delete members (DELETE only deactivates); use suspension"}
}

// List pages through /Users with startIndex and count.
func (c *Connector) List(ctx context.Context, fn func(apps.Account) error) error {
	for start := 1; ; {
		var lr listResponse[user]
		if _, err := c.api.Do(ctx, "list", http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=1000", start), nil, &lr); err != nil {
			return err
		}
		for _, u := range lr.Resources {
			if err := fn(u.account()); err != nil {
				return err
			}
		}
		start += len(lr.Resources)
		if len(lr.Resources) == 0 || start > lr.TotalResults {
			return nil
		}
	}
}
