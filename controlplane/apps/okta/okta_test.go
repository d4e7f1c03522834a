package okta_test

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
	"github.com/lanyardhq/lanyard/controlplane/apps/okta"
	"github.com/lanyardhq/lanyard/controlplane/apps/okta/fakeokta"
)

const token = "00TestOktaApiToken"

type env struct {
	fs  *fakeokta.Server
	c   *okta.Connector
	eng string // the "eng" group's id
}

func setup(t *testing.T, mode string, limitMax int) env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fs, err := fakeokta.Start(ctx, fakeokta.Options{Token: token, LimitMax: limitMax})
	if err != nil {
		t.Fatal(err)
	}
	eng := fs.AddGroup()
	raw, _ := json.Marshal(map[string]any{"suspend_mode": mode, "groups": map[string]string{"eng": eng}})
	c, err := okta.New(apps.Spec{App: "okta", Kind: "okta", BaseURL: fs.URL, Settings: raw, Secret: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	return env{fs: fs, c: c, eng: eng}
}

var ada = apps.Person{ExternalID: "E1", UserName: "ada@acme.example", Email: "ada@acme.example",
	GivenName: "Ada", FamilyName: "Lovelace", Title: "Engineer", Department: "R&D"}

// existing is ada as an Okta admin created her by hand: no employeeNumber.
func existing(fs *fakeokta.Server, status string) string {
	return fs.AddUser(status, map[string]string{"login": "ada@acme.example", "email": "ada@acme.example",
		"firstName": "Ada", "lastName": "L"})
}

func TestProvision(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(fs *fakeokta.Server) string
		person  apps.Person
		groups  []string
		action  string
		status  string
		posts   int // creates attempted, when it matters
		wantErr error
	}{
		{name: "new user created, activated and grouped", person: ada, groups: []string{"eng"}, action: "created", status: "PROVISIONED"},
		{name: "existing by email adopted and linked", person: ada, groups: []string{"eng"}, action: "linked", status: "ACTIVE",
			setup: func(fs *fakeokta.Server) string { return existing(fs, "ACTIVE") }},
		{name: "login taken under another email: adopted after E0000001", person: ada, action: "linked", status: "ACTIVE", posts: 1,
			setup: func(fs *fakeokta.Server) string {
				return fs.AddUser("ACTIVE", map[string]string{"login": "ada@acme.example", "email": "ada.personal@example.org", "firstName": "Ada", "lastName": "L"})
			}},
		{name: "suspended user is not reactivated", person: ada, action: "linked", status: "SUSPENDED",
			setup: func(fs *fakeokta.Server) string { return existing(fs, "SUSPENDED") }},
		{name: "unknown group rejected before any write", person: ada, groups: []string{"nope"}, wantErr: apps.ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, "", 0)
			id := ""
			if tt.setup != nil {
				id = tt.setup(e.fs)
			}
			res, err := e.c.Provision(context.Background(), tt.person, tt.groups)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || apps.IsTransient(err) || len(e.fs.Users()) != 0 {
					t.Fatalf("err = %v, users %v; want permanent %v and nothing created", err, e.fs.Users(), tt.wantErr)
				}
				return
			}
			if err != nil || res.Action != tt.action || (id != "" && res.AccountID != id) {
				t.Fatalf("provision: %+v %v, want %s on %q", res, err, tt.action, id)
			}
			u, ok := e.fs.User(res.AccountID)
			if !ok || u.Status != tt.status || u.Profile["employeeNumber"] != "E1" || u.Profile["lastName"] != "Lovelace" ||
				u.Profile["title"] != "Engineer" || u.Profile["department"] != "R&D" {
				t.Fatalf("user = %+v", u)
			}
			if len(e.fs.Users()) != 1 {
				t.Fatalf("users = %v, want one", e.fs.Users())
			}
			if tt.posts != 0 && e.fs.Requests("POST /api/v1/users") != tt.posts {
				t.Fatalf("%d creates, want %d", e.fs.Requests("POST /api/v1/users"), tt.posts)
			}
			if len(tt.groups) > 0 {
				if got := e.fs.GroupMembers(e.eng); len(got) != 1 || got[0] != res.AccountID {
					t.Fatalf("group eng = %v", got)
				}
			}
			again, err := e.c.Provision(context.Background(), tt.person, tt.groups)
			if err != nil || again.Action != "unchanged" || again.AccountID != res.AccountID {
				t.Fatalf("second provision: %+v %v", again, err)
			}
			a, err := e.c.Find(context.Background(), tt.person)
			if err != nil || a.ID != res.AccountID || a.ExternalID != "E1" || a.IsActive() != (tt.status != "SUSPENDED") {
				t.Fatalf("find: %+v %v", a, err)
			}
		})
	}
}

func TestSuspendAndReactivate(t *testing.T) {
	tests := []struct {
		name       string
		mode       string
		status     string // before; "" means no user
		action     string
		after      string
		reactivate string // status after Reactivate
	}{
		{name: "active user suspended", status: "ACTIVE", action: "suspended", after: "SUSPENDED", reactivate: "ACTIVE"},
		{name: "deactivate mode deprovisions", mode: "deactivate", status: "ACTIVE", action: "suspended", after: "DEPROVISIONED", reactivate: "PROVISIONED"},
		{name: "locked-out user cannot be suspended: deactivated", status: "LOCKED_OUT", action: "suspended", after: "DEPROVISIONED", reactivate: "PROVISIONED"},
		{name: "already suspended: unchanged, sessions cleared", status: "SUSPENDED", action: "unchanged", after: "SUSPENDED", reactivate: "ACTIVE"},
		{name: "already deprovisioned: unchanged", status: "DEPROVISIONED", action: "unchanged", after: "DEPROVISIONED", reactivate: "PROVISIONED"},
		{name: "no user: absent", action: "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.mode, 0)
			id := ""
			if tt.status != "" {
				id = existing(e.fs, tt.status)
				e.fs.UpdateProfile(id, map[string]string{"employeeNumber": "E1"})
			}
			res, err := e.c.Suspend(context.Background(), ada)
			if err != nil || res.Action != tt.action {
				t.Fatalf("suspend: %+v %v, want %s", res, err, tt.action)
			}
			if id == "" {
				if _, err := e.c.Reactivate(context.Background(), ada); !errors.Is(err, apps.ErrNotFound) {
					t.Fatalf("reactivate nobody: %v", err)
				}
				return
			}
			u, _ := e.fs.User(id)
			if u.Status != tt.after || u.Sessions != 0 || u.OAuthTokens != 0 {
				t.Fatalf("after suspend: %+v", u)
			}
			if e.fs.Requests("DELETE /api/v1/users/"+id+"/sessions") != 1 {
				t.Fatal("sessions not cleared")
			}
			if a, err := e.c.Find(context.Background(), ada); err != nil || a.Active == nil || *a.Active {
				t.Fatalf("find after suspend: %+v %v, want known inactive", a, err)
			}
			if r, err := e.c.Suspend(context.Background(), ada); err != nil || r.Action != "unchanged" {
				t.Fatalf("second suspend: %+v %v", r, err)
			}
			r, err := e.c.Reactivate(context.Background(), ada)
			if u, _ = e.fs.User(id); err != nil || r.Action != "reactivated" || u.Status != tt.reactivate {
				t.Fatalf("reactivate: %+v %v, user %+v", r, err, u)
			}
			if a, err := e.c.Find(context.Background(), ada); err != nil || !a.IsActive() {
				t.Fatalf("find after reactivate: %+v %v", a, err)
			}
			if r, err := e.c.Reactivate(context.Background(), ada); err != nil || r.Action != "unchanged" {
				t.Fatalf("second reactivate: %+v %v", r, err)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	for _, status := range []string{"ACTIVE", "SUSPENDED", "DEPROVISIONED", ""} {
		t.Run("from "+status, func(t *testing.T) {
			e := setup(t, "", 0)
			want := "absent"
			if status != "" {
				existing(e.fs, status)
				want = "deleted"
			}
			res, err := e.c.Remove(context.Background(), ada)
			if err != nil || res.Action != want || len(e.fs.Users()) != 0 {
				t.Fatalf("remove: %+v %v, users %v", res, err, e.fs.Users())
			}
			if r, err := e.c.Remove(context.Background(), ada); err != nil || r.Action != "absent" {
				t.Fatalf("second remove: %+v %v", r, err)
			}
			if r, err := e.c.Suspend(context.Background(), ada); err != nil || r.Action != "absent" {
				t.Fatalf("suspend after remove: %+v %v", r, err)
			}
		})
	}
}

// A rename in Okta (new login and email) does not lose the person: the
// employeeNumber link finds them.
func TestRenamedInOkta(t *testing.T) {
	e := setup(t, "", 0)
	res, err := e.c.Provision(context.Background(), ada, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.fs.UpdateProfile(res.AccountID, map[string]string{"login": "ada.byron@acme.example", "email": "ada.byron@acme.example"})
	a, err := e.c.Find(context.Background(), ada)
	if err != nil || a.ID != res.AccountID || a.UserName != "ada.byron@acme.example" {
		t.Fatalf("find renamed: %+v %v", a, err)
	}
	if r, err := e.c.Suspend(context.Background(), ada); err != nil || r.AccountID != res.AccountID {
		t.Fatalf("suspend renamed: %+v %v", r, err)
	}
}

func TestListPaging(t *testing.T) {
	e := setup(t, "", 10)
	for i := range 25 {
		status := "ACTIVE"
		if i%5 == 0 {
			status = "SUSPENDED"
		}
		e.fs.AddUser(status, map[string]string{"login": fmt.Sprintf("u%02d@acme.example", i)})
	}
	e.fs.AddUser("DEPROVISIONED", map[string]string{"login": "gone@acme.example"})
	n, inactive := 0, 0
	if err := e.c.List(context.Background(), func(a apps.Account) error {
		if a.Active == nil {
			return fmt.Errorf("%s: status unknown", a.ID)
		}
		if !*a.Active {
			inactive++
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 25 || inactive != 5 || e.fs.Requests("GET /api/v1/users") != 3 {
		t.Fatalf("listed %d (%d inactive) in %d requests", n, inactive, e.fs.Requests("GET /api/v1/users"))
	}
	stop := errors.New("stop")
	if err := e.c.List(context.Background(), func(apps.Account) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("list stop: %v", err)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name      string
		knob      func(fs *fakeokta.Server)
		transient bool
		kind      error
		code      string
		detail    string
		minRetry  time.Duration
	}{
		{name: "429 E0000047 with X-Rate-Limit-Reset", knob: func(fs *fakeokta.Server) { fs.Throttle(1, 30*time.Second) },
			transient: true, kind: apps.ErrUnavailable, code: "E0000047", detail: "rate limit", minRetry: 30 * time.Second},
		{name: "500", knob: func(fs *fakeokta.Server) { fs.FailNext(1, http.StatusInternalServerError) },
			transient: true, kind: apps.ErrUnavailable, code: "E0000009"},
		{name: "503", knob: func(fs *fakeokta.Server) { fs.FailNext(1, http.StatusServiceUnavailable) },
			transient: true, kind: apps.ErrUnavailable},
		{name: "revoked token", knob: func(fs *fakeokta.Server) { fs.RevokeToken() }, kind: apps.ErrAuth, code: "E0000011", detail: "Invalid token"},
		{name: "no permission", knob: func(fs *fakeokta.Server) { fs.Forbid() }, kind: apps.ErrAuth, code: "E0000006", detail: "permission"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, "", 0)
			id := existing(e.fs, "ACTIVE")
			tt.knob(e.fs)
			_, err := e.c.Suspend(context.Background(), ada)
			var te *apps.TargetError
			if !errors.As(err, &te) || apps.IsTransient(err) != tt.transient || !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v (transient %v)", err, apps.IsTransient(err))
			}
			if (tt.code != "" && te.Code != tt.code) || !strings.Contains(te.Detail, tt.detail) || te.RetryAfter < tt.minRetry {
				t.Fatalf("TargetError = %+v", te)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatal("token in error")
			}
			if u, _ := e.fs.User(id); u.Status != "ACTIVE" {
				t.Fatalf("a failed call changed the user: %+v", u)
			}
		})
	}
}

func TestBuildRefusesBadSettings(t *testing.T) {
	tests := []struct {
		name  string
		spec  apps.Spec
		field string
	}{
		{name: "no base URL", spec: apps.Spec{Secret: []byte("t")}, field: "base_url"},
		{name: "bad mode", spec: apps.Spec{BaseURL: "https://acme.okta.com", Secret: []byte("t"), Settings: json.RawMessage(`{"suspend_mode":"delete"}`)}, field: "settings.suspend_mode"},
		{name: "unknown field", spec: apps.Spec{BaseURL: "https://acme.okta.com", Secret: []byte("t"), Settings: json.RawMessage(`{"mode":"x"}`)}, field: "settings"},
		{name: "no token", spec: apps.Spec{BaseURL: "https://acme.okta.com"}, field: "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := okta.Build(context.Background(), tt.spec)
			var fe *apps.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("err = %v, want field %s", err, tt.field)
			}
		})
	}
}

// A settings.groups id that Okta does not know is a configuration mistake:
// permanent, naming the group, after the user itself was made.
func TestProvisionMissingOktaGroup(t *testing.T) {
	e := setup(t, "", 0)
	raw, _ := json.Marshal(map[string]any{"groups": map[string]string{"eng": "00gDoesNotExist"}})
	c, err := okta.New(apps.Spec{App: "okta", BaseURL: e.fs.URL, Settings: raw, Secret: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Provision(context.Background(), ada, []string{"eng"})
	if !errors.Is(err, apps.ErrRejected) || apps.IsTransient(err) || !strings.Contains(err.Error(), "00gDoesNotExist") {
		t.Fatalf("err = %v", err)
	}
}

// A provider that accepts the connection and never answers ends with the
// caller's deadline, which counts as transient.
func TestHangEndsWithDeadline(t *testing.T) {
	e := setup(t, "", 0)
	existing(e.fs, "ACTIVE")
	e.fs.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.c.Suspend(ctx, ada)
	if !apps.IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// Search values are quoted and URL-encoded: a "+" in an email (sub-addressing)
// and a quote in an employee number reach Okta intact.
func TestFindEscapesSearch(t *testing.T) {
	e := setup(t, "", 0)
	plus := apps.Person{Email: "ada+ops@acme.example", UserName: "ada+ops@acme.example"}
	id := e.fs.AddUser("ACTIVE", map[string]string{"login": plus.Email, "email": plus.Email})
	if a, err := e.c.Find(context.Background(), plus); err != nil || a.ID != id {
		t.Fatalf("find by email with +: %+v %v", a, err)
	}
	quoted := apps.Person{ExternalID: `E"7`}
	qid := e.fs.AddUser("ACTIVE", map[string]string{"login": "q@acme.example", "employeeNumber": `E"7`})
	if a, err := e.c.Find(context.Background(), quoted); err != nil || a.ID != qid {
		t.Fatalf("find by employeeNumber with a quote: %+v %v", a, err)
	}
}
