package github_test

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
	"github.com/lanyardhq/lanyard/controlplane/apps/github"
	"github.com/lanyardhq/lanyard/controlplane/apps/github/fakegithub"
)

const token = "github_pat_test"

func setup(t *testing.T, perPage int) (*fakegithub.Server, *github.Connector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fs, err := fakegithub.Start(ctx, fakegithub.Options{Org: "acme", Token: token, PerPageMax: perPage})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"org": "acme", "logins": map[string]string{"ada@acme.example": "ada-l"}})
	c, err := github.New(apps.Spec{App: "github", Kind: "github", BaseURL: fs.URL, Settings: raw, Secret: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	return fs, c
}

var (
	ada   = apps.Person{ExternalID: "E1", UserName: "ada@acme.example", Email: "ada@acme.example"}
	grace = apps.Person{ExternalID: "E2", UserName: "grace@acme.example", Email: "grace@acme.example"}
)

func TestProvision(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(fs *fakegithub.Server)
		person  apps.Person
		teams   []string
		action  string
		wantErr error
	}{
		{name: "known login: membership and teams", person: ada, teams: []string{"eng"}, action: "created",
			setup: func(fs *fakegithub.Server) { fs.AddUser("ada-l") }},
		{name: "already a member: unchanged, teams added", person: ada, teams: []string{"eng"}, action: "unchanged",
			setup: func(fs *fakegithub.Server) { fs.AddMember("ada-l", "member") }},
		{name: "unknown login: invited by email with team ids", person: grace, teams: []string{"eng"}, action: "invited"},
		{name: "missing team is rejected", person: grace, teams: []string{"nope"}, wantErr: apps.ErrRejected},
		{name: "missing team for a known login is rejected", person: ada, teams: []string{"nope"}, wantErr: apps.ErrRejected,
			setup: func(fs *fakegithub.Server) { fs.AddMember("ada-l", "member") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, c := setup(t, 0)
			eng := fs.AddTeam("eng")
			if tt.setup != nil {
				tt.setup(fs)
			}
			res, err := c.Provision(context.Background(), tt.person, tt.teams)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || apps.IsTransient(err) {
					t.Fatalf("err = %v, want permanent %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || res.Action != tt.action {
				t.Fatalf("provision: %+v %v, want %s", res, err, tt.action)
			}
			if tt.action == "invited" {
				inv := fs.Invitations()
				if len(inv) != 1 || inv[0].Email != tt.person.Email || inv[0].Role != "direct_member" || len(inv[0].TeamIDs) != 1 || inv[0].TeamIDs[0] != eng {
					t.Fatalf("invitations = %+v", inv)
				}
			} else {
				if _, ok := fs.Member("ada-l"); !ok {
					t.Fatal("not a member")
				}
				if got := fs.TeamMembers("eng"); len(got) != 1 || got[0] != "ada-l" {
					t.Fatalf("team eng = %v", got)
				}
			}
			again, err := c.Provision(context.Background(), tt.person, tt.teams)
			if err != nil || again.Action != "unchanged" || len(fs.Invitations()) > 1 {
				t.Fatalf("second provision: %+v %v (%d invitations)", again, err, len(fs.Invitations()))
			}
		})
	}
}

func TestSuspend(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(fs *fakegithub.Server, c *github.Connector)
		person apps.Person
		action string
	}{
		{name: "member removed from org and teams", person: ada, action: "deleted", setup: func(fs *fakegithub.Server, _ *github.Connector) {
			fs.AddMember("ada-l", "member")
			fs.AddToTeam("eng", "ada-l")
		}},
		{name: "pending invitation cancelled", person: grace, action: "deleted", setup: func(fs *fakegithub.Server, c *github.Connector) {
			if _, err := c.Provision(context.Background(), grace, nil); err != nil {
				panic(err)
			}
		}},
		{name: "already removed: absent", person: ada, action: "absent", setup: func(fs *fakegithub.Server, _ *github.Connector) { fs.AddUser("ada-l") }},
		{name: "never there: absent", person: grace, action: "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, c := setup(t, 0)
			fs.AddTeam("eng")
			if tt.setup != nil {
				tt.setup(fs, c)
			}
			res, err := c.Suspend(context.Background(), tt.person)
			if err != nil || res.Action != tt.action {
				t.Fatalf("suspend: %+v %v, want %s", res, err, tt.action)
			}
			if _, ok := fs.Member("ada-l"); ok || len(fs.Invitations()) != 0 || len(fs.TeamMembers("eng")) != 0 {
				t.Fatal("access left after suspend")
			}
			if _, err := c.Find(context.Background(), tt.person); !errors.Is(err, apps.ErrNotFound) {
				t.Fatalf("find after suspend: %v", err)
			}
			if r, err := c.Suspend(context.Background(), tt.person); err != nil || r.Action != "absent" {
				t.Fatalf("second suspend: %+v %v", r, err)
			}
		})
	}
	_, c := setup(t, 0)
	if c.Capabilities().Reactivate || c.Capabilities().RevokeSessions {
		t.Fatal("GitHub claims to reactivate or revoke sessions")
	}
	if _, err := c.Reactivate(context.Background(), ada); !errors.Is(err, apps.ErrNotSupported) {
		t.Fatalf("reactivate: %v", err)
	}
}

func TestFindPendingAndActive(t *testing.T) {
	fs, c := setup(t, 0)
	fs.AddUser("ada-l")
	if _, err := c.Provision(context.Background(), ada, nil); err != nil {
		t.Fatal(err)
	}
	a, err := c.Find(context.Background(), ada)
	if err != nil || a.Active == nil || *a.Active {
		t.Fatalf("pending member: %+v %v, want known inactive", a, err)
	}
	fs.Accept("ada-l")
	if a, err := c.Find(context.Background(), ada); err != nil || !a.IsActive() || a.ID != "ada-l" {
		t.Fatalf("accepted member: %+v %v", a, err)
	}
}

func TestListPaging(t *testing.T) {
	fs, c := setup(t, 10)
	for i := range 24 {
		fs.AddMember(fmt.Sprintf("user%02d", i), "member")
	}
	fs.AddMember("ada-l", "member")
	n := 0
	if err := c.List(context.Background(), func(a apps.Account) error {
		if !a.IsActive() {
			return fmt.Errorf("%s not active", a.ID)
		}
		// A mapped login lists with its work email: reconciliation matches it to the person.
		if want := map[string]string{"ada-l": "ada@acme.example"}[a.ID]; a.Email != want {
			return fmt.Errorf("%s listed with email %q, want %q", a.ID, a.Email, want)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 25 || fs.Requests("GET /orgs/acme/members") != 3 {
		t.Fatalf("listed %d in %d requests", n, fs.Requests("GET /orgs/acme/members"))
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name      string
		knob      func(fs *fakegithub.Server)
		transient bool
		kind      error
		code      string
		detail    string
		minRetry  time.Duration
	}{
		{name: "primary rate limit: 403 with x-ratelimit-remaining 0", knob: func(fs *fakegithub.Server) { fs.ExhaustRateLimit(30 * time.Second) },
			transient: true, kind: apps.ErrUnavailable, code: "rate_limited", detail: "API rate limit exceeded", minRetry: time.Second},
		{name: "secondary rate limit: 429 with retry-after", knob: func(fs *fakegithub.Server) { fs.Throttle(1, 60*time.Second) },
			transient: true, kind: apps.ErrUnavailable, code: "secondary_rate_limit", detail: "secondary rate limit", minRetry: 60 * time.Second},
		{name: "secondary rate limit: 403 with only the message", knob: func(fs *fakegithub.Server) { fs.SecondaryLimit(1, http.StatusForbidden) },
			transient: true, kind: apps.ErrUnavailable, code: "secondary_rate_limit", detail: "secondary rate limit", minRetry: time.Minute},
		{name: "secondary rate limit: 429 with only the message", knob: func(fs *fakegithub.Server) { fs.SecondaryLimit(1, http.StatusTooManyRequests) },
			transient: true, kind: apps.ErrUnavailable, code: "secondary_rate_limit", detail: "secondary rate limit", minRetry: time.Minute},
		{name: "502", knob: func(fs *fakegithub.Server) { fs.FailNext(1, http.StatusBadGateway) }, transient: true, kind: apps.ErrUnavailable},
		{name: "revoked token", knob: func(fs *fakegithub.Server) { fs.RevokeToken() }, kind: apps.ErrAuth, detail: "Bad credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, c := setup(t, 0)
			fs.AddMember("ada-l", "member")
			tt.knob(fs)
			_, err := c.Suspend(context.Background(), ada)
			var te *apps.TargetError
			if !errors.As(err, &te) || apps.IsTransient(err) != tt.transient || !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v (transient %v)", err, apps.IsTransient(err))
			}
			if te.Code != tt.code || !strings.Contains(te.Detail, tt.detail) || te.RetryAfter < tt.minRetry {
				t.Fatalf("TargetError = %+v", te)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatal("token in error")
			}
			if _, ok := fs.Member("ada-l"); !ok {
				t.Fatal("a failed call removed the member")
			}
		})
	}
}
