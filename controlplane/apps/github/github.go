// Package github is the GitHub organisation connector: membership and team
// membership through the REST API (bearer token, X-GitHub-Api-Version
// 2022-11-28). GitHub has no suspension for organisation members, so Suspend
// removes the member from the organisation (which drops their teams) and
// cancels their pending invitations; Capabilities reports Reactivate false,
// and a rehire is a new Provision (GitHub offers to reinstate a former
// member's teams and forks within three months).
//
// People are matched to GitHub accounts through settings.logins (work email →
// login, e.g. exported from the org's SAML identities). Without a login the
// person is invited by email, and is found through the pending invitation
// until they accept.
package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/internal/rest"
)

// DefaultBaseURL is GitHub.com's REST API.
const DefaultBaseURL = "https://api.github.com"

// Settings is the connector's JSON settings.
type Settings struct {
	Org string `json:"org"`
	// Logins maps a work email (or user name) to a GitHub login.
	Logins map[string]string `json:"logins,omitempty"`
	// Role for new members: "member" (default) or "admin".
	Role string `json:"role,omitempty"`
}

// Connector is an apps.Connector for one organisation.
type Connector struct {
	app    string
	set    Settings
	logins map[string]string
	// emails maps a login back to its work email, so reconciliation can tell a
	// leaver's membership from an account of nobody (GitHub shows no emails).
	emails map[string]string
	api    rest.Client
}

var _ apps.Connector = (*Connector)(nil)

// Build is the apps.Builder for kind "github"; Spec.Secret is the token (a
// fine-grained token or GitHub App installation token with organisation
// "Members: read and write").
func Build(_ context.Context, s apps.Spec) (apps.Connector, error) { return New(s) }

// New returns the concrete connector.
func New(s apps.Spec) (*Connector, error) {
	var set Settings
	if len(s.Settings) > 0 {
		if err := json.Unmarshal(s.Settings, &set); err != nil {
			return nil, &apps.FieldError{Field: "settings", Reason: err.Error()}
		}
	}
	if set.Org == "" {
		return nil, &apps.FieldError{Field: "settings.org", Reason: "required (the organisation's login)"}
	}
	switch set.Role {
	case "":
		set.Role = "member"
	case "member", "admin":
	default:
		return nil, &apps.FieldError{Field: "settings.role", Reason: fmt.Sprintf("%q: want member or admin", set.Role)}
	}
	if len(s.Secret) == 0 {
		return nil, &apps.FieldError{Field: "secret", Reason: "a token with organisation Members: read and write is required"}
	}
	base := strings.TrimSuffix(s.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	c := &Connector{app: s.App, set: set, logins: map[string]string{}, emails: map[string]string{}}
	for k, v := range set.Logins {
		c.logins[strings.ToLower(k)] = v
		if strings.Contains(k, "@") {
			c.emails[strings.ToLower(v)] = k
		}
	}
	token := string(s.Secret)
	c.api = rest.Client{
		App: s.App, Base: base + "/orgs/" + url.PathEscape(set.Org), HC: rest.DefaultHTTPClient(s.HTTPClient),
		Header:     http.Header{"Accept": {"application/vnd.github+json"}, "X-Github-Api-Version": {"2022-11-28"}},
		Auth:       rest.Bearer(token),
		ParseError: parseError,
	}
	return c, nil
}

// Capabilities: no suspension and no reactivation on GitHub; Suspend removes.
func (c *Connector) Capabilities() apps.Capabilities {
	return apps.Capabilities{Provision: true, Suspend: true, Remove: true, Groups: true, List: true}
}

// secondaryWait is how long GitHub says to wait after a secondary rate limit
// that came without retry-after ("wait for at least one minute").
const secondaryWait = time.Minute

// parseError reads {message, documentation_url, errors}. A 403 or 429 that
// says the quota is spent (x-ratelimit-remaining 0, or retry-after, or the
// secondary-limit message: GitHub does not always send retry-after with it)
// is throttling, not a permission problem.
func parseError(status int, h http.Header, body []byte) rest.ErrorInfo {
	var eb struct {
		Message string `json:"message"`
		Errors  []struct {
			Field   string `json:"field"`
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		DocumentationURL string `json:"documentation_url"`
	}
	_ = json.Unmarshal(body, &eb)
	info := rest.ErrorInfo{Detail: eb.Message}
	for _, e := range eb.Errors {
		info.Detail += "; " + strings.TrimSpace(e.Field+" "+e.Code+" "+e.Message)
	}
	if status == http.StatusForbidden || status == http.StatusTooManyRequests {
		if h.Get("x-ratelimit-remaining") == "0" {
			info.Kind, info.Code = apps.ErrUnavailable, "rate_limited"
			if reset, err := strconv.ParseInt(h.Get("x-ratelimit-reset"), 10, 64); err == nil {
				info.RetryAfter = max(time.Until(time.Unix(reset, 0)).Round(time.Second), time.Second)
			}
		} else if h.Get("retry-after") != "" {
			info.Kind, info.Code = apps.ErrUnavailable, "secondary_rate_limit"
		} else if strings.Contains(strings.ToLower(eb.Message), "secondary rate limit") {
			info.Kind, info.Code, info.RetryAfter = apps.ErrUnavailable, "secondary_rate_limit", secondaryWait
		}
	}
	if status == http.StatusUnprocessableEntity {
		info.Code = "validation_failed"
	}
	return info
}

func (c *Connector) login(p apps.Person) string {
	for _, k := range []string{p.Email, p.UserName} {
		if l := c.logins[strings.ToLower(k)]; l != "" && k != "" {
			return l
		}
	}
	return ""
}

func (c *Connector) email(p apps.Person) string {
	if p.Email != "" {
		return p.Email
	}
	if strings.Contains(p.UserName, "@") {
		return p.UserName
	}
	return ""
}

type membership struct {
	State string `json:"state"`
	Role  string `json:"role"`
	User  struct {
		Login string `json:"login"`
	} `json:"user"`
}

type invitation struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	Email string `json:"email"`
}

// invitations returns the pending invitations for p (by login or email).
func (c *Connector) invitations(ctx context.Context, op string, p apps.Person) ([]invitation, error) {
	login, email := c.login(p), c.email(p)
	var out []invitation
	err := c.pages(ctx, op, "/invitations?per_page=100", func(raw json.RawMessage) error {
		var is []invitation
		if err := json.Unmarshal(raw, &is); err != nil {
			return err
		}
		for _, i := range is {
			if (login != "" && strings.EqualFold(i.Login, login)) || (email != "" && strings.EqualFold(i.Email, email)) {
				out = append(out, i)
			}
		}
		return nil
	})
	return out, err
}

// pages walks a list endpoint through its Link rel="next" headers.
func (c *Connector) pages(ctx context.Context, op, path string, fn func(json.RawMessage) error) error {
	for path != "" {
		var raw json.RawMessage
		resp, err := c.api.Do(ctx, op, http.MethodGet, path, nil, &raw)
		if err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
		path = rest.NextLink(resp.Header)
	}
	return nil
}

// Find returns the membership (ID and UserName are the login), or a pending
// email invitation (ID "invitation:N", Active unknown).
func (c *Connector) Find(ctx context.Context, p apps.Person) (apps.Account, error) {
	if login := c.login(p); login != "" {
		var m membership
		_, err := c.api.Do(ctx, "find", http.MethodGet, "/memberships/"+url.PathEscape(login), nil, &m)
		if err == nil {
			active := m.State == "active"
			return apps.Account{ID: m.User.Login, UserName: m.User.Login, Email: c.email(p), Active: &active}, nil
		}
		if !errors.Is(err, apps.ErrNotFound) {
			return apps.Account{}, err
		}
	}
	is, err := c.invitations(ctx, "find", p)
	if err != nil {
		return apps.Account{}, err
	}
	if len(is) > 0 {
		return apps.Account{ID: "invitation:" + strconv.FormatInt(is[0].ID, 10), UserName: is[0].Login, Email: is[0].Email}, nil
	}
	return apps.Account{}, &apps.TargetError{App: c.app, Op: "find", Kind: apps.ErrNotFound,
		Detail: "no member or pending invitation for " + firstNonEmpty(c.login(p), c.email(p))}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func (c *Connector) teamID(ctx context.Context, slug string) (int64, error) {
	var t struct {
		ID int64 `json:"id"`
	}
	_, err := c.api.Do(ctx, "find team", http.MethodGet, "/teams/"+url.PathEscape(slug), nil, &t)
	if errors.Is(err, apps.ErrNotFound) {
		return 0, &apps.TargetError{App: c.app, Op: "find team", Status: http.StatusNotFound, Kind: apps.ErrRejected,
			Detail: fmt.Sprintf("no team %q in organisation %s", slug, c.set.Org)}
	}
	return t.ID, err
}

// Provision adds p to the org and the teams (slugs). With a known login:
// PUT memberships (Action created, pending until they accept; or unchanged)
// and PUT each team membership. Without one: an email invitation carrying the
// team ids (Action invited), unless one is already pending (unchanged).
func (c *Connector) Provision(ctx context.Context, p apps.Person, teams []string) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged", Groups: teams}
	login := c.login(p)
	if login == "" {
		email := c.email(p)
		if email == "" {
			return res, &apps.TargetError{App: c.app, Op: "provision", Kind: apps.ErrRejected,
				Detail: "no GitHub login in settings and no email to invite"}
		}
		pending, err := c.invitations(ctx, "provision", p)
		if err != nil || len(pending) > 0 {
			res.AccountID = "invitation:" + firstInv(pending)
			return res, err
		}
		ids := []int64{}
		for _, t := range teams {
			id, err := c.teamID(ctx, t)
			if err != nil {
				return res, err
			}
			ids = append(ids, id)
		}
		role := "direct_member"
		if c.set.Role == "admin" {
			role = "admin"
		}
		var inv invitation
		if _, err := c.api.Do(ctx, "provision", http.MethodPost, "/invitations",
			map[string]any{"email": email, "role": role, "team_ids": ids}, &inv); err != nil {
			return res, err
		}
		res.Action, res.AccountID = "invited", "invitation:"+strconv.FormatInt(inv.ID, 10)
		return res, nil
	}
	res.AccountID = login
	var m membership
	_, err := c.api.Do(ctx, "provision", http.MethodGet, "/memberships/"+url.PathEscape(login), nil, &m)
	switch {
	case errors.Is(err, apps.ErrNotFound):
		if _, err := c.api.Do(ctx, "provision", http.MethodPut, "/memberships/"+url.PathEscape(login),
			map[string]string{"role": c.set.Role}, &m); err != nil {
			return res, err
		}
		res.Action = "created"
	case err != nil:
		return res, err
	}
	for _, t := range teams {
		if _, err := c.api.Do(ctx, "add to team", http.MethodPut, "/teams/"+url.PathEscape(t)+"/memberships/"+url.PathEscape(login),
			map[string]string{"role": "member"}, nil); err != nil {
			if errors.Is(err, apps.ErrNotFound) {
				return res, &apps.TargetError{App: c.app, Op: "add to team", Status: http.StatusNotFound, Kind: apps.ErrRejected,
					Detail: fmt.Sprintf("no team %q in organisation %s (or no user %s)", t, c.set.Org, login)}
			}
			return res, err
		}
	}
	return res, nil
}

func firstInv(is []invitation) string {
	if len(is) == 0 {
		return ""
	}
	return strconv.FormatInt(is[0].ID, 10)
}

// Suspend removes p from the organisation (GitHub cannot suspend a member)
// and cancels pending invitations. Action: deleted, or absent.
func (c *Connector) Suspend(ctx context.Context, p apps.Person) (apps.Result, error) {
	return c.remove(ctx, p, "suspend")
}

// Remove is Suspend: on GitHub both end the membership.
func (c *Connector) Remove(ctx context.Context, p apps.Person) (apps.Result, error) {
	return c.remove(ctx, p, "remove")
}

func (c *Connector) remove(ctx context.Context, p apps.Person, op string) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "absent"}
	if login := c.login(p); login != "" {
		var m membership
		_, err := c.api.Do(ctx, op, http.MethodGet, "/memberships/"+url.PathEscape(login), nil, &m)
		switch {
		case err == nil:
			if _, err := c.api.Do(ctx, op, http.MethodDelete, "/members/"+url.PathEscape(login), nil, nil); err != nil && !errors.Is(err, apps.ErrNotFound) {
				return res, err
			}
			res.Action, res.AccountID = "deleted", login
		case !errors.Is(err, apps.ErrNotFound):
			return res, err
		}
	}
	pending, err := c.invitations(ctx, op, p)
	if err != nil {
		return res, err
	}
	for _, i := range pending {
		if _, err := c.api.Do(ctx, op, http.MethodDelete, "/invitations/"+strconv.FormatInt(i.ID, 10), nil, nil); err != nil && !errors.Is(err, apps.ErrNotFound) {
			return res, err
		}
		res.Action = "deleted"
	}
	return res, nil
}

// Reactivate is not possible on GitHub: a removed member is invited again by
// Provision.
func (c *Connector) Reactivate(context.Context, apps.Person) (apps.Result, error) {
	return apps.Result{App: c.app}, &apps.TargetError{App: c.app, Op: "reactivate", Kind: apps.ErrNotSupported,
		Detail: "GitHub has no suspended members to reactivate; provision the person again to re-invite them"}
}

// List walks the organisation's members (active ones: GitHub lists pending
// members under invitations).
func (c *Connector) List(ctx context.Context, fn func(apps.Account) error) error {
	return c.pages(ctx, "list", "/members?per_page=100", func(raw json.RawMessage) error {
		var ms []struct {
			Login string `json:"login"`
		}
		if err := json.Unmarshal(raw, &ms); err != nil {
			return err
		}
		for _, m := range ms {
			active := true
			a := apps.Account{ID: m.Login, UserName: m.Login, Email: c.emails[strings.ToLower(m.Login)], Active: &active}
			if err := fn(a); err != nil {
				return err
			}
		}
		return nil
	})
}
