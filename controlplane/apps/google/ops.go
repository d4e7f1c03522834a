package google

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/apps"
)

func (c *Client) dir(path string) string { return c.base + "/admin/directory/v1" + path }

func quoteQuery(v string) string { return "'" + strings.ReplaceAll(v, "'", `\'`) + "'" }

// search lists users matching a Directory API query (e.g. externalId:'E1').
func (c *Client) search(ctx context.Context, query string) ([]User, error) {
	q := url.Values{"customer": {c.set.Customer}, "query": {query}, "maxResults": {"10"}}
	var out struct {
		Users []User `json:"users"`
	}
	if err := c.do(ctx, c.admin, "find", http.MethodGet, c.dir("/users?"+q.Encode()), nil, &out); err != nil {
		return nil, err
	}
	return out.Users, nil
}

func (c *Client) getUser(ctx context.Context, key string) (User, error) {
	var u User
	err := c.do(ctx, c.admin, "find", http.MethodGet, c.dir("/users/"+url.PathEscape(key)), nil, &u)
	return u, err
}

// Find looks p up by the externalId link first, so an account renamed in
// Google is still found, then by the email the naming rule gives p.
func (c *Client) Find(ctx context.Context, p apps.Person) (apps.Account, error) {
	u, err := c.find(ctx, p)
	if err != nil {
		return apps.Account{}, err
	}
	return u.account(), nil
}

func (c *Client) find(ctx context.Context, p apps.Person) (User, error) {
	if p.ExternalID != "" {
		users, err := c.search(ctx, "externalId:"+quoteQuery(p.ExternalID))
		if err != nil {
			return User{}, err
		}
		for _, u := range users {
			if u.externalID() == p.ExternalID {
				return u, nil
			}
		}
	}
	for _, key := range uniq(c.emailFor(p), strings.ToLower(p.UserName), strings.ToLower(p.Email)) {
		u, err := c.getUser(ctx, key)
		if errors.Is(err, apps.ErrNotFound) {
			continue
		}
		if err != nil {
			return User{}, err
		}
		if x := u.externalID(); x != "" && p.ExternalID != "" && x != p.ExternalID {
			// The address is someone else's (two Jane Does): not p's account.
			continue
		}
		return u, nil
	}
	return User{}, &apps.TargetError{App: c.app, Op: "find", Status: http.StatusNotFound, Kind: apps.ErrNotFound, Detail: "no account for " + p.ExternalID}
}

func uniq(v ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range v {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// hrFields is the HR-owned part of a user resource (names, title, department,
// link), sent on create and on adoption.
func (c *Client) hrFields(p apps.Person) map[string]any {
	m := map[string]any{
		"name":        UserName{GivenName: p.GivenName, FamilyName: p.FamilyName},
		"externalIds": []ExternalID{{Type: "organization", Value: p.ExternalID}},
	}
	if p.Title != "" || p.Department != "" {
		m["organizations"] = []Organization{{Title: p.Title, Department: p.Department, Primary: true}}
	}
	return m
}

func (c *Client) needsUpdate(u User, p apps.Person) bool {
	if u.externalID() != p.ExternalID {
		return true
	}
	if u.Name == nil || (p.GivenName != "" && u.Name.GivenName != p.GivenName) || (p.FamilyName != "" && u.Name.FamilyName != p.FamilyName) {
		return true
	}
	if p.Title != "" || p.Department != "" {
		if len(u.Organizations) == 0 || u.Organizations[0].Title != p.Title || u.Organizations[0].Department != p.Department {
			return true
		}
	}
	return false
}

func (c *Client) update(ctx context.Context, op, id string, fields map[string]any) (User, error) {
	var u User
	err := c.do(ctx, c.admin, op, http.MethodPut, c.dir("/users/"+url.PathEscape(id)), fields, &u)
	return u, err
}

// Provision creates p's account (naming rule, random initial password that
// must be changed at first sign-in) or adopts and links an existing one, then
// adds it to groups.
func (c *Client) Provision(ctx context.Context, p apps.Person, groups []string) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	switch {
	case errors.Is(err, apps.ErrNotFound):
		u, err = c.insert(ctx, p)
		if err != nil {
			return res, err
		}
		res.Action = "created"
		if u.ID == "" { // adopted after a 409
			if u, err = c.adopt(ctx, p); err != nil {
				return res, err
			}
			res.Action = "linked"
		}
	case err != nil:
		return res, err
	default:
		if u.suspended() {
			return res, &apps.TargetError{App: c.app, Op: "provision", Kind: apps.ErrRejected, Code: "suspended",
				Detail: u.PrimaryEmail + " is suspended; reactivate it explicitly"}
		}
		if c.needsUpdate(u, p) {
			if u, err = c.update(ctx, "provision", u.ID, c.hrFields(p)); err != nil {
				return res, err
			}
			res.Action = "linked"
		}
	}
	res.AccountID = u.ID
	for _, g := range groups {
		added, err := c.addMember(ctx, g, u.PrimaryEmail)
		if err != nil {
			return res, err
		}
		if added {
			res.Groups = append(res.Groups, g)
		}
	}
	return res, nil
}

// insert creates the user. A 409 "Entity already exists" (an address the
// lookups missed: an alias, a race) returns a zero User for adoption.
func (c *Client) insert(ctx context.Context, p apps.Person) (User, error) {
	email := c.emailFor(p)
	if email == "" {
		return User{}, &apps.TargetError{App: c.app, Op: "provision", Kind: apps.ErrRejected, Detail: "person has no name or user name to build an email from"}
	}
	pw, err := randomPassword()
	if err != nil {
		return User{}, err
	}
	body := c.hrFields(p)
	body["primaryEmail"] = email
	body["password"] = pw
	body["changePasswordAtNextLogin"] = true
	if c.set.OrgUnit != "" {
		body["orgUnitPath"] = c.set.OrgUnit
	}
	var u User
	err = c.do(ctx, c.admin, "provision", http.MethodPost, c.dir("/users"), body, &u)
	var te *apps.TargetError
	if errors.As(err, &te) && te.Status == http.StatusConflict {
		return User{}, nil
	}
	return u, err
}

// adopt reads the account that holds p's address and links it, unless it is
// linked to somebody else.
func (c *Client) adopt(ctx context.Context, p apps.Person) (User, error) {
	u, err := c.getUser(ctx, c.emailFor(p))
	if err != nil {
		return User{}, err
	}
	if x := u.externalID(); x != "" && x != p.ExternalID {
		return User{}, &apps.TargetError{App: c.app, Op: "provision", Status: http.StatusConflict, Kind: apps.ErrRejected, Code: "duplicate",
			Detail: u.PrimaryEmail + " already belongs to another person (externalId " + x + ")"}
	}
	if u.suspended() {
		return User{}, &apps.TargetError{App: c.app, Op: "provision", Kind: apps.ErrRejected, Code: "suspended",
			Detail: u.PrimaryEmail + " exists and is suspended; reactivate it explicitly"}
	}
	return c.update(ctx, "provision", u.ID, c.hrFields(p))
}

// addMember reports whether the membership is new; a missing group is a
// permanent rejection, not "not found" (retrying cannot create it).
func (c *Client) addMember(ctx context.Context, group, email string) (bool, error) {
	err := c.do(ctx, c.admin, "add to group "+group, http.MethodPost, c.dir("/groups/"+url.PathEscape(group)+"/members"),
		map[string]string{"email": email, "role": "MEMBER"}, nil)
	var te *apps.TargetError
	if errors.As(err, &te) {
		switch te.Status {
		case http.StatusConflict: // "Member already exists."
			return false, nil
		case http.StatusNotFound:
			te.Kind = apps.ErrRejected
			te.Detail = "group " + group + ": " + te.Detail
		}
	}
	return err == nil, err
}

func (c *Client) userGroups(ctx context.Context, userKey string) ([]string, error) {
	var out []string
	token := ""
	for {
		q := url.Values{"userKey": {userKey}, "maxResults": {"200"}}
		if token != "" {
			q.Set("pageToken", token)
		}
		var page struct {
			Groups []struct {
				Email string `json:"email"`
			} `json:"groups"`
			NextPageToken string `json:"nextPageToken"`
		}
		if err := c.do(ctx, c.admin, "list groups", http.MethodGet, c.dir("/groups?"+q.Encode()), nil, &page); err != nil {
			return nil, err
		}
		for _, g := range page.Groups {
			out = append(out, g.Email)
		}
		if token = page.NextPageToken; token == "" {
			return out, nil
		}
	}
}

// Suspend blocks sign-in first (the part that matters most, and the fastest),
// then signs the user out everywhere (signOut also resets sign-in cookies),
// then drops groups, starts the Drive transfer and sets the auto-reply as the
// settings say. Every part is idempotent, so a retry after a partial failure
// finishes the rest.
func (c *Client) Suspend(ctx context.Context, p apps.Person) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	if errors.Is(err, apps.ErrNotFound) {
		res.Action = "absent"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if c.set.AutoReply != "" && !u.suspended() {
		// Gmail refuses settings calls for a suspended mailbox, so the
		// auto-reply goes in just before the suspension.
		if err := c.setVacation(ctx, u.PrimaryEmail, true); err != nil {
			return res, err
		}
	}
	if !u.suspended() {
		if _, err := c.update(ctx, "suspend", u.ID, map[string]any{"suspended": true}); err != nil {
			return res, err
		}
		res.Action = "suspended"
	}
	if err := c.do(ctx, c.admin, "sign out", http.MethodPost, c.dir("/users/"+url.PathEscape(u.ID)+"/signOut"), nil, nil); err != nil {
		return res, err
	}
	if c.set.GroupsOnSuspend == "remove" {
		groups, err := c.userGroups(ctx, u.ID)
		if err != nil {
			return res, err
		}
		for _, g := range groups {
			err := c.do(ctx, c.admin, "remove from group "+g, http.MethodDelete,
				c.dir("/groups/"+url.PathEscape(g)+"/members/"+url.PathEscape(u.ID)), nil, nil)
			if err != nil && !errors.Is(err, apps.ErrNotFound) {
				return res, err
			}
			res.Groups = append(res.Groups, g)
		}
		if len(groups) > 0 && res.Action == "unchanged" {
			res.Action = "suspended"
		}
	}
	if c.set.TransferDriveToManager {
		if err := c.transferDrive(ctx, p, u); err != nil {
			return res, err
		}
	}
	return res, nil
}

type transferParam struct {
	Key   string   `json:"key"`
	Value []string `json:"value"`
}

type appTransfer struct {
	ApplicationID             string          `json:"applicationId"`
	ApplicationTransferParams []transferParam `json:"applicationTransferParams,omitempty"`
}

type transfer struct {
	ID                       string        `json:"id,omitempty"`
	OldOwnerUserID           string        `json:"oldOwnerUserId"`
	NewOwnerUserID           string        `json:"newOwnerUserId"`
	ApplicationDataTransfers []appTransfer `json:"applicationDataTransfers"`
}

// transferDrive asks the Data Transfer API to move the leaver's Drive files
// (private and shared) to their manager, once: an existing request for the
// same pair is not repeated on a retry.
func (c *Client) transferDrive(ctx context.Context, p apps.Person, u User) error {
	if c.manager == nil {
		return &apps.TargetError{App: c.app, Op: "drive transfer", Kind: apps.ErrRejected, Detail: "transfer_drive_to_manager is set but the connector has no manager lookup"}
	}
	mgr, err := c.manager(ctx, p)
	if err != nil {
		return fmt.Errorf("google: manager of %s: %w", p.ExternalID, err)
	}
	if mgr == "" {
		return &apps.TargetError{App: c.app, Op: "drive transfer", Kind: apps.ErrRejected, Detail: p.ExternalID + " has no manager to receive Drive files"}
	}
	m, err := c.getUser(ctx, mgr)
	if err != nil {
		var te *apps.TargetError
		if errors.As(err, &te) && te.Status == http.StatusNotFound {
			te.Kind, te.Op = apps.ErrRejected, "drive transfer: manager "+mgr
		}
		return err
	}
	base := c.base + "/admin/datatransfer/v1/transfers"
	q := url.Values{"customerId": {c.set.Customer}, "oldOwnerUserId": {u.ID}, "newOwnerUserId": {m.ID}}
	var existing struct {
		DataTransfers []transfer `json:"dataTransfers"`
	}
	if err := c.do(ctx, c.admin, "drive transfer", http.MethodGet, base+"?"+q.Encode(), nil, &existing); err != nil {
		return err
	}
	if len(existing.DataTransfers) > 0 {
		return nil
	}
	body := transfer{OldOwnerUserID: u.ID, NewOwnerUserID: m.ID, ApplicationDataTransfers: []appTransfer{{
		ApplicationID:             c.set.DriveApplicationID,
		ApplicationTransferParams: []transferParam{{Key: "PRIVACY_LEVEL", Value: []string{"PRIVATE", "SHARED"}}},
	}}}
	return c.do(ctx, c.admin, "drive transfer", http.MethodPost, base, body, nil)
}

// setVacation turns the leaver's auto-reply on or off, acting as the leaver
// (Gmail settings are the mailbox owner's; the admin cannot write them).
func (c *Client) setVacation(ctx context.Context, email string, on bool) error {
	if c.jwt == nil {
		return nil
	}
	hc, err := c.jwt.client(ctx, c.plain, email, ScopeGmailSettings)
	if err != nil {
		return err
	}
	body := map[string]any{"enableAutoReply": on}
	if on {
		body["responseBodyPlainText"] = c.set.AutoReply
		body["restrictToContacts"] = false
		body["restrictToDomain"] = false
	}
	u := strings.TrimRight(c.set.GmailBaseURL, "/") + "/gmail/v1/users/" + url.PathEscape(email) + "/settings/vacation"
	return c.do(ctx, hc, "auto-reply", http.MethodPut, u, body, nil)
}

// Reactivate lifts the suspension ("suspended": false is sent explicitly: the
// update has patch semantics, an omitted field changes nothing) and turns the
// auto-reply off. Groups dropped at suspension are not restored here: the
// next Provision adds the ones the rules give.
func (c *Client) Reactivate(ctx context.Context, p apps.Person) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "unchanged"}
	u, err := c.find(ctx, p)
	if errors.Is(err, apps.ErrNotFound) {
		res.Action = "absent"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	if !u.suspended() {
		return res, nil
	}
	if _, err := c.update(ctx, "reactivate", u.ID, map[string]any{"suspended": false}); err != nil {
		return res, err
	}
	res.Action = "reactivated"
	if c.set.AutoReply != "" {
		if err := c.setVacation(ctx, u.PrimaryEmail, false); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Remove deletes the account (Google keeps it restorable for 20 days).
func (c *Client) Remove(ctx context.Context, p apps.Person) (apps.Result, error) {
	res := apps.Result{App: c.app, Action: "absent"}
	u, err := c.find(ctx, p)
	if errors.Is(err, apps.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.AccountID = u.ID
	err = c.do(ctx, c.admin, "remove", http.MethodDelete, c.dir("/users/"+url.PathEscape(u.ID)), nil, nil)
	if errors.Is(err, apps.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Action = "deleted"
	return res, nil
}

// List pages through every user of the customer.
func (c *Client) List(ctx context.Context, fn func(apps.Account) error) error {
	token := ""
	for {
		q := url.Values{"customer": {c.set.Customer}, "maxResults": {"500"}, "orderBy": {"email"}}
		if token != "" {
			q.Set("pageToken", token)
		}
		var page struct {
			Users         []User `json:"users"`
			NextPageToken string `json:"nextPageToken"`
		}
		if err := c.do(ctx, c.admin, "list", http.MethodGet, c.dir("/users?"+q.Encode()), nil, &page); err != nil {
			return err
		}
		for _, u := range page.Users {
			if err := fn(u.account()); err != nil {
				return err
			}
		}
		if token = page.NextPageToken; token == "" {
			return nil
		}
	}
}
