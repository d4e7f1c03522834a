package apps_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

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

func TestSCIMGrantRevokeLifecycle(t *testing.T) {
	ctx := context.Background()
	s := startFake(t)
	s.AddGroup("engineering")
	s.AddGroup("oncall")
	c := apps.NewSCIMClient("github", s.URL, "tok")

	res, err := c.Grant(ctx, ada, []string{"engineering", "oncall"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "created" || res.AccountID == "" || len(res.Groups) != 2 {
		t.Fatalf("grant result = %+v", res)
	}
	u, ok := s.UserByName("ADA@example.com")
	if !ok || !u.Active || u.ExternalID != "emp-1" || u.Name.GivenName != "Ada" {
		t.Fatalf("user on target = %+v, %v", u, ok)
	}
	if m := s.GroupMembers("engineering"); len(m) != 1 || m[0] != u.ID {
		t.Fatalf("engineering members = %v", m)
	}

	// Idempotent: a second grant changes nothing.
	res, err = c.Grant(ctx, ada, []string{"engineering"})
	if err != nil || res.Action != "unchanged" {
		t.Fatalf("second grant = %+v, %v", res, err)
	}
	if m := s.GroupMembers("engineering"); len(m) != 1 {
		t.Fatalf("duplicate membership: %v", m)
	}

	// Deactivate keeps the account with active=false.
	res, err = c.Revoke(ctx, ada, apps.RevokeDeactivate)
	if err != nil || res.Action != "deactivated" {
		t.Fatalf("revoke = %+v, %v", res, err)
	}
	if u, _ := s.UserByName(ada.UserName); u.Active {
		t.Fatal("user still active after deactivate")
	}
	// Deactivating again is a no-op (no PATCH sent).
	patches := s.RequestsByMethod(http.MethodPatch)
	if _, err := c.Revoke(ctx, ada, apps.RevokeDeactivate); err != nil {
		t.Fatal(err)
	}
	if got := s.RequestsByMethod(http.MethodPatch); got != patches {
		t.Fatalf("second deactivate sent %d PATCHes", got-patches)
	}

	// Rehire: grant reactivates.
	res, err = c.Grant(ctx, ada, nil)
	if err != nil || res.Action != "reactivated" {
		t.Fatalf("regrant = %+v, %v", res, err)
	}
	if id, active, err := c.Lookup(ctx, ada); err != nil || !active || id == "" {
		t.Fatalf("lookup = %q %v %v", id, active, err)
	}

	// Delete removes the user and its memberships.
	res, err = c.Revoke(ctx, ada, apps.RevokeDelete)
	if err != nil || res.Action != "deleted" {
		t.Fatalf("delete = %+v, %v", res, err)
	}
	if _, ok := s.UserByName(ada.UserName); ok {
		t.Fatal("user still present after delete")
	}
	if m := s.GroupMembers("engineering"); len(m) != 0 {
		t.Fatalf("membership survived delete: %v", m)
	}
	res, err = c.Revoke(ctx, ada, apps.RevokeDelete)
	if err != nil || res.Action != "absent" {
		t.Fatalf("delete of missing = %+v, %v", res, err)
	}
}

func TestSCIMErrors(t *testing.T) {
	ctx := context.Background()
	s := startFake(t)
	c := apps.NewSCIMClient("linear", s.URL, "tok")

	// Unknown group is a permanent error naming the group.
	if _, err := c.Grant(ctx, ada, []string{"nope"}); !errors.Is(err, apps.ErrNotFound) {
		t.Fatalf("missing group err = %v", err)
	}
	// Bad token: 401, not retryable.
	bad := apps.NewSCIMClient("linear", s.URL, "wrong")
	_, err := bad.Grant(ctx, ada, nil)
	var se *apps.SCIMError
	if !errors.As(err, &se) || se.Status != 401 || errors.Is(err, apps.ErrUnavailable) {
		t.Fatalf("bad token err = %v", err)
	}
	// Down: 503 → ErrUnavailable; back up → works.
	s.SetDown(true)
	if _, err := c.Grant(ctx, ada, nil); !errors.Is(err, apps.ErrUnavailable) {
		t.Fatalf("down err = %v", err)
	}
	s.SetDown(false)
	if _, err := c.Grant(ctx, ada, nil); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// Closed listener: network error → ErrUnavailable.
	_ = s.Close()
	if _, err := c.Revoke(ctx, ada, apps.RevokeDeactivate); !errors.Is(err, apps.ErrUnavailable) {
		t.Fatalf("closed err = %v", err)
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
	if err != nil || got.Active {
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
