package google_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/google"
	"github.com/lanyardhq/lanyard/controlplane/apps/google/fakegoogle"
)

type env struct {
	fake *fakegoogle.Server
	c    apps.Connector
}

// setup starts a fake tenant and a connector pointed at it by configuration
// alone (BaseURL, token_url, gmail_base_url).
func setup(t *testing.T, settings map[string]any, opts ...google.Option) env {
	t.Helper()
	ctx := t.Context()
	fake, err := fakegoogle.Start(ctx, fakegoogle.Options{Domain: "acme.test", ClientID: "cid", ClientSecret: "csecret", RefreshToken: "1//refresh"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	for _, g := range []string{"staff@acme.test", "eng@acme.test", "sales@acme.test"} {
		fake.AddGroup(g)
	}
	c := build(t, fake, fake.ServiceAccountKey, settings, opts...)
	return env{fake: fake, c: c}
}

func build(t *testing.T, fake *fakegoogle.Server, secret []byte, settings map[string]any, opts ...google.Option) apps.Connector {
	t.Helper()
	set := map[string]any{"domain": "acme.test", "admin_subject": "admin@acme.test", "token_url": fake.URL + "/token", "gmail_base_url": fake.URL}
	for k, v := range settings {
		set[k] = v
	}
	raw, _ := json.Marshal(set)
	c, err := google.Builder(opts...)(t.Context(), apps.Spec{App: "google", Kind: "google", BaseURL: fake.URL, Settings: raw, Secret: secret,
		HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var ada = apps.Person{ExternalID: "E100", UserName: "ada@hr.example", GivenName: "Ada", FamilyName: "Lovelace-Byron", Title: "Engineer", Department: "R&D"}

func TestProvisionNamingRule(t *testing.T) {
	jose := apps.Person{ExternalID: "E7", GivenName: "José", FamilyName: "O'Neil"}
	for _, tc := range []struct{ naming, want string }{
		{"first.last", "jose.oneil@acme.test"},
		{"flast", "joneil@acme.test"},
		{"first", "jose@acme.test"},
	} {
		t.Run(tc.naming, func(t *testing.T) {
			e := setup(t, map[string]any{"naming": tc.naming, "org_unit": "/Staff"})
			res, err := e.c.Provision(t.Context(), jose, []string{"staff@acme.test", "eng@acme.test"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Action != "created" || len(res.Groups) != 2 {
				t.Fatalf("result %+v", res)
			}
			u, ok := e.fake.User(tc.want)
			if !ok {
				t.Fatalf("no user %s", tc.want)
			}
			if !u.HasPassword || !u.ChangePasswordAtNextLogin || u.OrgUnitPath != "/Staff" || u.GivenName != "José" {
				t.Fatalf("user %+v", u)
			}
			if len(u.ExternalIDs) != 1 || u.ExternalIDs[0]["type"] != "organization" || u.ExternalIDs[0]["value"] != "E7" {
				t.Fatalf("link %+v", u.ExternalIDs)
			}
			if got := e.fake.Members("eng@acme.test"); !slices.Equal(got, []string{tc.want}) {
				t.Fatalf("eng members %v", got)
			}
			// Idempotent: a second run changes nothing.
			res, err = e.c.Provision(t.Context(), jose, []string{"staff@acme.test", "eng@acme.test"})
			if err != nil || res.Action != "unchanged" || len(res.Groups) != 0 {
				t.Fatalf("second provision %+v %v", res, err)
			}
		})
	}
}

func TestProvisionAdoptAndLink(t *testing.T) {
	e := setup(t, nil)
	// Created by hand in Google before Lanyard: no link, stale names.
	e.fake.AddUser(fakegoogle.User{PrimaryEmail: "ada.lovelacebyron@acme.test", GivenName: "A", FamilyName: "L"})
	res, err := e.c.Provision(t.Context(), ada, []string{"staff@acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "linked" {
		t.Fatalf("action %q", res.Action)
	}
	u, _ := e.fake.User("ada.lovelacebyron@acme.test")
	if u.GivenName != "Ada" || u.FamilyName != "Lovelace-Byron" || u.ExternalIDs[0]["value"] != "E100" || u.Organizations[0]["title"] != "Engineer" {
		t.Fatalf("not linked/updated: %+v", u)
	}
	if u.HasPassword {
		t.Fatal("adoption must not reset the password")
	}
}

func TestProvisionRefusesAnotherPersonsAddress(t *testing.T) {
	e := setup(t, nil)
	e.fake.AddUser(fakegoogle.User{PrimaryEmail: "ada.lovelacebyron@acme.test", GivenName: "Ada", FamilyName: "Other",
		ExternalIDs: []map[string]string{{"type": "organization", "value": "E999"}}})
	_, err := e.c.Provision(t.Context(), ada, nil)
	if !errors.Is(err, apps.ErrRejected) || apps.IsTransient(err) || !strings.Contains(err.Error(), "E999") {
		t.Fatalf("want a permanent rejection naming the other person, got %v", err)
	}
}

func TestMissingGroupIsPermanent(t *testing.T) {
	e := setup(t, nil)
	_, err := e.c.Provision(t.Context(), ada, []string{"nope@acme.test"})
	var te *apps.TargetError
	if !errors.As(err, &te) || te.Kind != apps.ErrRejected || te.Status != 404 || !strings.Contains(te.Detail, "groupKey") {
		t.Fatalf("got %#v", err)
	}
}

func seedAda(t *testing.T, e env) string {
	t.Helper()
	if _, err := e.c.Provision(t.Context(), ada, []string{"staff@acme.test", "eng@acme.test"}); err != nil {
		t.Fatal(err)
	}
	u, _ := e.fake.User("ada.lovelacebyron@acme.test")
	return u.ID
}

func TestSuspendFull(t *testing.T) {
	mgr := func(_ context.Context, p apps.Person) (string, error) { return "grace@acme.test", nil }
	e := setup(t, map[string]any{"transfer_drive_to_manager": true, "auto_reply": "Ada has left; write to grace@acme.test."}, google.WithManagerLookup(mgr))
	grace := e.fake.AddUser(fakegoogle.User{PrimaryEmail: "grace@acme.test", GivenName: "Grace", FamilyName: "Hopper"})
	id := seedAda(t, e)

	res, err := e.c.Suspend(t.Context(), ada)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "suspended" || res.AccountID != id || len(res.Groups) != 2 {
		t.Fatalf("result %+v", res)
	}
	u, _ := e.fake.User(id)
	if !u.Suspended {
		t.Fatal("not suspended")
	}
	if e.fake.SignOuts(id) != 1 {
		t.Fatalf("sign-outs %d", e.fake.SignOuts(id))
	}
	if m := e.fake.Members("eng@acme.test"); len(m) != 0 {
		t.Fatalf("still in eng: %v", m)
	}
	tr := e.fake.Transfers()
	if len(tr) != 1 || tr[0].OldOwnerUserID != id || tr[0].NewOwnerUserID != grace {
		t.Fatalf("transfers %+v", tr)
	}
	params := fmt.Sprint(tr[0].ApplicationDataTransfers)
	if !strings.Contains(params, google.DriveApplicationID) || !strings.Contains(params, "PRIVACY_LEVEL") || !strings.Contains(params, "SHARED") {
		t.Fatalf("transfer params %s", params)
	}
	if v := e.fake.Vacation("ada.lovelacebyron@acme.test"); !v.EnableAutoReply || !strings.Contains(v.ResponseBodyPlainText, "grace") {
		t.Fatalf("vacation %+v", v)
	}

	// Already suspended: unchanged, signed out again (harmless), no second transfer.
	res, err = e.c.Suspend(t.Context(), ada)
	if err != nil || res.Action != "unchanged" {
		t.Fatalf("second suspend %+v %v", res, err)
	}
	if n := len(e.fake.Transfers()); n != 1 {
		t.Fatalf("transfers %d", n)
	}

	// Reactivation: suspended false sent explicitly, auto-reply off.
	res, err = e.c.Reactivate(t.Context(), ada)
	if err != nil || res.Action != "reactivated" {
		t.Fatalf("reactivate %+v %v", res, err)
	}
	if u, _ := e.fake.User(id); u.Suspended {
		t.Fatal("still suspended")
	}
	if e.fake.Vacation("ada.lovelacebyron@acme.test").EnableAutoReply {
		t.Fatal("auto-reply left on")
	}
	if res, _ := e.c.Reactivate(t.Context(), ada); res.Action != "unchanged" {
		t.Fatalf("second reactivate %+v", res)
	}
}

func TestSuspendKeepsGroupsWhenSet(t *testing.T) {
	e := setup(t, map[string]any{"groups_on_suspend": "keep"})
	seedAda(t, e)
	if _, err := e.c.Suspend(t.Context(), ada); err != nil {
		t.Fatal(err)
	}
	if m := e.fake.Members("eng@acme.test"); len(m) != 1 {
		t.Fatalf("eng %v", m)
	}
}

func TestRenamedInGoogleFoundByExternalID(t *testing.T) {
	e := setup(t, nil)
	id := seedAda(t, e)
	e.fake.Rename(id, "ada.king@acme.test")
	res, err := e.c.Suspend(t.Context(), ada)
	if err != nil || res.Action != "suspended" || res.AccountID != id {
		t.Fatalf("%+v %v", res, err)
	}
	acct, err := e.c.Find(t.Context(), ada)
	if err != nil || acct.UserName != "ada.king@acme.test" || acct.IsActive() {
		t.Fatalf("find %+v %v", acct, err)
	}
}

func TestAlreadyDeleted(t *testing.T) {
	e := setup(t, nil)
	seedAda(t, e)
	res, err := e.c.Remove(t.Context(), ada)
	if err != nil || res.Action != "deleted" {
		t.Fatalf("remove %+v %v", res, err)
	}
	for name, f := range map[string]func(context.Context, apps.Person) (apps.Result, error){
		"remove": e.c.Remove, "suspend": e.c.Suspend, "reactivate": e.c.Reactivate,
	} {
		if res, err := f(t.Context(), ada); err != nil || res.Action != "absent" {
			t.Fatalf("%s after delete: %+v %v", name, res, err)
		}
	}
	if _, err := e.c.Find(t.Context(), ada); !errors.Is(err, apps.ErrNotFound) {
		t.Fatalf("find: %v", err)
	}
}

func TestListPagesAndReportsOrphans(t *testing.T) {
	e := setup(t, nil)
	seedAda(t, e)
	for i := range 1200 { // three pages of 500
		e.fake.AddUser(fakegoogle.User{PrimaryEmail: fmt.Sprintf("u%04d@acme.test", i), GivenName: "U", FamilyName: "N", Suspended: i%2 == 0})
	}
	if _, err := e.c.Suspend(t.Context(), ada); err != nil {
		t.Fatal(err)
	}
	var n, linked, active int
	seen := map[string]bool{}
	err := e.c.List(t.Context(), func(a apps.Account) error {
		n++
		if seen[a.ID] {
			t.Fatalf("duplicate %s", a.ID)
		}
		seen[a.ID] = true
		if a.Active == nil {
			t.Fatalf("google always says suspended; %s has unknown activity", a.UserName)
		}
		if a.IsActive() {
			active++
		}
		if a.ExternalID != "" {
			linked++
			if a.ExternalID != "E100" || a.IsActive() {
				t.Fatalf("ada %+v", a)
			}
		}
		return nil
	})
	if err != nil || n != 1201 || linked != 1 || active != 600 {
		t.Fatalf("n=%d linked=%d active=%d err=%v", n, linked, active, err)
	}
	pages := 0
	for _, c := range e.fake.Calls() {
		if c == "GET /admin/directory/v1/users" {
			pages++
		}
	}
	if pages < 3 {
		t.Fatalf("list used %d pages", pages)
	}
	stop := errors.New("stop")
	if err := e.c.List(t.Context(), func(apps.Account) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("stop: %v", err)
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		knob       func(*fakegoogle.Server)
		kind       error
		transient  bool
		code       string
		retryAfter time.Duration
	}{
		{"429 with Retry-After", func(f *fakegoogle.Server) { f.Throttle(1, 429) }, apps.ErrUnavailable, true, "rateLimitExceeded", 7 * time.Second},
		{"403 userRateLimitExceeded is throttling, not auth", func(f *fakegoogle.Server) { f.Throttle(1, 403) }, apps.ErrUnavailable, true, "userRateLimitExceeded", 0},
		{"503", func(f *fakegoogle.Server) { f.FailNext(1) }, apps.ErrUnavailable, true, "backendError", 0},
		{"revoked credentials", func(f *fakegoogle.Server) { f.Revoke() }, apps.ErrAuth, false, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, nil)
			id := seedAda(t, e)
			tc.knob(e.fake)
			_, err := e.c.Suspend(t.Context(), ada)
			var te *apps.TargetError
			if !errors.As(err, &te) || !errors.Is(err, tc.kind) || apps.IsTransient(err) != tc.transient {
				t.Fatalf("got %v (%#v)", err, err)
			}
			if tc.code != "" && te.Code != tc.code {
				t.Fatalf("code %q", te.Code)
			}
			if te.RetryAfter != tc.retryAfter {
				t.Fatalf("retry-after %v", te.RetryAfter)
			}
			if tc.transient { // the retry finishes the job
				res, err := e.c.Suspend(t.Context(), ada)
				if err != nil || res.Action != "suspended" || e.fake.SignOuts(id) != 1 {
					t.Fatalf("retry %+v %v", res, err)
				}
			}
		})
	}
}

func TestRevokedAtTokenEndpoint(t *testing.T) {
	e := setup(t, nil)
	e.fake.Revoke() // before the first token: the grant itself is refused
	_, err := e.c.Find(t.Context(), ada)
	var te *apps.TargetError
	if !errors.As(err, &te) || te.Kind != apps.ErrAuth || te.Code != "invalid_grant" || !strings.Contains(te.Op, "token") {
		t.Fatalf("got %v", err)
	}
}

func TestWrongKeyAndMissingDelegation(t *testing.T) {
	e := setup(t, nil)
	other, err := fakegoogle.NewServiceAccountKey(e.fake.URL+"/token", "x@y.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	_, err = build(t, e.fake, other, nil).Find(t.Context(), ada)
	if !errors.Is(err, apps.ErrAuth) || !strings.Contains(err.Error(), "Signature") {
		t.Fatalf("wrong key: %v", err)
	}
	// A sub that is not an admin gets a token but the Directory API refuses it.
	_, err = build(t, e.fake, e.fake.ServiceAccountKey, map[string]any{"admin_subject": "bob@acme.test"}).Find(t.Context(), ada)
	if !errors.Is(err, apps.ErrAuth) || apps.IsTransient(err) {
		t.Fatalf("non-admin: %v", err)
	}
}

// users.signOut accepts only admin.directory.user.security, so the admin
// token asks for it and a delegation list without it is refused at the token
// endpoint (unauthorized_client), not discovered at the first suspension.
func TestSignOutScopeIsDelegated(t *testing.T) {
	e := setup(t, nil)
	id := seedAda(t, e)
	if _, err := e.c.Suspend(t.Context(), ada); err != nil || e.fake.SignOuts(id) != 1 {
		t.Fatalf("suspend with the security scope delegated: %v, sign-outs %d", err, e.fake.SignOuts(id))
	}

	fake, err := fakegoogle.Start(t.Context(), fakegoogle.Options{Domain: "acme.test", DelegatedScopes: []string{
		google.ScopeUser, google.ScopeGroup, google.ScopeDataTransfer, google.ScopeGmailSettings}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	_, err = build(t, fake, fake.ServiceAccountKey, nil).Find(t.Context(), ada)
	var te *apps.TargetError
	if !errors.Is(err, apps.ErrAuth) || !errors.As(err, &te) || te.Code != "unauthorized_client" {
		t.Fatalf("delegation without admin.directory.user.security: %v", err)
	}
}

func TestRefreshTokenCredential(t *testing.T) {
	e := setup(t, nil)
	secret := []byte(`{"type":"authorized_user","client_id":"cid","client_secret":"csecret","refresh_token":"1//refresh"}`)
	c := build(t, e.fake, secret, nil)
	res, err := c.Provision(t.Context(), ada, []string{"staff@acme.test"})
	if err != nil || res.Action != "created" {
		t.Fatalf("%+v %v", res, err)
	}
	bad := []byte(`{"type":"authorized_user","client_id":"cid","client_secret":"csecret","refresh_token":"1//stale"}`)
	if _, err := build(t, e.fake, bad, nil).Find(t.Context(), ada); !errors.Is(err, apps.ErrAuth) {
		t.Fatalf("stale refresh token: %v", err)
	}
}

func TestHangTimesOutAsTransient(t *testing.T) {
	e := setup(t, nil)
	seedAda(t, e)
	e.fake.Hang(true)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := e.c.Suspend(ctx, ada)
	if !apps.IsTransient(err) {
		t.Fatalf("hang: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	fake, err := fakegoogle.Start(t.Context(), fakegoogle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	for name, tc := range map[string]struct {
		settings string
		secret   string
	}{
		"no domain":             {`{}`, string(fake.ServiceAccountKey)},
		"bad naming":            {`{"domain":"a","admin_subject":"x@a","naming":"last"}`, string(fake.ServiceAccountKey)},
		"no admin subject":      {`{"domain":"a"}`, string(fake.ServiceAccountKey)},
		"not json":              {`{"domain":"a"}`, "token"},
		"auto-reply w/ refresh": {`{"domain":"a","auto_reply":"x"}`, `{"type":"authorized_user","refresh_token":"r"}`},
	} {
		if _, err := google.New(t.Context(), apps.Spec{Settings: json.RawMessage(tc.settings), Secret: []byte(tc.secret)}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
