// Package okta is the Okta connector: users, their lifecycle, sessions and
// group membership through the Okta Users API with an API token
// (Authorization: SSWS <token>). BaseURL is the org URL
// (https://acme.okta.com). People are linked by profile.employeeNumber
// (Lanyard's ExternalID) and otherwise matched by email, then login.
//
// Suspend is reversible by default (lifecycle/suspend); settings.suspend_mode
// "deactivate" deprovisions instead. Either way the user's sessions are
// cleared and their OAuth tokens revoked, so a stolen session dies with the
// account.
package okta

import (
	"bytes"
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

// Settings is the connector's JSON settings.
type Settings struct {
	// SuspendMode is "suspend" (default: Okta's SUSPENDED, reversible with
	// unsuspend and keeping app assignments) or "deactivate" (DEPROVISIONED).
	SuspendMode string `json:"suspend_mode,omitempty"`
	// Groups maps the group names rules use to Okta group ids (00g...).
	Groups map[string]string `json:"groups,omitempty"`
}

// Connector is an apps.Connector for one Okta org.
type Connector struct {
	app string
	set Settings
	api rest.Client
}

var _ apps.Connector = (*Connector)(nil)

// Build is the apps.Builder for kind "okta"; Spec.Secret is an API token of an
// admin allowed to manage users and groups.
func Build(_ context.Context, s apps.Spec) (apps.Connector, error) { return New(s) }

// New returns the concrete connector; bad settings are *apps.FieldError.
func New(s apps.Spec) (*Connector, error) {
	var set Settings
	if len(bytes.TrimSpace(s.Settings)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(s.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&set); err != nil {
			return nil, &apps.FieldError{Field: "settings", Reason: fmt.Sprintf("not Okta settings: %v", err)}
		}
	}
	switch set.SuspendMode {
	case "":
		set.SuspendMode = "suspend"
	case "suspend", "deactivate":
	default:
		return nil, &apps.FieldError{Field: "settings.suspend_mode", Reason: fmt.Sprintf("%q: want suspend or deactivate", set.SuspendMode)}
	}
	for name, id := range set.Groups {
		if id == "" {
			return nil, &apps.FieldError{Field: "settings.groups", Reason: fmt.Sprintf("group %q has no Okta group id", name)}
		}
	}
	if s.BaseURL == "" {
		return nil, &apps.FieldError{Field: "base_url", Reason: "an Okta connector needs the org URL (https://acme.okta.com)"}
	}
	if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &apps.FieldError{Field: "base_url", Reason: "must be an http(s) URL"}
	}
	if len(s.Secret) == 0 {
		return nil, &apps.FieldError{Field: "secret", Reason: "an Okta connector needs an API token"}
	}
	token := string(s.Secret)
	return &Connector{app: s.App, set: set, api: rest.Client{
		App: s.App, Base: strings.TrimSuffix(s.BaseURL, "/"), HC: rest.DefaultHTTPClient(s.HTTPClient),
		Header: http.Header{"Accept": {"application/json"}},
		Auth: func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "SSWS "+token)
			return nil
		},
		ParseError: parseError,
	}}, nil
}

// Capabilities: everything but licenses and data transfer.
func (c *Connector) Capabilities() apps.Capabilities {
	return apps.Capabilities{Provision: true, Suspend: true, RevokeSessions: true, Reactivate: true,
		Remove: true, Groups: true, List: true}
}

// parseError reads {errorCode, errorSummary, errorCauses}. Okta's codes are
// more precise than its statuses: E0000047 is throttling (reset given as an
// epoch second in X-Rate-Limit-Reset, no Retry-After).
func parseError(status int, h http.Header, body []byte) rest.ErrorInfo {
	var eb struct {
		ErrorCode    string `json:"errorCode"`
		ErrorSummary string `json:"errorSummary"`
		ErrorCauses  []struct {
			ErrorSummary string `json:"errorSummary"`
		} `json:"errorCauses"`
	}
	_ = json.Unmarshal(body, &eb)
	info := rest.ErrorInfo{Code: eb.ErrorCode, Detail: eb.ErrorSummary}
	for _, c := range eb.ErrorCauses {
		if c.ErrorSummary != "" && !strings.Contains(info.Detail, c.ErrorSummary) {
			info.Detail += "; " + c.ErrorSummary
		}
	}
	switch eb.ErrorCode {
	case "E0000011", "E0000006": // invalid token; no permission
		info.Kind = apps.ErrAuth
	case "E0000007":
		info.Kind = apps.ErrNotFound
	case "E0000047":
		info.Kind = apps.ErrUnavailable
	}
	if status == http.StatusTooManyRequests || eb.ErrorCode == "E0000047" {
		info.Kind = apps.ErrUnavailable
		if reset, err := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64); err == nil {
			info.RetryAfter = max(time.Until(time.Unix(reset, 0)).Round(time.Second), time.Second)
		}
	}
	return info
}

// user is an Okta user as the connector reads it.
type user struct {
	ID      string  `json:"id"`
	Status  string  `json:"status"`
	Profile profile `json:"profile"`
}

type profile struct {
	FirstName      string `json:"firstName,omitempty"`
	LastName       string `json:"lastName,omitempty"`
	Email          string `json:"email,omitempty"`
	Login          string `json:"login,omitempty"`
	EmployeeNumber string `json:"employeeNumber,omitempty"`
	Title          string `json:"title,omitempty"`
	Department     string `json:"department,omitempty"`
}

// active maps Okta's status to sign-in capability: a locked-out or
// password-expired user can still get in after a reset, so counts as active;
// STAGED (never activated), SUSPENDED and DEPROVISIONED cannot.
func active(status string) *bool {
	var v bool
	switch status {
	case "ACTIVE", "PROVISIONED", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT":
		v = true
	case "STAGED", "SUSPENDED", "DEPROVISIONED":
		v = false
	default:
		return nil
	}
	return &v
}

func (u user) account() apps.Account {
	return apps.Account{ID: u.ID, UserName: u.Profile.Login, Email: u.Profile.Email,
		ExternalID: u.Profile.EmployeeNumber, Active: active(u.Status)}
}

// quote writes a string literal for Okta's search syntax.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func email(p apps.Person) string {
	if p.Email != "" {
		return p.Email
	}
	if strings.Contains(p.UserName, "@") {
		return p.UserName
	}
	return ""
}

func login(p apps.Person) string {
	if p.UserName != "" {
		return p.UserName
	}
	return p.Email
}

// searchEscape URL-encodes a search expression with %20 for spaces, as
// Okta's examples do, rather than form encoding's "+".
func searchEscape(expr string) string {
	return strings.ReplaceAll(url.QueryEscape(expr), "+", "%20")
}

// search returns the first user matching an Okta search expression (which,
// unlike a plain list, includes DEPROVISIONED users).
func (c *Connector) search(ctx context.Context, op, expr string) (*user, error) {
	var us []user
	if _, err := c.api.Do(ctx, op, http.MethodGet, "/api/v1/users?limit=2&search="+searchEscape(expr), nil, &us); err != nil {
		return nil, err
	}
	if len(us) == 0 {
		return nil, nil
	}
	return &us[0], nil
}

// find matches p by employeeNumber (the link, which survives a rename in
// Okta), then email, then login.
func (c *Connector) find(ctx context.Context, op string, p apps.Person) (*user, error) {
	var exprs []string
	if p.ExternalID != "" {
		exprs = append(exprs, "profile.employeeNumber eq "+quote(p.ExternalID))
	}
	if e := email(p); e != "" {
		exprs = append(exprs, "profile.email eq "+quote(e))
	}
	if l := login(p); l != "" && !strings.EqualFold(l, email(p)) {
		exprs = append(exprs, "profile.login eq "+quote(l))
	}
	for _, expr := range exprs {
		u, err := c.search(ctx, op, expr)
		if err != nil || u != nil {
			return u, err
		}
	}
	return nil, &apps.TargetError{App: c.app, Op: op, Kind: apps.ErrNotFound,
		Detail: "no Okta user with employeeNumber " + p.ExternalID + " or email " + email(p)}
}

// Find implements apps.Connector.
func (c *Connector) Find(ctx context.Context, p apps.Person) (apps.Account, error) {
	u, err := c.find(ctx, "find", p)
	if err != nil {
		return apps.Account{}, err
	}
	return u.account(), nil
}

func (c *Connector) want(p apps.Person) profile {
	return profile{FirstName: p.GivenName, LastName: p.FamilyName, Email: email(p), Login: login(p),
		EmployeeNumber: p.ExternalID, Title: p.Title, Department: p.Department}
}

// drift is the partial update that links u to p and brings the HR-owned
// attributes up to date; empty when nothing differs. Login and email are not
// touched: a rename in Okta is the admin's call.
func drift(u *user, w profile) map[string]string {
	d := map[string]string{}
	set := func(k, have, want string) {
		if want != "" && have != want {
			d[k] = want
		}
	}
	set("employeeNumber", u.Profile.EmployeeNumber, w.EmployeeNumber)
	set("firstName", u.Profile.FirstName, w.FirstName)
	set("lastName", u.Profile.LastName, w.LastName)
	set("title", u.Profile.Title, w.Title)
	set("department", u.Profile.Department, w.Department)
	return d
}

func (c *Connector) groupIDs(groups []string) ([]string, error) {
	var ids []string
	for _, g := range groups {
		id := c.set.Groups[g]
		if id == "" {
			return nil, &apps.TargetError{App: c.app, Op: "provision", Kind: apps.ErrRejected,
				Detail: fmt.Sprintf("group %q is not in the connector's settings.groups", g)}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Provision creates p (activate=true: Okta emails the activation link) or
// adopts the existing user, links it by employeeNumber, and adds it to the
// groups. A suspended or deprovisioned user stays so: that is Reactivate's.
func (c *Connector) Provision(ctx context.Context, p apps.Person, groups []string) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged", Groups: groups}
	gids, err := c.groupIDs(groups) // before any write: a bad name changes nothing
	if err != nil {
		return res, err
	}
	u, err := c.find(ctx, "provision", p)
	if errors.Is(err, apps.ErrNotFound) {
		var adopted bool
		u, adopted, err = c.create(ctx, p)
		if err == nil && !adopted {
			res.Action = "created"
		}
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if d := drift(u, c.want(p)); len(d) > 0 {
		if _, err := c.api.Do(ctx, "provision", http.MethodPost, "/api/v1/users/"+url.PathEscape(u.ID),
			map[string]any{"profile": d}, nil); err != nil {
			return res, err
		}
		if res.Action == "unchanged" {
			res.Action = "linked"
		}
	}
	for _, gid := range gids {
		if _, err := c.api.Do(ctx, "add to group", http.MethodPut,
			"/api/v1/groups/"+url.PathEscape(gid)+"/users/"+url.PathEscape(u.ID), nil, nil); err != nil {
			if errors.Is(err, apps.ErrNotFound) {
				return res, &apps.TargetError{App: c.app, Op: "add to group", Status: http.StatusNotFound, Kind: apps.ErrRejected,
					Detail: fmt.Sprintf("no Okta group %s (check settings.groups)", gid)}
			}
			return res, err
		}
	}
	return res, nil
}

// create posts the user; a login that already exists (a user the searches
// missed, e.g. one whose email differs from the login) is found by login and
// adopted (adopted true).
func (c *Connector) create(ctx context.Context, p apps.Person) (*user, bool, error) {
	var u user
	_, err := c.api.Do(ctx, "provision", http.MethodPost, "/api/v1/users?activate=true",
		map[string]any{"profile": c.want(p)}, &u)
	var te *apps.TargetError
	if errors.As(err, &te) && te.Code == "E0000001" && strings.Contains(te.Detail, "login: An object with this field already exists") {
		found, ferr := c.search(ctx, "provision", "profile.login eq "+quote(login(p)))
		if ferr != nil {
			return nil, false, ferr
		}
		if found == nil {
			return nil, false, err
		}
		return found, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &u, false, nil
}

func (c *Connector) lifecycle(ctx context.Context, op, id, action string) error {
	_, err := c.api.Do(ctx, op, http.MethodPost, "/api/v1/users/"+url.PathEscape(id)+"/lifecycle/"+action, nil, nil)
	return err
}

// Suspend blocks sign-in and clears sessions and OAuth tokens. Okta suspends
// only ACTIVE users, so in suspend mode a user in another sign-in-capable
// status (PROVISIONED, LOCKED_OUT, PASSWORD_EXPIRED, RECOVERY) is deactivated
// instead: leaving them able to finish activation or a reset would defeat the
// offboarding. Already SUSPENDED or DEPROVISIONED: unchanged, sessions still
// cleared.
func (c *Connector) Suspend(ctx context.Context, p apps.Person) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "absent"}
	u, err := c.find(ctx, "suspend", p)
	if errors.Is(err, apps.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.AccountID, res.Action = u.ID, "unchanged"
	switch {
	case u.Status == "SUSPENDED" || u.Status == "DEPROVISIONED":
	case u.Status == "ACTIVE" && c.set.SuspendMode == "suspend":
		if err := c.lifecycle(ctx, "suspend", u.ID, "suspend"); err != nil {
			return res, err
		}
		res.Action = "suspended"
	default:
		if err := c.lifecycle(ctx, "suspend", u.ID, "deactivate"); err != nil {
			return res, err
		}
		res.Action = "suspended"
	}
	if _, err := c.api.Do(ctx, "clear sessions", http.MethodDelete,
		"/api/v1/users/"+url.PathEscape(u.ID)+"/sessions?oauthTokens=true", nil, nil); err != nil {
		return res, err
	}
	return res, nil
}

// Reactivate undoes Suspend: unsuspend a SUSPENDED user, activate a
// DEPROVISIONED one without emailing (the person gets PROVISIONED and sets a
// password through the usual activation or reset flow).
func (c *Connector) Reactivate(ctx context.Context, p apps.Person) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, "reactivate", p)
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	switch u.Status {
	case "SUSPENDED":
		err = c.lifecycle(ctx, "reactivate", u.ID, "unsuspend")
	case "DEPROVISIONED":
		err = c.lifecycle(ctx, "reactivate", u.ID, "activate?sendEmail=false")
	default:
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Action = "reactivated"
	return res, nil
}

// Remove deactivates the user (Okta deletes only DEPROVISIONED users) and
// deletes it.
func (c *Connector) Remove(ctx context.Context, p apps.Person) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "absent"}
	u, err := c.find(ctx, "remove", p)
	if errors.Is(err, apps.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if u.Status != "DEPROVISIONED" {
		if err := c.lifecycle(ctx, "remove", u.ID, "deactivate"); err != nil {
			return res, err
		}
	}
	if _, err := c.api.Do(ctx, "remove", http.MethodDelete, "/api/v1/users/"+url.PathEscape(u.ID), nil, nil); err != nil && !errors.Is(err, apps.ErrNotFound) {
		return res, err
	}
	res.Action = "deleted"
	return res, nil
}

// List walks GET /api/v1/users through Link rel="next". Okta leaves
// DEPROVISIONED users out of a plain list, so they are not reconciled.
func (c *Connector) List(ctx context.Context, fn func(apps.Account) error) error {
	path := "/api/v1/users?limit=200"
	for path != "" {
		var us []user
		resp, err := c.api.Do(ctx, "list", http.MethodGet, path, nil, &us)
		if err != nil {
			return err
		}
		for _, u := range us {
			if err := fn(u.account()); err != nil {
				return err
			}
		}
		path = rest.NextLink(resp.Header)
	}
	return nil
}
