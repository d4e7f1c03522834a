package entra_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/entra"
	"github.com/lanyardhq/lanyard/controlplane/apps/entra/fakegraph"
)

const (
	tenant = "8f0c2a8e-5b7d-4f0e-9c1a-2d3e4f5a6b7c"
	client = "0a1b2c3d-1111-2222-3333-444455556666"
	secret = "s3cr3t~value"
	sku    = "c42b9cae-ea4f-4ab7-9717-81576235ccac" // an E3-style skuId
)

func start(t *testing.T, opts fakegraph.Options) *fakegraph.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts.TenantID, opts.ClientID, opts.ClientSecret = tenant, client, secret
	opts.SKUs = append(opts.SKUs, sku)
	fs, err := fakegraph.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func connector(t *testing.T, fs *fakegraph.Server, set map[string]any, sec string) *entra.Connector {
	t.Helper()
	base := map[string]any{"tenant_id": tenant, "client_id": client, "domain": "acme.example",
		"usage_location": "US", "license_sku_ids": []string{sku}, "authority_url": fs.URL}
	for k, v := range set {
		base[k] = v
	}
	raw, _ := json.Marshal(base)
	c, err := entra.New(apps.Spec{App: "m365", Kind: "entra", BaseURL: fs.URL, Settings: raw, Secret: []byte(sec)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var ada = apps.Person{ExternalID: "E1001", UserName: "ada@acme.example", GivenName: "Ada",
	FamilyName: "Lovelace", Title: "Engineer", Department: "R&D"}

func TestProvision(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(fs *fakegraph.Server) string // returns the pre-existing id, if any
		person  apps.Person
		groups  []string
		action  string
		wantErr error
	}{
		{name: "new account, licensed, in groups", person: ada, groups: []string{"Engineering", "All staff"}, action: "created"},
		{name: "user name without domain gets the tenant domain",
			person: apps.Person{ExternalID: "E1002", UserName: "grace", GivenName: "Grace", FamilyName: "Hopper"}, action: "created"},
		{name: "pre-existing account adopted by name and linked", person: ada, groups: []string{"Engineering"}, action: "linked",
			setup: func(fs *fakegraph.Server) string {
				return fs.AddUser(fakegraph.User{UserPrincipalName: "Ada@ACME.example", DisplayName: "ada",
					AccountEnabled: true, UsageLocation: "US", JobTitle: "Intern"})
			}},
		{name: "renamed in the app: still found by employeeId", person: ada, action: "unchanged",
			setup: func(fs *fakegraph.Server) string {
				return fs.AddUser(fakegraph.User{UserPrincipalName: "ada.king@acme.example", DisplayName: "Ada Lovelace",
					GivenName: "Ada", Surname: "Lovelace", JobTitle: "Engineer", Department: "R&D",
					EmployeeID: "E1001", AccountEnabled: true, UsageLocation: "US", Licenses: []string{sku}})
			}},
		{name: "create says the name exists although the filter missed it: adopted", person: ada, action: "linked",
			setup: func(fs *fakegraph.Server) string {
				id := fs.AddUser(fakegraph.User{UserPrincipalName: "ada@acme.example", DisplayName: "ada", AccountEnabled: true, UsageLocation: "US"})
				fs.Lag(id, true)
				return id
			}},
		{name: "a blocked account stays blocked and unlicensed", person: ada, action: "updated",
			setup: func(fs *fakegraph.Server) string {
				return fs.AddUser(fakegraph.User{UserPrincipalName: "ada@acme.example", EmployeeID: "E1001",
					DisplayName: "Ada Lovelace", AccountEnabled: false, UsageLocation: "US"})
			}},
		{name: "the name belongs to someone else's linked account: rejected, not adopted", person: ada, wantErr: apps.ErrRejected,
			setup: func(fs *fakegraph.Server) string {
				fs.AddUser(fakegraph.User{UserPrincipalName: "ada@acme.example", EmployeeID: "E0007", AccountEnabled: true})
				return ""
			}},
		{name: "a group missing in the tenant is rejected, not retried", person: ada, groups: []string{"Nope"}, wantErr: apps.ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := start(t, fakegraph.Options{})
			eng := fs.AddGroup("Engineering")
			fs.AddGroup("All staff")
			c := connector(t, fs, nil, secret)
			pre := ""
			if tt.setup != nil {
				pre = tt.setup(fs)
			}
			res, err := c.Provision(context.Background(), tt.person, tt.groups)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || apps.IsTransient(err) {
					t.Fatalf("err = %v, want %v and permanent", err, tt.wantErr)
				}
				var te *apps.TargetError
				if !errors.As(err, &te) || te.Detail == "" {
					t.Fatalf("err %v carries no provider detail", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Action != tt.action {
				t.Fatalf("action = %q, want %q", res.Action, tt.action)
			}
			if pre != "" && res.AccountID != pre {
				t.Fatalf("account %s, want the existing %s", res.AccountID, pre)
			}
			u, ok := fs.User(res.AccountID)
			if !ok {
				t.Fatal("no user on the tenant")
			}
			if u.EmployeeID != tt.person.ExternalID {
				t.Errorf("employeeId = %q, want %q (the link)", u.EmployeeID, tt.person.ExternalID)
			}
			if tt.person.Title != "" && u.JobTitle != tt.person.Title {
				t.Errorf("jobTitle = %q: HR attributes not brought up to date", u.JobTitle)
			}
			wantLicensed := tt.action != "updated" // the blocked case
			if got := len(u.Licenses) == 1 && u.Licenses[0] == sku; got != wantLicensed {
				t.Errorf("licenses = %v, want licensed=%v", u.Licenses, wantLicensed)
			}
			if tt.action == "created" {
				if !u.AccountEnabled || !u.PasswordSet || !u.ForceChange || u.UsageLocation != "US" || !strings.HasSuffix(u.UserPrincipalName, "@acme.example") {
					t.Errorf("created user = %+v", u)
				}
			}
			for _, g := range tt.groups {
				if g == "Engineering" && !contains(fs.Members(eng), u.ID) {
					t.Errorf("not in group %s", g)
				}
			}
			// Provisioning again (the index caught up) changes nothing and creates nobody.
			if pre != "" {
				fs.Lag(pre, false)
			}
			posts := fs.Requests("POST /v1.0/users")
			again, err := c.Provision(context.Background(), tt.person, tt.groups)
			if err != nil || again.Action != "unchanged" || fs.Requests("POST /v1.0/users") != posts {
				t.Errorf("second provision: %+v %v (POST /users %d→%d)", again, err, posts, fs.Requests("POST /v1.0/users"))
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestSuspendReactivateRemove(t *testing.T) {
	tests := []struct {
		name       string
		settings   map[string]any
		enabled    bool
		absent     bool
		action     string
		wantGroups int // memberships left after suspension
		wantLic    int
	}{
		{name: "active: blocked, signed out, groups removed, licenses kept", enabled: true, action: "suspended", wantLic: 1},
		{name: "groups kept when settings say keep", settings: map[string]any{"groups_on_suspend": "keep"}, enabled: true, action: "suspended", wantGroups: 2, wantLic: 1},
		{name: "licenses removed at once with 0s", settings: map[string]any{"remove_licenses_after": "0s"}, enabled: true, action: "suspended"},
		{name: "already blocked: sessions revoked again, groups still removed", enabled: false, action: "suspended", wantLic: 1},
		{name: "already blocked and bare: unchanged", settings: map[string]any{"groups_on_suspend": "keep"}, enabled: false, action: "unchanged", wantGroups: 2, wantLic: 1},
		{name: "already deleted: absent", absent: true, action: "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := start(t, fakegraph.Options{})
			c := connector(t, fs, tt.settings, secret)
			ctx := context.Background()
			var id string
			g1, g2 := fs.AddGroup("Engineering"), fs.AddGroup("All staff")
			if !tt.absent {
				id = fs.AddUser(fakegraph.User{UserPrincipalName: "ada@acme.example", EmployeeID: "E1001",
					AccountEnabled: tt.enabled, UsageLocation: "US", Licenses: []string{sku}})
				fs.AddToGroup(g1, id)
				fs.AddToGroup(g2, id)
			}
			res, err := c.Suspend(ctx, ada)
			if err != nil {
				t.Fatal(err)
			}
			if res.Action != tt.action {
				t.Fatalf("action = %q, want %q", res.Action, tt.action)
			}
			if tt.absent {
				if r, err := c.Remove(ctx, ada); err != nil || r.Action != "absent" {
					t.Fatalf("remove of absent: %+v %v", r, err)
				}
				if _, err := c.Reactivate(ctx, ada); !errors.Is(err, apps.ErrNotFound) {
					t.Fatalf("reactivate of absent: %v", err)
				}
				return
			}
			u, _ := fs.User(id)
			if u.AccountEnabled || u.SessionsRevoked != 1 {
				t.Fatalf("after suspend: accountEnabled=%v sessionsRevoked=%d", u.AccountEnabled, u.SessionsRevoked)
			}
			if n := len(fs.Members(g1)) + len(fs.Members(g2)); n != tt.wantGroups {
				t.Errorf("memberships left = %d, want %d", n, tt.wantGroups)
			}
			if len(u.Licenses) != tt.wantLic {
				t.Errorf("licenses = %v, want %d", u.Licenses, tt.wantLic)
			}
			acct, err := c.Find(ctx, ada)
			if err != nil || acct.Active == nil || *acct.Active {
				t.Fatalf("find after suspend: %+v %v", acct, err)
			}
			// Suspending again is idempotent.
			if r, err := c.Suspend(ctx, ada); err != nil || r.Action != "unchanged" && tt.action != "suspended" {
				t.Fatalf("second suspend: %+v %v", r, err)
			}
			r, err := c.Reactivate(ctx, ada)
			if err != nil || r.Action != "reactivated" {
				t.Fatalf("reactivate: %+v %v", r, err)
			}
			u, _ = fs.User(id)
			if !u.AccountEnabled || len(u.Licenses) != 1 {
				t.Fatalf("after reactivate: %+v", u)
			}
			if r, err := c.Reactivate(ctx, ada); err != nil || r.Action != "unchanged" {
				t.Fatalf("second reactivate: %+v %v", r, err)
			}
			if r, err := c.Remove(ctx, ada); err != nil || r.Action != "deleted" {
				t.Fatalf("remove: %+v %v", r, err)
			}
			if _, ok := fs.User(id); ok {
				t.Fatal("user still there after remove")
			}
			if r, err := c.Suspend(ctx, ada); err != nil || r.Action != "absent" {
				t.Fatalf("suspend after delete: %+v %v", r, err)
			}
		})
	}
}

func TestScheduledLicenseRemoval(t *testing.T) {
	fs := start(t, fakegraph.Options{})
	c := connector(t, fs, map[string]any{"remove_licenses_after": "720h"}, secret)
	ctx := context.Background()
	id := fs.AddUser(fakegraph.User{UserPrincipalName: "ada@acme.example", EmployeeID: "E1001",
		AccountEnabled: true, UsageLocation: "US", Licenses: []string{sku}})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	due, ok := c.LicenseRemovalAt(at)
	if !ok || !due.Equal(at.Add(720*time.Hour)) {
		t.Fatalf("LicenseRemovalAt = %v %v", due, ok)
	}
	// While the account is active the scheduled job leaves it alone.
	if r, err := c.RemoveLicenses(ctx, ada); err != nil || r.Action != "unchanged" {
		t.Fatalf("remove licenses on active: %+v %v", r, err)
	}
	if _, err := c.Suspend(ctx, ada); err != nil {
		t.Fatal(err)
	}
	if u, _ := fs.User(id); len(u.Licenses) != 1 {
		t.Fatal("licenses removed at suspension although scheduled for later")
	}
	if r, err := c.RemoveLicenses(ctx, ada); err != nil || r.Action != "licenses_removed" {
		t.Fatalf("remove licenses: %+v %v", r, err)
	}
	if u, _ := fs.User(id); len(u.Licenses) != 0 {
		t.Fatalf("licenses = %v after RemoveLicenses", u.Licenses)
	}
	if r, err := c.RemoveLicenses(ctx, ada); err != nil || r.Action != "unchanged" {
		t.Fatalf("second remove licenses: %+v %v", r, err)
	}
}

func TestListPaging(t *testing.T) {
	fs := start(t, fakegraph.Options{PageSize: 100})
	c := connector(t, fs, nil, secret)
	for i := range 250 {
		fs.AddUser(fakegraph.User{UserPrincipalName: fmt.Sprintf("u%03d@acme.example", i), EmployeeID: fmt.Sprint(i), AccountEnabled: i%2 == 0})
	}
	seen, active := map[string]bool{}, 0
	err := c.List(context.Background(), func(a apps.Account) error {
		if a.Active == nil {
			return fmt.Errorf("%s: accountEnabled unknown: List must $select it", a.UserName)
		}
		if *a.Active {
			active++
		}
		seen[a.ID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 250 || active != 125 {
		t.Fatalf("listed %d (%d active), want 250 (125)", len(seen), active)
	}
	if n := fs.Requests("GET /v1.0/users"); n != 3 {
		t.Fatalf("%d page requests, want 3", n)
	}
	stop := errors.New("stop")
	if err := c.List(context.Background(), func(apps.Account) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("List did not stop at fn's error: %v", err)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name      string
		knob      func(fs *fakegraph.Server)
		secret    string
		ctx       func() (context.Context, context.CancelFunc)
		transient bool
		kind      error
		code      string
		detail    string
		retry     time.Duration
	}{
		{name: "throttled with Retry-After", knob: func(fs *fakegraph.Server) { fs.Throttle(1, 7*time.Second) },
			transient: true, kind: apps.ErrUnavailable, code: "TooManyRequests", retry: 7 * time.Second},
		{name: "503", knob: func(fs *fakegraph.Server) { fs.FailNext(1, http.StatusServiceUnavailable) },
			transient: true, kind: apps.ErrUnavailable, code: "serviceNotAvailable"},
		{name: "wrong client secret", secret: "wrong", kind: apps.ErrAuth, code: "invalid_client", detail: "AADSTS7000215"},
		{name: "secret revoked after a token was issued", knob: func(fs *fakegraph.Server) { fs.RevokeCredentials() },
			kind: apps.ErrAuth, code: "invalid_client", detail: "AADSTS7000215"},
		{name: "secret expired", knob: func(fs *fakegraph.Server) { fs.ExpireSecret() },
			kind: apps.ErrAuth, code: "invalid_client", detail: "AADSTS7000222"},
		{name: "permission missing", knob: func(fs *fakegraph.Server) { fs.DenyWrites(true) },
			kind: apps.ErrAuth, code: "Authorization_RequestDenied", detail: "User.ReadWrite.All"},
		{name: "provider hangs past the deadline", knob: func(fs *fakegraph.Server) { fs.SetHang(true) },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			}, transient: true, kind: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := start(t, fakegraph.Options{})
			sec := secret
			if tt.secret != "" {
				sec = tt.secret
			}
			c := connector(t, fs, nil, sec)
			fs.AddUser(fakegraph.User{UserPrincipalName: "ada@acme.example", EmployeeID: "E1001", AccountEnabled: true})
			if tt.secret == "" { // warm the token cache so knobs hit a live session
				if _, err := c.Find(context.Background(), ada); err != nil {
					t.Fatal(err)
				}
			}
			if tt.knob != nil {
				tt.knob(fs)
			}
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			_, err := c.Suspend(ctx, ada)
			if err == nil {
				t.Fatal("suspend succeeded")
			}
			if apps.IsTransient(err) != tt.transient || !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v: transient=%v, want %v and %v", err, apps.IsTransient(err), tt.transient, tt.kind)
			}
			var te *apps.TargetError
			if !errors.As(err, &te) {
				t.Fatalf("err %T is not a TargetError", err)
			}
			if te.Code != tt.code || !strings.Contains(te.Detail, tt.detail) || te.RetryAfter != tt.retry {
				t.Fatalf("TargetError = %+v", te)
			}
			if strings.Contains(err.Error(), sec) {
				t.Fatal("the error shows the client secret")
			}
			if u, _ := fs.User("ada@acme.example"); tt.transient && !u.AccountEnabled {
				t.Fatal("a failed call changed the account")
			}
		})
	}
}

func TestExpiredTokenIsRenewed(t *testing.T) {
	fs := start(t, fakegraph.Options{})
	c := connector(t, fs, nil, secret)
	fs.AddUser(fakegraph.User{UserPrincipalName: "ada@acme.example", EmployeeID: "E1001", AccountEnabled: true})
	if _, err := c.Find(context.Background(), ada); err != nil {
		t.Fatal(err)
	}
	fs.ExpireTokens()
	res, err := c.Suspend(context.Background(), ada)
	if err != nil || res.Action != "suspended" {
		t.Fatalf("suspend with an expired token: %+v %v", res, err)
	}
	if n := fs.Requests("POST /" + tenant + "/oauth2/v2.0/token"); n != 2 {
		t.Fatalf("%d token requests, want 2 (one renewal)", n)
	}
}

func TestBuildRejectsBadSettings(t *testing.T) {
	for _, set := range []string{`{}`, `{"tenant_id":"t","client_id":"c","groups_on_suspend":"maybe"}`,
		`{"tenant_id":"t","client_id":"c","remove_licenses_after":"a month"}`, `not json`} {
		if _, err := entra.Build(context.Background(), apps.Spec{App: "m365", Settings: json.RawMessage(set), Secret: []byte("x")}); err == nil {
			t.Errorf("settings %s accepted", set)
		}
	}
}

// Lanyard's ids are UUIDs (36 characters) and Graph's employeeId holds 16: the link is a
// stable digest that fits, so the account is created and found again by it.
func TestLongLanyardIDsFitEmployeeID(t *testing.T) {
	fs := start(t, fakegraph.Options{})
	c := connector(t, fs, nil, secret)
	p := apps.Person{ExternalID: "01a23b8c-d353-77a1-ad9a-d6744ca3fca0", UserName: "long@acme.example", GivenName: "Lee", FamilyName: "Long"}
	if res, err := c.Provision(context.Background(), p, nil); err != nil || res.Action != "created" {
		t.Fatalf("provision: %+v %v", res, err)
	}
	// Renamed in the tenant: found by the link, not the name.
	p2 := p
	p2.UserName = "lee.long@acme.example"
	a, err := c.Find(context.Background(), p2)
	if err != nil || len(a.ExternalID) > 16 || !strings.HasPrefix(a.ExternalID, "lny-") {
		t.Fatalf("find by link: %+v %v", a, err)
	}
}
