package fakeslackscim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/apps/slackscim/fakeslackscim"
)

const token = "xoxp-fake"

func start(t *testing.T, maxCount int) *fakeslackscim.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fs, err := fakeslackscim.Start(ctx, fakeslackscim.Options{Token: token, MaxCount: maxCount})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func call(t *testing.T, fs *fakeslackscim.Server, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, fs.BaseURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// Slack serves 10 results when no count is sent and treats a count above its
// cap (1000) as the cap, rather than refusing it (api.slack.com changelog
// 2019-06-have-scim-will-paginate).
func TestPageSize(t *testing.T) {
	fs := start(t, 20)
	for i := range 25 {
		fs.AddUser(fakeslackscim.User{UserName: fmt.Sprintf("u%02d", i), Email: fmt.Sprintf("u%02d@acme.example", i), Active: true})
	}
	for _, tc := range []struct {
		query            string
		items, startWant int
	}{
		{"", 10, 1},
		{"?count=5000", 20, 1},
		{"?count=0", 10, 1},
		{"?startIndex=21&count=10", 5, 21},
	} {
		var lr struct {
			TotalResults, ItemsPerPage, StartIndex int
			Resources                              []json.RawMessage
		}
		if st := call(t, fs, http.MethodGet, "/Users"+tc.query, "", &lr); st != http.StatusOK {
			t.Fatalf("%q: status %d", tc.query, st)
		}
		if lr.TotalResults != 25 || lr.ItemsPerPage != tc.items || len(lr.Resources) != tc.items || lr.StartIndex != tc.startWant {
			t.Fatalf("%q: %+v (%d resources), want %d items from %d", tc.query, lr, len(lr.Resources), tc.items, tc.startWant)
		}
	}
}

// Group members are removed in either form: the RFC 7644 value filter in the
// path, or path "members" with the members as the value (Slack's Java SDK).
func TestGroupRemoveForms(t *testing.T) {
	fs := start(t, 0)
	gid := fs.AddGroup("eng")
	a := fs.AddUser(fakeslackscim.User{UserName: "a", Email: "a@acme.example", Active: true})
	b := fs.AddUser(fakeslackscim.User{UserName: "b", Email: "b@acme.example", Active: true})
	fs.AddToGroup(gid, a)
	fs.AddToGroup(gid, b)
	for _, op := range []string{
		`{"op":"remove","path":"members[value eq \"` + a + `\"]"}`,
		`{"op":"remove","path":"members","value":[{"value":"` + b + `"}]}`,
	} {
		body := `{"schemas":["` + fakeslackscim.SchemaPatchOp + `"],"Operations":[` + op + `]}`
		if st := call(t, fs, http.MethodPatch, "/Groups/"+gid, body, nil); st != http.StatusNoContent {
			t.Fatalf("%s: status %d", op, st)
		}
	}
	if m := fs.Members(gid); len(m) != 0 {
		t.Fatalf("members left: %v", m)
	}
}
