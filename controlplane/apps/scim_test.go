package apps_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/fakescim"
)

func startFake(t *testing.T) *fakescim.Server {
	t.Helper()
	s, err := fakescim.Start("tok")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var ada = apps.Person{ExternalID: "emp-1", UserName: "ada@example.com", GivenName: "Ada", FamilyName: "Lovelace", Email: "ada@example.com", Title: "Engineer"}

func startFakeWith(t *testing.T, opts ...fakescim.Option) *fakescim.Server {
	t.Helper()
	s, err := fakescim.Start("tok", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSCIMConnectorLifecycle(t *testing.T) {
	ctx := context.Background()
	s := startFake(t)
	s.AddGroup("engineering")
	s.AddGroup("oncall")
	c := apps.NewSCIMClient("github", s.URL, "tok")

	res, err := c.Provision(ctx, ada, []string{"engineering", "oncall"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "created" || res.AccountID == "" || len(res.Groups) != 2 {
		t.Fatalf("provision result = %+v", res)
	}
	u, ok := s.UserByName("ADA@example.com")
	if !ok || !u.Active || u.ExternalID != "emp-1" || u.Name.GivenName != "Ada" {
		t.Fatalf("user on target = %+v, %v", u, ok)
	}
	if m := s.GroupMembers("engineering"); len(m) != 1 || m[0] != u.ID {
		t.Fatalf("engineering members = %v", m)
	}
	// Idempotent: a second provision changes nothing.
	res, err = c.Provision(ctx, ada, []string{"engineering"})
	if err != nil || res.Action != "unchanged" {
		t.Fatalf("second provision = %+v, %v", res, err)
	}
	if m := s.GroupMembers("engineering"); len(m) != 1 {
		t.Fatalf("duplicate membership: %v", m)
	}
	// Suspend keeps the account with active=false; again is unchanged, no PATCH.
	if res, err = c.Suspend(ctx, ada); err != nil || res.Action != "suspended" {
		t.Fatalf("suspend = %+v, %v", res, err)
	}
	if u, _ := s.UserByName(ada.UserName); u.Active {
		t.Fatal("user still active after suspend")
	}
	patches := s.RequestsByMethod(http.MethodPatch)
	if res, err = c.Suspend(ctx, ada); err != nil || res.Action != "unchanged" {
		t.Fatalf("second suspend = %+v, %v", res, err)
	}
	if got := s.RequestsByMethod(http.MethodPatch); got != patches {
		t.Fatalf("second suspend sent %d PATCHes", got-patches)
	}
	// Provision does not reactivate a suspended account: it says so.
	if res, err = c.Provision(ctx, ada, nil); err != nil || res.Action != "suspended" {
		t.Fatalf("provision of suspended = %+v, %v", res, err)
	}
	if res, err = c.Reactivate(ctx, ada); err != nil || res.Action != "reactivated" {
		t.Fatalf("reactivate = %+v, %v", res, err)
	}
	if a, err := c.Find(ctx, ada); err != nil || !a.IsActive() || a.ExternalID != "emp-1" {
		t.Fatalf("find = %+v, %v", a, err)
	}
	// Renamed in the app: found by externalId, and the HR name is not touched.
	s.RenameUser(u.ID, "ada.lovelace@example.com")
	if res, err = c.Suspend(ctx, ada); err != nil || res.Action != "suspended" || res.AccountID != u.ID {
		t.Fatalf("suspend of renamed = %+v, %v", res, err)
	}
	var listed []apps.Account
	if err := c.List(ctx, func(a apps.Account) error { listed = append(listed, a); return nil }); err != nil || len(listed) != 1 {
		t.Fatalf("list = %+v, %v", listed, err)
	}
	// Remove deletes the user and its memberships; again is absent.
	if res, err = c.Remove(ctx, ada); err != nil || res.Action != "deleted" {
		t.Fatalf("remove = %+v, %v", res, err)
	}
	if m := s.GroupMembers("engineering"); len(m) != 0 {
		t.Fatalf("membership survived delete: %v", m)
	}
	for name, op := range map[string]func(context.Context, apps.Person) (apps.Result, error){"remove": c.Remove, "suspend": c.Suspend, "reactivate": c.Reactivate} {
		if res, err = op(ctx, ada); err != nil || res.Action != "absent" {
			t.Fatalf("%s of missing = %+v, %v", name, res, err)
		}
	}
	if _, err := c.Find(ctx, ada); !errors.Is(err, apps.ErrNotFound) {
		t.Fatalf("find of missing = %v", err)
	}
}

func TestSCIMListPages(t *testing.T) {
	ctx := context.Background()
	s := startFake(t)
	for i := 0; i < 230; i++ {
		s.AddUser(fakescim.User{UserName: fmt.Sprintf("u%03d@example.com", i), Active: true})
	}
	c := apps.NewSCIMClient("app", s.URL, "tok")
	seen := map[string]bool{}
	if err := c.List(ctx, func(a apps.Account) error { seen[a.UserName] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 230 {
		t.Fatalf("listed %d of 230", len(seen))
	}
}

// TestSCIMTargetErrors: every failure is a *TargetError with the target's own
// status, scimType and detail, classified retry versus manual task.
func TestSCIMTargetErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		setup     func(s *fakescim.Server)
		token     string
		groups    []string
		timeout   time.Duration
		kind      error
		transient bool
		status    int
		code      string
		detail    string
		retry     time.Duration
	}{
		{name: "missing group", groups: []string{"nope"}, kind: apps.ErrRejected, code: "noTarget", detail: `group "nope" does not exist`},
		{name: "expired credentials", token: "expired", kind: apps.ErrAuth, status: 401, detail: "expired credentials"},
		{name: "throttled", setup: func(s *fakescim.Server) { s.FailNext(1, 429, "7", "", "slow down") },
			kind: apps.ErrUnavailable, transient: true, status: 429, detail: "slow down", retry: 7 * time.Second},
		{name: "server error", setup: func(s *fakescim.Server) { s.FailNext(1, 502, "", "", "bad gateway") },
			kind: apps.ErrUnavailable, transient: true, status: 502, detail: "bad gateway"},
		{name: "down", setup: func(s *fakescim.Server) { s.SetDown(true) }, kind: apps.ErrUnavailable, transient: true, status: 503},
		{name: "bad request", setup: func(s *fakescim.Server) { s.FailNextOn("POST", 1, 400, "", "invalidValue", "title too long") },
			kind: apps.ErrRejected, status: 400, code: "invalidValue", detail: "title too long"},
		{name: "uniqueness with no match", setup: func(s *fakescim.Server) {
			s.FailNextOn("POST", 1, 409, "", "uniqueness", "emails[0].value is taken")
		}, kind: apps.ErrRejected, status: 409, code: "uniqueness", detail: "emails[0].value is taken"},
		{name: "timeout", setup: func(s *fakescim.Server) { s.SetDelay(2 * time.Second) }, timeout: 100 * time.Millisecond,
			kind: apps.ErrUnavailable, transient: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startFake(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			tok := "tok"
			if tc.token != "" {
				tok = tc.token
			}
			var opts []apps.SCIMOption
			if tc.timeout > 0 {
				opts = append(opts, apps.WithHTTPClient(&http.Client{Timeout: tc.timeout}))
			}
			c := apps.NewSCIMClient("linear", s.URL, tok, opts...)
			_, err := c.Provision(ctx, ada, tc.groups)
			var te *apps.TargetError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v (%T), want *TargetError", err, err)
			}
			if !errors.Is(err, tc.kind) || apps.IsTransient(err) != tc.transient {
				t.Fatalf("err = %v: kind or transient wrong (transient=%v)", err, apps.IsTransient(err))
			}
			if errors.Is(err, apps.ErrNotFound) {
				t.Fatalf("err = %v reads as not found", err)
			}
			if te.App != "linear" || (tc.status != 0 && te.Status != tc.status) || te.Code != tc.code || !strings.Contains(te.Detail, tc.detail) || te.RetryAfter != tc.retry {
				t.Fatalf("target error = %+v", te)
			}
		})
	}
	// Closed listener: network error → transient.
	s := startFake(t)
	c := apps.NewSCIMClient("linear", s.URL, "tok")
	_ = s.Close()
	if _, err := c.Suspend(ctx, ada); !apps.IsTransient(err) {
		t.Fatalf("closed err = %v", err)
	}
}

// TestSCIMCaseSensitiveFilterAdopts is the SCIMMY failure: the server's userName
// filter is case-sensitive, so the lookup misses Rob.Easley23@ACME… and the create
// answers 409 uniqueness. The connector finds the account another way, adopts it,
// links it (externalId) and brings its name up to date.
func TestSCIMCaseSensitiveFilterAdopts(t *testing.T) {
	ctx := context.Background()
	s := startFakeWith(t, fakescim.CaseSensitiveUserNameFilter())
	s.AddGroup("staff")
	id := s.AddUser(fakescim.User{UserName: "Rob.Easley23@ACME.test", Name: fakescim.Name{GivenName: "Robert", FamilyName: "Easly"}, Active: true})
	rob := apps.Person{ExternalID: "emp-rob", UserName: "rob.easley23@acme.test", Email: "rob.easley23@acme.test", GivenName: "Rob", FamilyName: "Easley", Title: "Sales"}
	c := apps.NewSCIMClient("crm", s.URL, "tok")
	res, err := c.Provision(ctx, rob, []string{"staff"})
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	if res.Action != "linked" || res.AccountID != id {
		t.Fatalf("result = %+v, want linked %s", res, id)
	}
	users := s.Users()
	if len(users) != 1 || users[0].ExternalID != "emp-rob" || users[0].Name.GivenName != "Rob" || users[0].Name.FamilyName != "Easley" || users[0].Title != "Sales" {
		t.Fatalf("users on target = %+v", users)
	}
	// Linked: the next lookup goes by externalId and finds it at once.
	if res, err := c.Provision(ctx, rob, []string{"staff"}); err != nil || res.Action != "unchanged" {
		t.Fatalf("second provision = %+v, %v", res, err)
	}
	if a, err := c.Find(ctx, rob); err != nil || a.ID != id {
		t.Fatalf("find = %+v, %v", a, err)
	}
}

// TestSCIMWithoutActive: a resource without "active" is unknown, not inactive.
// Provision must not "reactivate" it, and Suspend must still send the PATCH.
func TestSCIMWithoutActive(t *testing.T) {
	ctx := context.Background()
	s := startFakeWith(t, fakescim.WithoutActive())
	s.AddUser(fakescim.User{UserName: ada.UserName, ExternalID: ada.ExternalID, Name: fakescim.Name{GivenName: "Ada", FamilyName: "Lovelace"}, Title: "Engineer", Active: true})
	c := apps.NewSCIMClient("wiki", s.URL, "tok")
	a, err := c.Find(ctx, ada)
	if err != nil || a.Active != nil {
		t.Fatalf("find = %+v, %v: want active unknown", a, err)
	}
	patches := s.RequestsByMethod(http.MethodPatch)
	if res, err := c.Provision(ctx, ada, nil); err != nil || res.Action != "unchanged" {
		t.Fatalf("provision = %+v, %v", res, err)
	}
	if got := s.RequestsByMethod(http.MethodPatch); got != patches {
		t.Fatalf("provision of an account of unknown activity sent %d PATCHes", got-patches)
	}
	if res, err := c.Suspend(ctx, ada); err != nil || res.Action != "suspended" {
		t.Fatalf("suspend = %+v, %v", res, err)
	}
	if u, _ := s.UserByName(ada.UserName); u.Active {
		t.Fatal("suspend of an account of unknown activity left it active")
	}
}

// TestSCIMPatchNoContent: a PATCH answered 204 leaves nothing to decode; the
// connector refetches rather than returning an empty account.
func TestSCIMPatchNoContent(t *testing.T) {
	ctx := context.Background()
	s := startFakeWith(t, fakescim.PatchNoContent())
	id := s.AddUser(fakescim.User{UserName: ada.UserName, Active: true})
	c := apps.NewSCIMClient("wiki", s.URL, "tok")
	res, err := c.Provision(ctx, ada, nil)
	if err != nil || res.AccountID != id || res.Action != "linked" {
		t.Fatalf("provision = %+v, %v", res, err)
	}
	u, err := c.SetActive(ctx, id, "", false)
	if err != nil || u.ID != id || u.Active == nil || *u.Active {
		t.Fatalf("SetActive after 204 = %+v, %v", u, err)
	}
}

func TestSCIMAuthKinds(t *testing.T) {
	ctx := context.Background()
	t.Run("basic", func(t *testing.T) {
		s := startFakeWith(t, fakescim.BasicAuth("lanyard", "pw"))
		if _, err := apps.NewSCIMClient("a", s.URL, "", apps.WithBasicAuth("lanyard", "pw")).Provision(ctx, ada, nil); err != nil {
			t.Fatal(err)
		}
		_, err := apps.NewSCIMClient("a", s.URL, "", apps.WithBasicAuth("lanyard", "nope")).Suspend(ctx, ada)
		if !errors.Is(err, apps.ErrAuth) || apps.IsTransient(err) {
			t.Fatalf("bad password err = %v", err)
		}
	})
	t.Run("oauth", func(t *testing.T) {
		s := startFakeWith(t, fakescim.OAuthClient("cid", "csecret"))
		c := apps.NewSCIMClient("a", s.URL, "", apps.WithOAuth2(s.TokenURL(), "cid", "csecret", "scim"))
		if _, err := c.Provision(ctx, ada, nil); err != nil {
			t.Fatal(err)
		}
		if res, err := c.Suspend(ctx, ada); err != nil || res.Action != "suspended" {
			t.Fatalf("suspend = %+v, %v", res, err)
		}
		// A revoked access token: the target says 401, a person must look.
		s.RevokeTokens()
		if _, err := c.Reactivate(ctx, ada); !errors.Is(err, apps.ErrAuth) {
			t.Fatalf("revoked token err = %v", err)
		}
		// A wrong client secret fails at the token endpoint with its own words.
		_, err := apps.NewSCIMClient("a", s.URL, "", apps.WithOAuth2(s.TokenURL(), "cid", "wrong")).Find(ctx, ada)
		var te *apps.TargetError
		if !errors.As(err, &te) || !errors.Is(err, apps.ErrAuth) || te.Code != "invalid_client" {
			t.Fatalf("bad secret err = %v", err)
		}
		if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), "csecret") {
			t.Fatalf("secret in error: %v", err)
		}
	})
}

func TestBuildSCIM(t *testing.T) {
	cases := []struct {
		name  string
		spec  apps.Spec
		field string
	}{
		{"bearer", apps.Spec{App: "a", BaseURL: "https://x.test/scim/v2", Secret: []byte("t")}, ""},
		{"no base url", apps.Spec{App: "a"}, "base_url"},
		{"basic without user", apps.Spec{App: "a", BaseURL: "https://x.test", Auth: "basic"}, "settings.username"},
		{"basic", apps.Spec{App: "a", BaseURL: "https://x.test", Auth: "basic", Settings: []byte(`{"username":"u"}`)}, ""},
		{"oauth without token url", apps.Spec{App: "a", BaseURL: "https://x.test", Auth: "oauth", Settings: []byte(`{"client_id":"c"}`), Secret: []byte("s")}, "settings.token_url"},
		{"oauth", apps.Spec{App: "a", BaseURL: "https://x.test", Auth: "oauth", Settings: []byte(`{"client_id":"c","token_url":"https://x.test/token"}`), Secret: []byte("s")}, ""},
		{"unknown setting", apps.Spec{App: "a", BaseURL: "https://x.test", Settings: []byte(`{"tenant":"t"}`)}, "settings"},
		{"unknown auth", apps.Spec{App: "a", BaseURL: "https://x.test", Auth: "saml"}, "auth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := apps.BuildSCIM(context.Background(), tc.spec)
			var fe *apps.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("err = %v, want field %s", err, tc.field)
			}
		})
	}
}

// TestSCIMETagConflict changes the user behind the client's back so the
// PATCH with a stale If-Match gets 412; the client refetches and succeeds.
func TestSCIMETagConflict(t *testing.T) {
	ctx := context.Background()
	s := startFake(t)
	c := apps.NewSCIMClient("github", s.URL, "tok")
	u, err := c.CreateUser(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if u.ETag == "" {
		t.Fatal("no ETag on create")
	}
	stale := u.ETag
	// Another writer bumps the version.
	if _, err := c.SetActive(ctx, u.ID, "", true); err != nil {
		t.Fatal(err)
	}
	// Raw PATCH with the stale ETag is refused with 412.
	req, _ := http.NewRequest(http.MethodPatch, s.URL+"/Users/"+u.ID, bytes.NewReader([]byte(
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("If-Match", stale)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match status = %d", resp.StatusCode)
	}
	// The client retries with a fresh ETag.
	got, err := c.SetActive(ctx, u.ID, stale, false)
	if err != nil || got.Active == nil || *got.Active {
		t.Fatalf("SetActive with stale etag = %+v, %v", got, err)
	}
	if got.ETag == stale {
		t.Fatal("ETag did not change")
	}
	// Delete with stale ETag also recovers.
	if err := c.DeleteUser(ctx, u.ID, stale); err != nil {
		t.Fatal(err)
	}
}

// TestFakeSCIMProtocol checks the fake against RFC 7644 directly, so the
// client tests above are not merely testing the fake against itself.
func TestFakeSCIMProtocol(t *testing.T) {
	s := startFake(t)
	do := func(method, path, body string, hdr ...string) (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/scim+json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m, resp.Header
	}
	cases := []struct {
		name, method, path, body string
		want                     int
		scimType                 string
	}{
		{"create", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@x.io"}`, 201, ""},
		{"duplicate userName case-insensitive", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"BOB@x.io"}`, 409, "uniqueness"},
		{"missing schema", "POST", "/Users", `{"userName":"c@x.io"}`, 400, "invalidValue"},
		{"bad filter op", "GET", "/Users?filter=userName+co+%22bob%22", "", 400, "invalidFilter"},
		{"unknown id", "GET", "/Users/nope", "", 404, ""},
		{"create group", "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"eng"}`, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, m, _ := do(tc.method, tc.path, tc.body)
			if code != tc.want {
				t.Fatalf("status = %d, want %d (%v)", code, tc.want, m)
			}
			if tc.want >= 400 {
				if st, _ := m["status"].(string); st == "" {
					t.Fatalf("error without status string: %v", m)
				}
				if tc.scimType != "" && m["scimType"] != tc.scimType {
					t.Fatalf("scimType = %v, want %s", m["scimType"], tc.scimType)
				}
			}
		})
	}
	code, list, _ := do("GET", `/Users?filter=userName%20eq%20%22Bob@X.io%22`, "")
	if code != 200 || list["totalResults"].(float64) != 1 {
		t.Fatalf("filter = %d %v", code, list)
	}
	res := list["Resources"].([]any)[0].(map[string]any)
	id := res["id"].(string)
	meta := res["meta"].(map[string]any)
	if meta["resourceType"] != "User" || meta["version"] == "" {
		t.Fatalf("meta = %v", meta)
	}
	_, _, h := do("GET", "/Users/"+id, "")
	etag := h.Get("ETag")
	if etag == "" {
		t.Fatal("GET without ETag")
	}
	code, _, _ = do("GET", "/Users/"+id, "", "If-None-Match", etag)
	if code != http.StatusNotModified {
		t.Fatalf("If-None-Match = %d", code)
	}
	// PATCH with no path, Azure-style string boolean.
	code, m, _ := do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","value":{"active":"False","title":"Ex"}}]}`, "If-Match", etag)
	if code != 200 || m["active"] != false || m["title"] != "Ex" {
		t.Fatalf("patch = %d %v", code, m)
	}
	// Group membership add, then filtered remove.
	_, gl, _ := do("GET", `/Groups?filter=displayName%20eq%20%22eng%22`, "")
	gid := gl["Resources"].([]any)[0].(map[string]any)["id"].(string)
	code, g, _ := do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+id+`"}]}]}`)
	if code != 200 || len(g["members"].([]any)) != 1 {
		t.Fatalf("add member = %d %v", code, g)
	}
	code, _, _ = do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"ghost"}]}]}`)
	if code != 400 {
		t.Fatalf("add unknown member = %d", code)
	}
	code, g, _ = do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"`+id+`\"]"}]}`)
	if code != 200 || len(g["members"].([]any)) != 0 {
		t.Fatalf("remove member = %d %v", code, g)
	}
	// Paging.
	for _, n := range []string{"p1", "p2", "p3"} {
		do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"`+n+`"}`)
	}
	_, pg, _ := do("GET", "/Users?startIndex=2&count=2", "")
	if pg["totalResults"].(float64) != 4 || pg["itemsPerPage"].(float64) != 2 || pg["startIndex"].(float64) != 2 {
		t.Fatalf("paging = %v", pg)
	}
	// SP config advertises etag and patch.
	_, cfg, _ := do("GET", "/ServiceProviderConfig", "")
	if cfg["etag"].(map[string]any)["supported"] != true || cfg["patch"].(map[string]any)["supported"] != true {
		t.Fatalf("sp config = %v", cfg)
	}
}
