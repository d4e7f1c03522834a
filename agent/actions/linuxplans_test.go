package actions

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/pamlock"
)

const pristineCommonAccount = "# here are the per-package modules (the \"Primary\" block)\n" +
	"account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so \n" +
	"account\trequisite\t\t\tpam_deny.so\naccount\trequired\t\t\tpam_permit.so\n"

const pristineSystemAuth = "auth required pam_env.so\naccount sufficient pam_localuser.so\naccount required pam_unix.so\n"

// lockFactsFixture: a live machine with systemd, two humans (bob locked
// with an expiry before the lock), a directory user with a session, two
// PAM includes (system-auth behind an authselect link) and /run/nologin
// already present.
func lockFactsFixture() LinuxFacts {
	f := linuxFacts("/")
	f.StateDir = "/var/lib/lanyard"
	f.CommandID = "lock-1"
	f.Shadow = map[string]accounts.ShadowState{
		"root":  {Name: "root", ExpireDays: -1},
		"alice": {Name: "alice", ExpireDays: -1},
		"bob":   {Name: "bob", Locked: true, ExpireDays: 30000},
	}
	f.PAM = []PAMFile{
		{Path: "/etc/pam.d/common-account", Real: "/etc/pam.d/common-account", Content: pristineCommonAccount, Mode: 0o644},
		{Path: "/etc/pam.d/system-auth", Real: "/etc/authselect/system-auth", Content: pristineSystemAuth, Mode: 0o644},
	}
	f.NologinPresent = map[string]bool{"/run/nologin": true}
	f.DirectorySessions = []accounts.Account{{Name: "carol", UID: 70001}}
	return f
}

func stepRecord(t *testing.T, steps []Step) *LinuxLockRecord {
	t.Helper()
	for _, s := range steps {
		if s.Name == "lock-record" {
			if s.Write == nil || !s.Write.Private || s.Write.Mode != 0o600 || s.Write.Path != "/var/lib/lanyard/"+LinuxLockRecordName {
				t.Fatalf("record step %+v", s.Write)
			}
			var rec LinuxLockRecord
			if err := json.Unmarshal([]byte(s.Write.Content), &rec); err != nil {
				t.Fatal(err)
			}
			return &rec
		}
	}
	return nil
}

func TestLinuxLockPlanOrderAndRecord(t *testing.T) {
	f := lockFactsFixture()
	steps := LinuxLockPlan(f, "Locked.\n")
	want := []string{
		"lock-record: write /var/lib/lanyard/" + LinuxLockRecordName,
		"block-logins:/etc/nologin: write /etc/nologin",
		"pam-account-deny:/etc/pam.d/common-account: write /etc/pam.d/common-account",
		"pam-account-deny:/etc/pam.d/system-auth: write /etc/authselect/system-auth",
		"lock-account:alice: /usr/sbin/usermod --lock --expiredate 1 alice",
		"lock-account:bob: /usr/sbin/usermod --lock --expiredate 1 bob",
		"end-sessions:alice: /usr/bin/loginctl terminate-user alice",
		"kill-processes:alice: /usr/bin/pkill -KILL -U 1000",
		"kill-processes-euid:alice: /usr/bin/pkill -KILL -u 1000",
		"end-sessions:bob: /usr/bin/loginctl terminate-user bob",
		"kill-processes:bob: /usr/bin/pkill -KILL -U 1001",
		"kill-processes-euid:bob: /usr/bin/pkill -KILL -u 1001",
		"end-sessions:carol: /usr/bin/loginctl terminate-user 70001",
		"kill-processes:carol: /usr/bin/pkill -KILL -U 70001",
		"kill-processes-euid:carol: /usr/bin/pkill -KILL -u 70001",
	}
	if got := names(steps); !slices.Equal(got, want) {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Only the record stops the plan when it fails: nothing may change
	// without it. Every other failure leaves the rest of the lock running.
	for i, s := range steps {
		if (i == 0) == s.ContinueOnError {
			t.Errorf("step %s ContinueOnError = %v", s.Name, s.ContinueOnError)
		}
	}
	for _, s := range steps {
		if strings.HasPrefix(s.Name, "pam-account-deny:") {
			if !pamlock.Inspect(s.Write.Content).Holds() || pamlock.Remove(s.Write.Content) == s.Write.Content || s.Write.Mode != 0o644 {
				t.Fatalf("%s writes %q", s.Name, s.Write.Content)
			}
		}
	}
	rec := stepRecord(t, steps)
	wantRec := &LinuxLockRecord{Version: 1, CommandID: "lock-1", Message: "Locked.\n",
		Accounts: []LockedAccount{
			{Name: "alice", UID: 1000, PreviousExpiry: -1, Previous: "password usable, no expiry"},
			{Name: "bob", UID: 1001, WasLocked: true, PreviousExpiry: 30000, Previous: "password locked, expires 2052-02-20"},
		},
		PAMFiles: []LockedPAMFile{
			{Path: "/etc/pam.d/common-account", Real: "/etc/pam.d/common-account", Lines: blockLines(), SHA256Before: digest(pristineCommonAccount)},
			{Path: "/etc/pam.d/system-auth", Real: "/etc/authselect/system-auth", Lines: blockLines(), SHA256Before: digest(pristineSystemAuth)},
		},
		CreatedFiles: []string{"/etc/nologin"},
	}
	if a, b := jsonOf(t, rec), jsonOf(t, wantRec); a != b {
		t.Fatalf("record\n%s\nwant\n%s", a, b)
	}
	if strings.Contains(jsonOf(t, rec), "$") {
		t.Fatal("the record holds a hash")
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLinuxLockReassert: with a record, the lock re-applies itself, leaves
// out what is already in place, and keeps every recorded entry as it was.
func TestLinuxLockReassert(t *testing.T) {
	first := lockFactsFixture()
	first.NologinPresent = nil
	rec := stepRecord(t, LinuxLockPlan(first, "Locked.\n"))
	locked := func() LinuxFacts {
		f := lockFactsFixture()
		f.CommandID = "lock-2" // a later lock does not rename the record
		f.Record = rec
		f.Shadow = map[string]accounts.ShadowState{
			"alice": {Name: "alice", Locked: true, ExpireDays: 1},
			"bob":   {Name: "bob", Locked: true, ExpireDays: 1},
		}
		for i := range f.PAM {
			f.PAM[i].Content = pamlock.Insert(f.PAM[i].Content)
		}
		f.NologinPresent = nil // after a reboot
		f.DirectorySessions = nil
		return f
	}
	cases := []struct {
		name   string
		facts  func() LinuxFacts
		steps  []string // step names, sessions left out
		record func(LinuxLockRecord) LinuxLockRecord
	}{
		{"after a reboot", locked, []string{"block-logins:/etc/nologin", "block-logins:/run/nologin", "lock-account:alice", "lock-account:bob"}, nil},
		{"authselect rewrote system-auth", func() LinuxFacts {
			f := locked()
			f.PAM[1].Content = pristineSystemAuth
			f.NologinPresent = map[string]bool{"/etc/nologin": true, "/run/nologin": true}
			return f
		}, []string{"pam-account-deny:/etc/pam.d/system-auth", "lock-account:alice", "lock-account:bob"}, nil},
		{"an account created since", func() LinuxFacts {
			f := locked()
			f.Humans = append(f.Humans, accounts.Account{Name: "dan", UID: 1002, Shell: "/bin/bash"})
			f.Shadow["dan"] = accounts.ShadowState{Name: "dan", ExpireDays: 40000}
			return f
		}, []string{"lock-record", "block-logins:/etc/nologin", "block-logins:/run/nologin", "lock-account:alice", "lock-account:bob", "lock-account:dan"},
			func(r LinuxLockRecord) LinuxLockRecord {
				r.Accounts = append(r.Accounts, LockedAccount{Name: "dan", UID: 1002, PreviousExpiry: 40000, Previous: "password usable, expires 2079-07-08"})
				return r
			}},
		{"a file that existed at the first lock is created now", func() LinuxFacts {
			f := locked()
			f.Record = stepRecord(t, LinuxLockPlan(lockFactsFixture(), "Locked.\n")) // /run/nologin was there
			return f
		}, []string{"lock-record", "block-logins:/etc/nologin", "block-logins:/run/nologin", "lock-account:alice", "lock-account:bob"},
			func(r LinuxLockRecord) LinuxLockRecord { return r }}, // now both files are the lock's, as in rec
		{"record unreadable: lock anyway, never overwrite it", func() LinuxFacts {
			f := locked()
			f.Record, f.RecordErr = nil, "lock record unreadable: unexpected end of JSON input"
			return f
		}, []string{"block-logins:/etc/nologin", "block-logins:/run/nologin", "lock-account:alice", "lock-account:bob"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.facts()
			steps := LinuxLockPlan(f, "Locked.\n")
			var got []string
			for _, s := range steps {
				if !strings.Contains(s.Name, "sessions") && !strings.HasPrefix(s.Name, "kill-processes") {
					got = append(got, s.Name)
				}
			}
			if !slices.Equal(got, tc.steps) {
				t.Fatalf("steps %v, want %v", got, tc.steps)
			}
			newRec := stepRecord(t, steps)
			if tc.record == nil {
				if newRec != nil {
					t.Fatalf("record rewritten: %+v", newRec)
				}
				return
			}
			if a, b := jsonOf(t, newRec), jsonOf(t, tc.record(*rec)); a != b {
				t.Fatalf("record\n%s\nwant\n%s", a, b)
			}
		})
	}
	// The fixture's record was not modified through a shared slice.
	if len(rec.Accounts) != 2 || rec.CommandID != "lock-1" {
		t.Fatalf("original record changed: %+v", rec)
	}
}

func TestLinuxLockPlanWithoutPAMModulesOrStateDir(t *testing.T) {
	f := lockFactsFixture()
	f.PAMModulesMissing = []string{"pam_localuser.so"}
	f.StateDir = ""
	steps := LinuxLockPlan(f, "")
	for _, s := range steps {
		if strings.HasPrefix(s.Name, "pam-") || s.Name == "lock-record" {
			t.Fatalf("step %s planned: a rule naming a missing module would refuse root too", s.Name)
		}
	}
	if steps[0].Name != "block-logins:/etc/nologin" || steps[0].Write.Content != DefaultLockMessage {
		t.Fatalf("first step %+v", steps[0])
	}
}

func TestLinuxUnlockPlan(t *testing.T) {
	rec := &LinuxLockRecord{Version: 1, CommandID: "lock-1", Message: "Locked.\n",
		Accounts: []LockedAccount{
			{Name: "alice", UID: 1000, PreviousExpiry: -1},
			{Name: "bob", UID: 1001, WasLocked: true, PreviousExpiry: 30000},
			{Name: "erin", UID: 1002, HadEmptyPassword: true, PreviousExpiry: -1},
			{Name: "frank", UID: 1003, PreviousExpiry: -1}, // deleted since
			{Name: "gina", UID: 1004, PreviousExpiry: 20000},
		},
		CreatedFiles: []string{"/etc/nologin", "/run/nologin"},
	}
	f := lockFactsFixture()
	f.Record = rec
	f.Shadow = map[string]accounts.ShadowState{
		"alice": {Name: "alice", Locked: true, ExpireDays: 1},
		"bob":   {Name: "bob", Locked: true, ExpireDays: 1},
		"erin":  {Name: "erin", Locked: true, ExpireDays: 1},
		"gina":  {Name: "gina", ExpireDays: 20000}, // already as before
	}
	f.PAM[0].Content = pamlock.Insert(f.PAM[0].Content)
	f.NologinPresent = map[string]bool{"/etc/nologin": true} // /run cleared by a reboot
	steps, final, err := LinuxUnlockPlan(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"restore-account:alice: /usr/sbin/usermod --unlock --expiredate  alice",
		"restore-account:bob: /usr/sbin/usermod --expiredate 30000 bob",
		"restore-account:erin: /usr/sbin/usermod --password  --expiredate  erin",
		"remove-pam-account-deny:/etc/pam.d/common-account: write /etc/pam.d/common-account",
		"remove-file:/etc/nologin: /usr/bin/rm -f -- /etc/nologin",
	}
	if got := names(steps); !slices.Equal(got, want) {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(steps[0].Argv, []string{"/usr/sbin/usermod", "--unlock", "--expiredate", "", "alice"}) {
		t.Fatalf("alice argv %q", steps[0].Argv)
	}
	if steps[3].Write.Content != pristineCommonAccount {
		t.Fatalf("PAM restored to %q", steps[3].Write.Content)
	}
	if got := names(final); !slices.Equal(got, []string{"remove-lock-record: /usr/bin/rm -f -- /var/lib/lanyard/" + LinuxLockRecordName}) {
		t.Fatalf("final %v", got)
	}

	// Fake root: usermod works on the root's files.
	f.Root = "/tmp/root"
	steps, _, _ = LinuxUnlockPlan(f)
	if !slices.Equal(steps[1].Argv, []string{"/usr/sbin/usermod", "--prefix", "/tmp/root", "--expiredate", "30000", "bob"}) ||
		steps[4].Argv[3] != "/tmp/root/etc/nologin" {
		t.Fatalf("fake-root steps %v", names(steps))
	}

	for _, tc := range []struct {
		name      string
		recordErr string
		want      string
	}{
		{"no record", "", "/var/lib/lanyard/" + LinuxLockRecordName + " does not exist"},
		{"unreadable record", "lock record x unreadable: bad JSON", "bad JSON"},
	} {
		f := lockFactsFixture()
		f.RecordErr = tc.recordErr
		_, _, err := LinuxUnlockPlan(f)
		if !errors.Is(err, ErrNoLockRecord) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

// fakeRoot writes files under a temporary root.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for n, c := range files {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestVerifyLinuxLock(t *testing.T) {
	lockedShadow := "alice:!$y$hash:20000:0:99999:7::1:\nbob:!$y$hash:20000:0:99999:7::1:\n"
	cases := []struct {
		name   string
		shadow string
		pam    string
		record string
		edit   func(*LinuxFacts)
		bad    map[string]string // check name → Observed
	}{
		{name: "locked", shadow: lockedShadow, pam: pamlock.Insert(pristineCommonAccount), record: `{"version":1}`},
		{name: "expiry missing", shadow: "alice:!$y$hash:20000:0:99999:7:::\nbob:!$y$hash:20000:0:99999:7::1:\n",
			pam: pamlock.Insert(pristineCommonAccount), record: `{"version":1}`,
			bad: map[string]string{"account-locked:alice": "password locked, no expiry"}},
		{name: "rule edited away", shadow: lockedShadow, pam: pristineCommonAccount, record: `{"version":1}`,
			bad: map[string]string{"pam-account-deny:/etc/pam.d/common-account": "no lock rule"}},
		{name: "rule after a sufficient line", shadow: lockedShadow, pam: "account sufficient pam_permit.so\n" + pamlock.Block(), record: `{"version":1}`,
			bad: map[string]string{"pam-account-deny:/etc/pam.d/common-account": "lock rule present but after other account lines"}},
		{name: "modules missing", shadow: lockedShadow, pam: pamlock.Insert(pristineCommonAccount), record: `{"version":1}`,
			edit: func(f *LinuxFacts) { f.PAMModulesMissing = []string{"pam_localuser.so"} },
			bad:  map[string]string{"pam-account-deny:/etc/pam.d/common-account": "pam_localuser.so not installed: lock rule not added"}},
		{name: "no PAM include", shadow: lockedShadow, record: `{"version":1}`,
			edit: func(f *LinuxFacts) { f.PAM = nil },
			bad:  map[string]string{"pam-account-deny": "none of /etc/pam.d/common-account, /etc/pam.d/system-auth, /etc/pam.d/password-auth exists: directory accounts are not refused"}},
		{name: "record missing", shadow: lockedShadow, pam: pamlock.Insert(pristineCommonAccount),
			bad: map[string]string{"lock-record": "missing"}},
		{name: "shadow entry missing", shadow: "alice:!$y$hash:20000:0:99999:7::1:\n", pam: pamlock.Insert(pristineCommonAccount), record: `{"version":1}`,
			bad: map[string]string{"account-locked:bob": "no shadow entry"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"etc/shadow": tc.shadow}
			if tc.pam != "" {
				files["etc/pam.d/common-account"] = tc.pam
			}
			if tc.record != "" {
				files["state/"+LinuxLockRecordName] = tc.record
			}
			root := fakeRoot(t, files)
			f := linuxFacts(root)
			f.StateDir = filepath.Join(root, "state")
			f.PAM = []PAMFile{{Path: "/etc/pam.d/common-account", Real: "/etc/pam.d/common-account"}}
			if tc.edit != nil {
				tc.edit(&f)
			}
			checks := VerifyLinuxLock(f)
			wantNames := []string{"lock-record", "account-locked:alice", "account-locked:bob", "pam-account-deny:/etc/pam.d/common-account"}
			if f.PAM == nil {
				wantNames[3] = "pam-account-deny"
			}
			if got := checkNames(checks); !slices.Equal(got, wantNames) {
				t.Fatalf("checks %v, want %v", got, wantNames)
			}
			for _, c := range checks {
				obs, isBad := tc.bad[c.Name]
				if c.OK == isBad || (isBad && c.Observed != obs) || c.Expected == "" || c.Observed == "" {
					t.Errorf("check %+v (want bad=%v %q)", c, isBad, obs)
				}
				if strings.Contains(c.Observed, "$y$") {
					t.Errorf("check %s shows a hash", c.Name)
				}
			}
		})
	}
}

func TestVerifyLinuxUnlock(t *testing.T) {
	rec := &LinuxLockRecord{Version: 1,
		Accounts: []LockedAccount{
			{Name: "alice", PreviousExpiry: -1, Previous: "password usable, no expiry"},
			{Name: "bob", WasLocked: true, PreviousExpiry: 30000, Previous: "password locked, expires 2052-02-20"},
			{Name: "frank", PreviousExpiry: -1, Previous: "password usable, no expiry"},
		},
		PAMFiles:     []LockedPAMFile{{Path: "/etc/pam.d/common-account", Real: "/etc/pam.d/common-account", SHA256Before: digest(pristineCommonAccount)}},
		CreatedFiles: []string{"/etc/nologin"},
	}
	restored := "alice:$y$hash:20000:0:99999:7:::\nbob:!$y$hash:20000:0:99999:7::30000:\n"
	cases := []struct {
		name   string
		files  map[string]string
		bad    map[string]string
		pamObs string
	}{
		{"restored", map[string]string{"etc/shadow": restored, "etc/pam.d/common-account": pristineCommonAccount}, nil,
			"no lock rule; identical to before the lock"},
		{"other lines changed meanwhile", map[string]string{"etc/shadow": restored, "etc/pam.d/common-account": pristineCommonAccount + "account optional pam_x.so\n"}, nil,
			"no lock rule; lines other than the agent's changed since the lock (not by the agent)"},
		{"alice still locked, rule and nologin left", map[string]string{
			"etc/shadow":               "alice:!$y$hash:20000:0:99999:7::1:\nbob:!$y$hash:20000:0:99999:7::30000:\n",
			"etc/pam.d/common-account": pamlock.Insert(pristineCommonAccount), "etc/nologin": "Locked.\n"},
			map[string]string{"account-restored:alice": "password locked, expires 1970-01-02",
				"pam-account-deny-removed:/etc/pam.d/common-account": "lock rule first in the account stack", "file-removed:/etc/nologin": "present"}, ""},
		{"bob unlocked by mistake", map[string]string{
			"etc/shadow":               "alice:$y$hash:20000:0:99999:7:::\nbob:$y$hash:20000:0:99999:7::30000:\n",
			"etc/pam.d/common-account": pristineCommonAccount},
			map[string]string{"account-restored:bob": "password usable, expires 2052-02-20"}, "no lock rule; identical to before the lock"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t, tc.files)
			f := linuxFacts(root)
			f.Record = rec
			f.PAM = []PAMFile{{Path: "/etc/pam.d/common-account", Real: "/etc/pam.d/common-account"}}
			checks := VerifyLinuxUnlock(f)
			want := []string{"account-restored:alice", "account-restored:bob", "account-restored:frank",
				"pam-account-deny-removed:/etc/pam.d/common-account", "file-removed:/etc/nologin"}
			if got := checkNames(checks); !slices.Equal(got, want) {
				t.Fatalf("checks %v", got)
			}
			for _, c := range checks {
				obs, isBad := tc.bad[c.Name]
				if c.OK == isBad || (isBad && c.Observed != obs) {
					t.Errorf("check %+v (want bad=%v %q)", c, isBad, obs)
				}
				if c.Name == "pam-account-deny-removed:/etc/pam.d/common-account" && tc.pamObs != "" && c.Observed != tc.pamObs {
					t.Errorf("PAM observed %q, want %q", c.Observed, tc.pamObs)
				}
				if c.Name == "account-restored:frank" && !strings.Contains(c.Observed, "no longer exists") {
					t.Errorf("frank: %+v", c)
				}
			}
		})
	}
}

func TestCheckSessionsEnded(t *testing.T) {
	status := func(uid, state string) string {
		return "Name:\tbash\nState:\t" + state + "\nUid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid + "\n"
	}
	root := fakeRoot(t, map[string]string{
		"proc/1/status":   status("0", "S (sleeping)"),
		"proc/42/status":  status("1000", "S (sleeping)"),
		"proc/43/status":  status("1001", "Z (zombie)"),
		"proc/44/status":  status("70001", "R (running)"),
		"proc/45/status":  status("1002", "S (sleeping)"), // not a session user
		"proc/46/status":  status("70001", "S (sleeping)"),
		"proc/self/ignor": "",
	})
	f := linuxFacts(root)
	f.DirectorySessions = []accounts.Account{{Name: "carol", UID: 70001}}
	// carol's processes exit while the check waits.
	go func() {
		os.RemoveAll(filepath.Join(root, "proc", "44"))
		os.RemoveAll(filepath.Join(root, "proc", "46"))
	}()
	// alice's bash never exits: the check gives up at the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	checks := checkSessionsEnded(ctx, f)
	want := map[string]Check{
		"sessions-ended:alice": {Name: "sessions-ended:alice", OK: false, Observed: "1 processes left: bash (pid 42)", Expected: "no process running as alice (UID 1000)"},
		"sessions-ended:bob":   {Name: "sessions-ended:bob", OK: true, Observed: "no process left", Expected: "no process running as bob (UID 1001)"},
		"sessions-ended:carol": {Name: "sessions-ended:carol", OK: true, Observed: "no process left", Expected: "no process running as carol (UID 70001)"},
	}
	if len(checks) != len(want) {
		t.Fatalf("checks %+v", checks)
	}
	for _, c := range checks {
		if c != want[c.Name] {
			t.Errorf("check %+v, want %+v", c, want[c.Name])
		}
	}
}

func checkNames(cs []Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}
