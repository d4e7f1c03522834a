// Package google is the Google Workspace connector: accounts through the Admin
// SDK Directory API, Drive ownership through the Data Transfer API and the
// leaver's auto-reply through the Gmail API, all with plain net/http (the
// generated google.golang.org/api client pulls 27 modules for six endpoints).
//
// Credentials are a service account key with domain-wide delegation (a JWT
// bearer grant with sub = an admin) or an OAuth refresh token of an admin
// ("authorized_user" JSON). Base URLs and the token URL are configuration, so
// fakegoogle stands in for Google in tests and the demo.
package google

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"
	goauth "golang.org/x/oauth2/google"
	"golang.org/x/text/unicode/norm"

	"github.com/lanyardhq/lanyard/controlplane/apps"
)

// Public defaults; a Spec's BaseURL and the settings override them.
const (
	DefaultBaseURL  = "https://admin.googleapis.com"
	DefaultGmailURL = "https://gmail.googleapis.com"
	DefaultTokenURL = "https://oauth2.googleapis.com/token"
	// DriveApplicationID is the Data Transfer API's id for "Drive and Docs"
	// (as applications.list reports it); settings may override it.
	DriveApplicationID = "55656082996"
)

// OAuth scopes. The admin token carries the first four; the auto-reply is
// set with a second token whose sub is the leaver (Gmail settings belong to
// the mailbox owner), so the key's client id must also be granted
// ScopeGmailSettings in the domain-wide delegation list.
const (
	ScopeUser = "https://www.googleapis.com/auth/admin.directory.user"
	// ScopeUserSecurity is the only scope users.signOut accepts
	// (admin.directory.user does not cover it).
	ScopeUserSecurity  = "https://www.googleapis.com/auth/admin.directory.user.security"
	ScopeGroup         = "https://www.googleapis.com/auth/admin.directory.group"
	ScopeDataTransfer  = "https://www.googleapis.com/auth/admin.datatransfer"
	ScopeGmailSettings = "https://www.googleapis.com/auth/gmail.settings.basic"
)

// AdminScopes are the scopes of the admin token.
var AdminScopes = []string{ScopeUser, ScopeUserSecurity, ScopeGroup, ScopeDataTransfer}

// Settings is the "google" kind's settings JSON.
type Settings struct {
	Domain   string `json:"domain"`
	Customer string `json:"customer,omitempty"` // default "my_customer"
	// AdminSubject is the admin the service account acts as (JWT sub).
	AdminSubject string `json:"admin_subject,omitempty"`
	// Naming builds a new account's primary email: "first.last", "flast" or
	// "first" (default "first.last").
	Naming string `json:"naming,omitempty"`
	// GroupsOnSuspend: "remove" (default) drops every group membership at
	// suspension, "keep" leaves them for a rehire.
	GroupsOnSuspend        string `json:"groups_on_suspend,omitempty"`
	TransferDriveToManager bool   `json:"transfer_drive_to_manager,omitempty"`
	AutoReply              string `json:"auto_reply,omitempty"`
	OrgUnit                string `json:"org_unit,omitempty"`
	TokenURL               string `json:"token_url,omitempty"`
	GmailBaseURL           string `json:"gmail_base_url,omitempty"`
	DriveApplicationID     string `json:"drive_application_id,omitempty"`
}

func (s *Settings) defaults() error {
	if s.Domain == "" {
		return &apps.FieldError{Field: "settings.domain", Reason: "required (the Workspace primary domain)"}
	}
	if s.Customer == "" {
		s.Customer = "my_customer"
	}
	switch s.Naming {
	case "":
		s.Naming = "first.last"
	case "first.last", "flast", "first":
	default:
		return &apps.FieldError{Field: "settings.naming", Reason: fmt.Sprintf("%q: want first.last, flast or first", s.Naming)}
	}
	switch s.GroupsOnSuspend {
	case "":
		s.GroupsOnSuspend = "remove"
	case "remove", "keep":
	default:
		return &apps.FieldError{Field: "settings.groups_on_suspend", Reason: fmt.Sprintf("%q: want remove or keep", s.GroupsOnSuspend)}
	}
	if s.TokenURL == "" {
		s.TokenURL = DefaultTokenURL
	}
	if s.GmailBaseURL == "" {
		s.GmailBaseURL = DefaultGmailURL
	}
	if s.DriveApplicationID == "" {
		s.DriveApplicationID = DriveApplicationID
	}
	return nil
}

// ManagerLookup returns the work email of p's manager ("" when p has none).
// apps.Person carries no manager, so the server passes one in for Drive
// transfers.
type ManagerLookup func(ctx context.Context, p apps.Person) (string, error)

// Option configures the builder.
type Option func(*options)

type options struct{ manager ManagerLookup }

// WithManagerLookup sets how Suspend finds the manager who receives the
// leaver's Drive files.
func WithManagerLookup(f ManagerLookup) Option { return func(o *options) { o.manager = f } }

// Builder returns the apps.Builder for kind "google".
func Builder(opts ...Option) apps.Builder {
	return func(ctx context.Context, s apps.Spec) (apps.Connector, error) { return New(ctx, s, opts...) }
}

// Client is the Google Workspace connector.
type Client struct {
	app     string
	base    string
	set     Settings
	admin   *http.Client // carries the admin token
	plain   *http.Client // the transport under the tokens
	jwt     *jwtSource   // nil with a refresh token: no impersonation of the leaver
	manager ManagerLookup
}

type jwtSource struct {
	key []byte
	url string
}

func (j *jwtSource) client(ctx context.Context, hc *http.Client, subject string, scopes ...string) (*http.Client, error) {
	cfg, err := goauth.JWTConfigFromJSON(j.key, scopes...)
	if err != nil {
		return nil, fmt.Errorf("google: service account key: %w", err)
	}
	cfg.Subject = subject
	cfg.TokenURL = j.url
	// The token fetch uses this context's client, not the request's context.
	return oauth2.NewClient(context.WithValue(ctx, oauth2.HTTPClient, hc), cfg.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc))), nil
}

// New builds a connector from a stored Spec.
func New(ctx context.Context, s apps.Spec, opts ...Option) (*Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var set Settings
	if len(s.Settings) > 0 {
		if err := json.Unmarshal(s.Settings, &set); err != nil {
			return nil, fmt.Errorf("google: settings: %w", err)
		}
	}
	if err := set.defaults(); err != nil {
		return nil, err
	}
	if set.TransferDriveToManager && o.manager == nil {
		// Refused when the connector is saved, not discovered at the first offboarding.
		return nil, &apps.FieldError{Field: "settings.transfer_drive_to_manager", Reason: "this server has no way to find a person's manager yet"}
	}
	hc := s.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	c := &Client{app: s.App, base: strings.TrimRight(s.BaseURL, "/"), set: set, plain: hc, manager: o.manager}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	if c.app == "" {
		c.app = "google"
	}
	var kind struct {
		Type         string `json:"type"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(s.Secret, &kind); err != nil {
		return nil, errors.New("google: credential is not JSON (want a service account key or an authorized_user refresh token)")
	}
	switch kind.Type {
	case "service_account":
		if set.AdminSubject == "" {
			return nil, errors.New("google: settings.admin_subject is required with a service account (domain-wide delegation acts as an admin)")
		}
		c.jwt = &jwtSource{key: s.Secret, url: set.TokenURL}
		admin, err := c.jwt.client(ctx, hc, set.AdminSubject, AdminScopes...)
		if err != nil {
			return nil, err
		}
		c.admin = admin
	case "authorized_user":
		if kind.RefreshToken == "" {
			return nil, errors.New("google: authorized_user credential without refresh_token")
		}
		if set.AutoReply != "" {
			return nil, errors.New("google: settings.auto_reply needs a service account with domain-wide delegation (an admin's refresh token cannot write another mailbox's settings)")
		}
		cfg := &oauth2.Config{ClientID: kind.ClientID, ClientSecret: kind.ClientSecret,
			Endpoint: oauth2.Endpoint{TokenURL: set.TokenURL, AuthStyle: oauth2.AuthStyleInParams}, Scopes: AdminScopes}
		cctx := context.WithValue(ctx, oauth2.HTTPClient, hc)
		c.admin = oauth2.NewClient(cctx, cfg.TokenSource(cctx, &oauth2.Token{RefreshToken: kind.RefreshToken}))
	default:
		return nil, fmt.Errorf("google: credential type %q: want service_account or authorized_user", kind.Type)
	}
	c.admin.Timeout = hc.Timeout
	return c, nil
}

// Capabilities: everything but licenses (Workspace licenses follow the org unit).
func (c *Client) Capabilities() apps.Capabilities {
	return apps.Capabilities{Provision: true, Suspend: true, RevokeSessions: true, Reactivate: true,
		Remove: true, Groups: true, TransferData: c.set.TransferDriveToManager, List: true}
}

// User is the part of a Directory API user resource the connector reads.
type User struct {
	ID            string         `json:"id,omitempty"`
	PrimaryEmail  string         `json:"primaryEmail,omitempty"`
	Name          *UserName      `json:"name,omitempty"`
	Suspended     *bool          `json:"suspended,omitempty"`
	ExternalIDs   []ExternalID   `json:"externalIds,omitempty"`
	OrgUnitPath   string         `json:"orgUnitPath,omitempty"`
	Organizations []Organization `json:"organizations,omitempty"`
}

// UserName is a user's name.
type UserName struct {
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
	FullName   string `json:"fullName,omitempty"`
}

// ExternalID links an account to Lanyard: type "organization", value = the
// employee id. Chosen over a custom schema because it needs no schema set up
// in the tenant and users.list can search it (query externalId:…).
type ExternalID struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Organization carries title and department (HR-owned attributes).
type Organization struct {
	Title      string `json:"title,omitempty"`
	Department string `json:"department,omitempty"`
	Primary    bool   `json:"primary,omitempty"`
}

func (u User) externalID() string {
	for _, e := range u.ExternalIDs {
		if e.Type == "organization" {
			return e.Value
		}
	}
	return ""
}

func (u User) account() apps.Account {
	var active *bool
	if u.Suspended != nil {
		a := !*u.Suspended
		active = &a
	}
	return apps.Account{ID: u.ID, UserName: u.PrimaryEmail, Email: u.PrimaryEmail, ExternalID: u.externalID(), Active: active}
}

func (u User) suspended() bool { return u.Suspended != nil && *u.Suspended }

// Email is the primary email the naming rule gives p in domain.
func Email(naming, domain string, p apps.Person) string {
	first, last := slug(p.GivenName), slug(p.FamilyName)
	local := first + "." + last
	switch naming {
	case "flast":
		if first != "" {
			local = first[:1] + last
		} else {
			local = last
		}
	case "first":
		local = first
	}
	local = strings.Trim(local, ".")
	if local == "" {
		return ""
	}
	return local + "@" + domain
}

// slug folds a name to the letters and digits an email local part takes:
// "José María" → "josemaria", "O'Brien" → "obrien".
func slug(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(strings.ToLower(s)) {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// emailFor is the address p's account has, or gets: the naming rule when p has
// names, else the user name HR sent.
func (c *Client) emailFor(p apps.Person) string {
	if e := Email(c.set.Naming, c.set.Domain, p); e != "" {
		return e
	}
	return strings.ToLower(firstNonEmpty(p.UserName, p.Email))
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// randomPassword is the initial password: 24 random bytes, never logged or
// stored; the person sets their own at first sign-in.
func randomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("google: initial password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
