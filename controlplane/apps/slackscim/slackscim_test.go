package slackscim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/apps/slackscim"
	"github.com/lanyardhq/lanyard/controlplane/apps/slackscim/fakeslackscim"
)

const token = "xoxp-scim-test"

func setup(t *testing.T, maxCount int) (*fakeslackscim.Server, *slackscim.Connector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fs, err := fakeslackscim.Start(ctx, fakeslackscim.Options{Token: token, MaxCount: maxCount})
	if err != nil {
		t.Fatal(err)
	}
	c, err := slackscim.New(apps.Spec{App: "slack", Kind: "slack", BaseURL: fs.BaseURL(), Secret: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	return fs, c
}

var ada = apps.Person{ExternalID: "E1", UserName: "ada.lovelace@acme.example", Email: "ada.lovelace@acme.example",
	GivenName: "Ada", FamilyName: "Lovelace", Title: "Engineer"}

func TestProvision(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(fs *fakeslackscim.Server) string
		groups  []string
		action  string
		wantErr error
	}{
		{name: "new member in a group", groups: []string{"engineering"}, action: "created"},
		{name: "pre-existing member adopted and linked", action: "linked", setup: func(fs *fakeslackscim.Server) string {
			return fs.AddUser(fakeslackscim.User{UserName: "ada", Email: "Ada.Lovelace@acme.example", Active: true})
		}},
		{name: "renamed in Slack (new handle): found by email", action: "unchanged", setup: func(fs *fakeslackscim.Server) string {
			return fs.AddUser(fakeslackscim.User{UserName: "countess", Email: "ada.lovelace@acme.example", ExternalID: "E1",
				GivenName: "Ada", FamilyName: "Lovelace", Title: "Engineer", Active: true})
		}},
		{name: "handle taken by someone else: Slack's 409 with its words", wantErr: apps.ErrRejected, setup: func(fs *fakeslackscim.Server) string {
			fs.AddUser(fakeslackscim.User{UserName: "ada.lovelace", Email: "other@acme.example", ExternalID: "E9", Active: true})
			return ""
		}},
		{name: "email held by someone else's linked member: Slack's 409 email_taken", wantErr: apps.ErrRejected, setup: func(fs *fakeslackscim.Server) string {
			fs.AddUser(fakeslackscim.User{UserName: "al", Email: "ada.lovelace@acme.example", ExternalID: "E9", Active: true})
			return ""
		}},
		{name: "missing group rejected", groups: []string{"nope"}, wantErr: apps.ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, c := setup(t, 0)
			eng := fs.AddGroup("engineering")
			pre := ""
			if tt.setup != nil {
				pre = tt.setup(fs)
			}
			res, err := c.Provision(context.Background(), ada, tt.groups)
			if tt.wantErr != nil {
				var te *apps.TargetError
				if !errors.Is(err, tt.wantErr) || apps.IsTransient(err) || !errors.As(err, &te) || te.Detail == "" {
					t.Fatalf("err = %v, want permanent %v with detail", err, tt.wantErr)
				}
				return
			}
			if err != nil || res.Action != tt.action {
				t.Fatalf("provision: %+v %v, want %s", res, err, tt.action)
			}
			if pre != "" && res.AccountID != pre {
				t.Fatalf("account %s, want %s", res.AccountID, pre)
			}
			u, _ := fs.User(res.AccountID)
			if u.ExternalID != "E1" || u.Title != "Engineer" || u.GivenName != "Ada" || !u.Active {
				t.Fatalf("member = %+v", u)
			}
			if len(tt.groups) > 0 && !strings.Contains(strings.Join(fs.Members(eng), ","), u.ID) {
				t.Fatal("not in group")
			}
			if again, err := c.Provision(context.Background(), ada, tt.groups); err != nil || again.Action != "unchanged" {
				t.Fatalf("second provision: %+v %v", again, err)
			}
		})
	}
}

func TestSuspendReactivate(t *testing.T) {
	tests := []struct {
		name   string
		active *bool
		action string
	}{
		{name: "active member deactivated", active: ptr(true), action: "suspended"},
		{name: "already deactivated: unchanged", active: ptr(false), action: "unchanged"},
		{name: "never there: absent", action: "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, c := setup(t, 0)
			ctx := context.Background()
			id := ""
			if tt.active != nil {
				id = fs.AddUser(fakeslackscim.User{UserName: "ada.lovelace", Email: ada.Email, ExternalID: "E1", Active: *tt.active})
			}
			res, err := c.Suspend(ctx, ada)
			if err != nil || res.Action != tt.action {
				t.Fatalf("suspend: %+v %v, want %s", res, err, tt.action)
			}
			if id == "" {
				if _, err := c.Reactivate(ctx, ada); !errors.Is(err, apps.ErrNotFound) {
					t.Fatalf("reactivate absent: %v", err)
				}
				return
			}
			if u, _ := fs.User(id); u.Active {
				t.Fatal("still active")
			}
			if fs.Requests("DELETE /scim/v2/Users/"+id) != 0 {
				t.Fatal("suspension used DELETE")
			}
			if a, err := c.Find(ctx, ada); err != nil || a.Active == nil || *a.Active {
				t.Fatalf("find: %+v %v", a, err)
			}
			if r, err := c.Reactivate(ctx, ada); err != nil || r.Action != "reactivated" {
				t.Fatalf("reactivate: %+v %v", r, err)
			}
			if u, _ := fs.User(id); !u.Active {
				t.Fatal("not reactivated")
			}
		})
	}
	_, c := setup(t, 0)
	if _, err := c.Remove(context.Background(), ada); !errors.Is(err, apps.ErrNotSupported) || c.Capabilities().Remove {
		t.Fatalf("remove: %v", err)
	}
}

func ptr(b bool) *bool { return &b }

func TestListPaging(t *testing.T) {
	fs, c := setup(t, 10)
	for i := range 25 {
		fs.AddUser(fakeslackscim.User{UserName: fmt.Sprintf("u%02d", i), Email: fmt.Sprintf("u%02d@acme.example", i), Active: i < 20})
	}
	n, active := 0, 0
	if err := c.List(context.Background(), func(a apps.Account) error {
		n++
		if a.IsActive() {
			active++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 25 || active != 20 || fs.Requests("GET /scim/v2/Users") != 3 {
		t.Fatalf("listed %d (%d active) in %d requests", n, active, fs.Requests("GET /scim/v2/Users"))
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name      string
		knob      func(fs *fakeslackscim.Server)
		transient bool
		kind      error
		code      string
		retry     time.Duration
	}{
		{name: "rate limited with Retry-After", knob: func(fs *fakeslackscim.Server) { fs.Throttle(1, 30*time.Second) },
			transient: true, kind: apps.ErrUnavailable, code: "ratelimited", retry: 30 * time.Second},
		{name: "500", knob: func(fs *fakeslackscim.Server) { fs.FailNext(1, http.StatusInternalServerError) },
			transient: true, kind: apps.ErrUnavailable, code: "internal_error"},
		{name: "revoked token", knob: func(fs *fakeslackscim.Server) { fs.RevokeToken() }, kind: apps.ErrAuth, code: "invalid_authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, c := setup(t, 0)
			id := fs.AddUser(fakeslackscim.User{UserName: "ada.lovelace", Email: ada.Email, Active: true})
			tt.knob(fs)
			_, err := c.Suspend(context.Background(), ada)
			var te *apps.TargetError
			if !errors.As(err, &te) || apps.IsTransient(err) != tt.transient || !errors.Is(err, tt.kind) || te.Code != tt.code || te.RetryAfter != tt.retry {
				t.Fatalf("err = %v (%+v)", err, te)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatal("token in error")
			}
			if u, _ := fs.User(id); !u.Active {
				t.Fatal("a failed call deactivated the member")
			}
		})
	}
}
