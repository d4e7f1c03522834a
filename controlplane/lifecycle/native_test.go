package lifecycle_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps/entra/fakegraph"
	"github.com/lanyardhq/lanyard/controlplane/apps/github/fakegithub"
	"github.com/lanyardhq/lanyard/controlplane/apps/google/fakegoogle"
	"github.com/lanyardhq/lanyard/controlplane/apps/okta/fakeokta"
	"github.com/lanyardhq/lanyard/controlplane/apps/slackscim/fakeslackscim"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The native connectors through the engine, on both stores, each against its fake over
// real HTTP: a hire is provisioned into the rule's group; a termination (the app
// throttling once) suspends the account and revokes its sessions; reconciliation finds an
// account of nobody and re-suspends the leaver an admin turned back on; a canceled
// termination brings the account back (GitHub: invited again into the rule's team).

// nativeAccount is what a fake says of an account.
type nativeAccount struct {
	exists, active, sessionsRevoked, inGroup bool
}

// nativeApp drives one kind's fake from the engine's side.
type nativeApp struct {
	kind string
	// connect starts the fake, stores the connector and returns the adapter.
	connect func(h *harness, first string) nativeFake
}

type nativeFake struct {
	account  func(id string) nativeAccount
	ghost    func() string   // seeds an account nobody in Lanyard has; its user name
	turnOn   func(id string) // an app admin turns the account back on by hand
	throttle func()          // the next request is throttled (transient)
	revoke   func()          // the app stops accepting Lanyard's credentials
	accept   func(id string) // the person accepts an invitation (GitHub)
	rename   func(id string) // an app admin renames the account (nil: the fake has no such knob)
	// hired and suspended, when set, check what the kind does beyond the account
	// (Google: the leaver's Drive goes to the manager HR names).
	hired     func(e domain.Employee)
	suspended func()
}

const (
	nTenant = "00000000-0000-4000-8000-0000000000aa"
	nClient = "00000000-0000-4000-8000-0000000000bb"
	nSecret = "entra-client-secret"
	nToken  = "native-token"
)

// store stores app name of kind with settings and secret, and an Engineering rule
// granting group.
func (h *harness) connectNative(app, kind, baseURL string, settings map[string]any, secret []byte, group string) {
	h.t.Helper()
	ctx := context.Background()
	raw, _ := json.Marshal(settings)
	sealed, err := h.keys.Seal(secret, lifecycle.TokenAAD(h.org.ID, app))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.db.UpsertAppConnector(ctx, &store.AppConnector{OrgID: h.org.ID, App: app, Kind: kind, BaseURL: baseURL,
		Settings: string(raw), TokenSealed: sealed, RevokeMode: "deactivate"}); err != nil {
		h.t.Fatal(err)
	}
	b, _ := json.Marshal([]map[string]any{{"app": app, "groups": []string{group}}})
	if err := h.db.InsertAppRule(ctx, &store.AppRule{OrgID: h.org.ID, Department: "Engineering", Apps: string(b)}); err != nil {
		h.t.Fatal(err)
	}
}

var nativeApps = []nativeApp{
	{kind: "google", connect: func(h *harness, _ string) nativeFake {
		s, err := fakegoogle.Start(h.t.Context(), fakegoogle.Options{Domain: "acme.test"})
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(s.Close)
		s.AddGroup("eng@acme.test")
		h.connectNative("google", "google", s.URL, map[string]any{"domain": "acme.test", "admin_subject": "admin@acme.test",
			"token_url": s.URL + "/token", "groups_on_suspend": "keep", "transfer_drive_to_manager": true}, s.ServiceAccountKey, "eng@acme.test")
		bossID := s.AddUser(fakegoogle.User{PrimaryEmail: "boss@acme.test"})
		return nativeFake{
			hired: func(e domain.Employee) { h.managedBy(e, "boss@acme.test") },
			suspended: func() {
				ts := s.Transfers()
				if len(ts) != 1 || ts[0].NewOwnerUserID != bossID {
					h.t.Fatalf("drive transfers = %+v, want one to the manager %s", ts, bossID)
				}
			},
			account: func(id string) nativeAccount {
				u, ok := s.User(id)
				return nativeAccount{exists: ok, active: ok && !u.Suspended, sessionsRevoked: s.SignOuts(id) > 0,
					inGroup: ok && contains(s.Members("eng@acme.test"), u.PrimaryEmail)}
			},
			ghost: func() string {
				s.AddUser(fakegoogle.User{PrimaryEmail: "ghost@acme.test"})
				return "ghost@acme.test"
			},
			turnOn:   func(id string) { s.SetSuspended(id, false) },
			rename:   func(id string) { s.Rename(id, "someone.else@acme.test") },
			throttle: func() { s.Throttle(1, 403) }, // 403 rateLimitExceeded
			revoke:   s.Revoke,
		}
	}},
	{kind: "entra", connect: func(h *harness, _ string) nativeFake {
		s, err := fakegraph.Start(h.t.Context(), fakegraph.Options{TenantID: nTenant, ClientID: nClient, ClientSecret: nSecret})
		if err != nil {
			h.t.Fatal(err)
		}
		gid := s.AddGroup("Engineering")
		h.connectNative("m365", "entra", s.URL, map[string]any{"tenant_id": nTenant, "client_id": nClient, "domain": "acme.test",
			"authority_url": s.URL}, []byte(nSecret), "Engineering")
		return nativeFake{
			account: func(id string) nativeAccount {
				u, ok := s.User(id)
				return nativeAccount{exists: ok, active: ok && u.AccountEnabled, sessionsRevoked: u.SessionsRevoked > 0,
					inGroup: contains(s.Members(gid), id)}
			},
			ghost: func() string {
				s.AddUser(fakegraph.User{UserPrincipalName: "ghost@acme.test", Mail: "ghost@acme.test", AccountEnabled: true})
				return "ghost@acme.test"
			},
			turnOn:   func(id string) { s.SetAccountEnabled(id, true) },
			rename:   func(id string) { s.RenameUser(id, "someone.else@acme.test") },
			throttle: func() { s.Throttle(1, time.Millisecond) },
			revoke:   s.RevokeCredentials,
		}
	}},
	{kind: "okta", connect: func(h *harness, _ string) nativeFake {
		s, err := fakeokta.Start(h.t.Context(), fakeokta.Options{Token: nToken})
		if err != nil {
			h.t.Fatal(err)
		}
		gid := s.AddGroup()
		h.connectNative("okta", "okta", s.URL, map[string]any{"groups": map[string]string{"engineering": gid}}, []byte(nToken), "engineering")
		return nativeFake{
			account: func(id string) nativeAccount {
				u, ok := s.User(id)
				live := map[string]bool{"ACTIVE": true, "PROVISIONED": true, "RECOVERY": true, "PASSWORD_EXPIRED": true, "LOCKED_OUT": true}
				return nativeAccount{exists: ok, active: ok && live[u.Status], sessionsRevoked: s.Requests("DELETE /api/v1/users/"+id+"/sessions") > 0,
					inGroup: contains(s.GroupMembers(gid), id)}
			},
			ghost: func() string {
				s.AddUser("ACTIVE", map[string]string{"login": "ghost@acme.test", "email": "ghost@acme.test", "firstName": "G", "lastName": "Host"})
				return "ghost@acme.test"
			},
			turnOn:   func(id string) { s.SetStatus(id, "ACTIVE") },
			throttle: func() { s.Throttle(1, time.Millisecond) },
			revoke:   s.RevokeToken,
		}
	}},
	{kind: "github", connect: func(h *harness, first string) nativeFake {
		s, err := fakegithub.Start(h.t.Context(), fakegithub.Options{Org: "acme", Token: nToken})
		if err != nil {
			h.t.Fatal(err)
		}
		login := first + "-gh"
		s.AddUser(login)
		s.AddTeam("engineering")
		h.connectNative("github", "github", s.URL, map[string]any{"org": "acme", "logins": map[string]string{first + "@acme.test": login}},
			[]byte(nToken), "engineering")
		return nativeFake{
			account: func(id string) nativeAccount {
				m, ok := s.Member(id)
				// GitHub has no session to revoke: leaving the org is the revocation.
				return nativeAccount{exists: ok, active: ok && m.State == "active", sessionsRevoked: !ok,
					inGroup: contains(s.TeamMembers("engineering"), id)}
			},
			ghost: func() string {
				s.AddMember("ghost-gh", "member")
				return "ghost-gh"
			},
			turnOn:   func(id string) { s.AddMember(id, "member") },
			throttle: func() { s.Throttle(1, time.Millisecond) },
			revoke:   s.RevokeToken,
			accept:   s.Accept,
		}
	}},
	{kind: "slack", connect: func(h *harness, _ string) nativeFake {
		s, err := fakeslackscim.Start(h.t.Context(), fakeslackscim.Options{Token: nToken})
		if err != nil {
			h.t.Fatal(err)
		}
		gid := s.AddGroup("engineering")
		h.connectNative("slack", "slack", s.BaseURL(), nil, []byte(nToken), "engineering")
		return nativeFake{
			account: func(id string) nativeAccount {
				u, ok := s.User(id)
				// Slack signs a deactivated member out everywhere.
				return nativeAccount{exists: ok, active: ok && u.Active, sessionsRevoked: ok && !u.Active,
					inGroup: contains(s.Members(gid), id)}
			},
			ghost: func() string {
				s.AddUser(fakeslackscim.User{UserName: "ghost", Email: "ghost@acme.test", Active: true})
				return "ghost"
			},
			turnOn:   func(id string) { s.SetActive(id, true) },
			rename:   func(id string) { s.Rename(id, "someone.else", "someone.else@acme.test") },
			throttle: func() { s.Throttle(1, time.Millisecond) },
			revoke:   s.RevokeToken,
		}
	}},
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if strings.EqualFold(v, x) {
			return true
		}
	}
	return false
}

func TestNativeConnectorsThroughTheEngine(t *testing.T) {
	for _, na := range nativeApps {
		t.Run(na.kind, func(t *testing.T) {
			storetest.EachDB(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				h := newHarness(t, db, harnessOpts{})
				first := "nat" + na.kind
				f := na.connect(h, first)
				app := map[string]string{"entra": "m365"}[na.kind]
				if app == "" {
					app = na.kind
				}

				// Provisioning: the account exists, active, in the rule's group.
				e, _ := h.onboarded(first, "SER-"+strings.ToUpper(na.kind), "agent")
				if f.hired != nil {
					f.hired(e)
				}
				grant := stepApps(t, h.stepOf(e.ID, lifecycle.KindOnboarding, lifecycle.StepGrantApps))[app]
				if grant.Outcome != "done" || grant.AccountID == "" {
					t.Fatalf("grant = %+v\n%s", grant, h.dump())
				}
				id := grant.AccountID
				if f.accept != nil {
					id = first + "-gh"
					f.accept(id)
				}
				if a := f.account(id); !a.exists || !a.active || !a.inGroup {
					t.Fatalf("after onboarding %s = %+v (grant %+v)", id, a, grant)
				}

				// Suspension through a throttled app: retried, then suspended with sessions gone.
				f.throttle()
				h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
				h.pump("revoked", func() bool {
					return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps) == "succeeded"
				})
				st := h.stepOf(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps)
				if r := stepApps(t, st)[app]; r.Outcome != "done" {
					t.Fatalf("revoke = %+v", r)
				}
				if a := f.account(id); a.active || !a.sessionsRevoked {
					t.Fatalf("after the termination %s = %+v", id, a)
				}
				if f.suspended != nil {
					f.suspended()
				}
				if n := h.auditCount("lifecycle.step.retrying", st.ID); n != 1 {
					t.Fatalf("the throttled call was retried %d times, want 1\n%s", n, h.dump())
				}

				// Reconciliation: an account of nobody, and the leaver turned back on (and,
				// where the app allows, renamed) by hand: still matched through the link.
				ghost := f.ghost()
				f.turnOn(id)
				if f.rename != nil {
					f.rename(id)
				}
				rep, err := h.eng.ReconcileApps(ctx, h.org.ID)
				if err != nil || len(rep.Errors) != 0 {
					t.Fatalf("reconcile: %+v, %v", rep, err)
				}
				if a := f.account(id); a.active {
					t.Fatalf("the leaver's account was not suspended again: %+v", a)
				}
				os, err := h.db.ListAppOrphans(ctx, h.org.ID, false)
				if err != nil {
					t.Fatal(err)
				}
				by := map[string]store.AppOrphan{}
				for _, o := range os {
					by[o.Reason] = o
				}
				if len(os) != 2 || by["no_person"].UserName != ghost || by["terminated"].EmployeeID != e.ID || by["terminated"].Action != "resuspended" {
					t.Fatalf("orphans = %+v (report %+v)", os, rep)
				}

				// A canceled termination: the account comes back, or a task says to do it by hand.
				h.hrEvent(&e, domain.EventEmployeeTerminationCanceled, func(e *domain.Employee) { e.HR.Status = domain.StatusActive })
				if f.accept == nil {
					h.pump("reactivated", func() bool { return f.account(id).active })
					return
				}
				// GitHub ended the membership: the person is invited again, into the rule's team.
				h.pump("re-invited", func() bool { m := f.account(id); return m.exists && m.inGroup })
				f.accept(id)
				if a := f.account(id); !a.active {
					t.Fatalf("after the re-invitation %s = %+v", id, a)
				}
			})
		})
	}
}

// managedBy records, as HR sync does, that e's manager is a (new, active) employee
// with work email mgr.
func (h *harness) managedBy(e domain.Employee, mgr string) {
	h.t.Helper()
	ctx := context.Background()
	boss := domain.Employee{OrgID: h.org.ID, Source: e.Source, ExternalID: domain.NewID(), HR: domain.HRFields{
		FirstName: "Boss", LastName: "Person", WorkEmail: mgr, Status: domain.StatusActive, MemberType: domain.MemberFullTime}}
	err := h.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := store.InsertEmployee(ctx, tx, &boss); err != nil {
			return err
		}
		return store.UpsertHRMember(ctx, tx, store.HRMember{EmployeeID: e.ID, OrgID: h.org.ID, Source: e.Source,
			ExternalID: e.ExternalID, ManagerExternalID: boss.ExternalID, UpdatedAt: time.Now()})
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// TestNativeFiveAppsPartialFailure: a leaver with accounts in all five native apps; at
// the termination Entra has lost Lanyard's credentials and Slack throttles. The step
// retries Slack, suspends the four that answer, blocks on Entra with a task naming it
// and the reason, and never reports access removed while Entra still has them active.
func TestNativeFiveAppsPartialFailure(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{})
		const first = "five"
		fakes := map[string]nativeFake{}
		for _, na := range nativeApps {
			fakes[na.kind] = na.connect(h, first)
		}
		e, _ := h.onboarded(first, "SER-FIVE", "agent")
		if f := fakes["google"]; f.hired != nil {
			f.hired(e)
		}
		grants := stepApps(t, h.stepOf(e.ID, lifecycle.KindOnboarding, lifecycle.StepGrantApps))
		ids := map[string]string{}
		for kind, f := range fakes {
			app := map[string]string{"entra": "m365"}[kind]
			if app == "" {
				app = kind
			}
			ids[kind] = grants[app].AccountID
			if f.accept != nil {
				ids[kind] = first + "-gh"
				f.accept(ids[kind])
			}
			if a := f.account(ids[kind]); !a.active {
				t.Fatalf("%s not granted: %+v (%+v)", kind, a, grants)
			}
		}
		fakes["entra"].revoke()
		fakes["slack"].throttle()
		h.hrEvent(&e, domain.EventEmployeeTerminated, func(e *domain.Employee) { e.HR.Status = domain.StatusTerminated })
		h.pump("revoke blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps) == "blocked"
		})
		st := h.stepOf(e.ID, lifecycle.KindOffboarding, lifecycle.StepRevokeApps)
		res := stepApps(t, st)
		for kind, f := range fakes {
			a := f.account(ids[kind])
			if kind == "entra" {
				if !a.active || res["m365"].Outcome != "blocked" || !strings.Contains(res["m365"].Error, "AADSTS7000215") {
					t.Fatalf("m365 = %+v (account %+v)", res["m365"], a)
				}
				continue
			}
			app := kind
			if a.active || res[app].Outcome != "done" {
				t.Fatalf("%s = %+v (account %+v)", app, res[app], a)
			}
		}
		if h.auditCount("lifecycle.step.retrying", st.ID) != 1 {
			t.Fatalf("the throttled Slack call was not retried once\n%s", h.dump())
		}
		if h.wfState(e.ID, lifecycle.KindOffboarding) == "succeeded" || !strings.Contains(st.LastError, "m365") {
			t.Fatalf("workflow %s, step error %q", h.wfState(e.ID, lifecycle.KindOffboarding), st.LastError)
		}
		tasks := h.openTasks(h.workflow(e.ID, lifecycle.KindOffboarding).ID)
		if len(tasks) != 1 || tasks[0].SubjectID != "m365" || !strings.Contains(tasks[0].Detail, "credentials") {
			t.Fatalf("tasks = %+v", tasks)
		}
	})
}
