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
)

const (
	domainRP = "{A4C1E7B2-5D3F-4E8A-9B6C-1F0E2D7A3B95}"
	entraRP1 = "{E1D2C3B4-A596-4877-8899-AABBCCDDEEFF}" // escrowed
	entraRP2 = "{0F1E2D3C-4B5A-4968-8776-655443322110}" // not escrowed
)

func stepLines(dir string, steps []Step) []string {
	var out []string
	for _, s := range steps {
		l := s.String()
		if dir != "" {
			l = strings.ReplaceAll(l, dir, "{dir}")
		}
		out = append(out, l)
	}
	return out
}

const (
	secedit   = `C:\Windows\System32\secedit.exe`
	configure = secedit + ` /configure /db {dir}/lanyard-rights.sdb /cfg {dir}/%s /overwrite /areas USER_RIGHTS /log {dir}/lanyard-rights.log /quiet`
	restart   = `restart: C:\Windows\System32\shutdown.exe /r /f /t 15 /c Locked by IT`
)

// TestWindowsLockSteps pins each machine's lock plan: the record first,
// accounts, rights before logoff, forced recovery only with an escrowed
// recovery password, the restart last and only as Final.
func TestWindowsLockSteps(t *testing.T) {
	lockCfg := strings.Replace(configure, "%s", "lock-rights.inf", 1)
	cases := []struct {
		name     string
		machine  string
		escrowed []string
		want     []string
		final    []string
		// the deny values the rights template writes
		interactive, remote []string
	}{
		{
			name: "standalone: two local people", machine: "standalone",
			want: []string{
				"write-lock-record: write {dir}/windows-lock.json",
				`disable-account:alice: C:\Windows\System32\net.exe user alice /active:no`,
				`disable-account:bob: C:\Windows\System32\net.exe user bob /active:no`,
				"write-rights-template: write {dir}/lock-rights.inf",
				"deny-logon-rights: " + lockCfg,
				`log-off-session:1: C:\Windows\System32\logoff.exe 1`,
				`log-off-session:2: C:\Windows\System32\logoff.exe 2`,
			},
			final:       []string{restart},
			interactive: []string{"Guest", "*S-1-5-11", "*S-1-5-32-546"},
			remote:      []string{"*S-1-5-11", "*S-1-5-32-546"},
		},
		{
			name: "domain: no local person, escrowed recovery password", machine: "domain", escrowed: []string{strings.ToLower(strings.Trim(domainRP, "{}"))},
			want: []string{
				"write-lock-record: write {dir}/windows-lock.json",
				"write-rights-template: write {dir}/lock-rights.inf",
				"deny-logon-rights: " + lockCfg,
				`log-off-session:1: C:\Windows\System32\logoff.exe 1`,
				`log-off-session:3: C:\Windows\System32\logoff.exe 3`,
				`force-bitlocker-recovery:C:: C:\Windows\System32\manage-bde.exe -forcerecovery C:`,
			},
			final:       []string{restart},
			interactive: []string{"Guest", "*S-1-5-11", "*S-1-5-32-546"},
			remote:      []string{"*S-1-5-21-2718281828-3141592653-1618033988-1120", "*S-1-5-11", "*S-1-5-32-546"},
		},
		{
			name: "domain: recovery password not escrowed", machine: "domain", escrowed: []string{"{00000000-0000-0000-0000-000000000000}"},
			want: []string{
				"write-lock-record: write {dir}/windows-lock.json",
				"write-rights-template: write {dir}/lock-rights.inf",
				"deny-logon-rights: " + lockCfg,
				`log-off-session:1: C:\Windows\System32\logoff.exe 1`,
				`log-off-session:3: C:\Windows\System32\logoff.exe 3`,
			},
			final:       []string{restart},
			interactive: []string{"Guest", "*S-1-5-11", "*S-1-5-32-546"},
			remote:      []string{"*S-1-5-21-2718281828-3141592653-1618033988-1120", "*S-1-5-11", "*S-1-5-32-546"},
		},
		{
			name: "entra: one of two recovery passwords escrowed", machine: "entra", escrowed: []string{entraRP1},
			want: []string{
				"write-lock-record: write {dir}/windows-lock.json",
				"write-rights-template: write {dir}/lock-rights.inf",
				"deny-logon-rights: " + lockCfg,
				`log-off-session:1: C:\Windows\System32\logoff.exe 1`,
				`log-off-session:2: C:\Windows\System32\logoff.exe 2`,
				`force-bitlocker-recovery:C:: C:\Windows\System32\manage-bde.exe -forcerecovery C:`,
			},
			final:       []string{restart},
			interactive: []string{"Guest", "*S-1-5-11", "*S-1-5-32-546"},
			remote:      []string{"*S-1-5-11", "*S-1-5-32-546"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := newTestWinPlanner(t, newFakeWindows(t, tc.machine, "before"), dir)
			plan, err := p.Plan(context.Background(), Command{ID: "lock-1", Kind: Lock, EscrowedProtectors: tc.escrowed, Message: "Locked by IT"})
			if err != nil {
				t.Fatal(err)
			}
			if got := stepLines(dir, plan.Steps); !slices.Equal(got, tc.want) {
				t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if got := stepLines(dir, plan.Final); !slices.Equal(got, tc.final) || plan.FinalAction != "restart" {
				t.Fatalf("final %v (%q), want %v", got, plan.FinalAction, tc.final)
			}
			if plan.Verify == nil {
				t.Fatal("lock plan without verification")
			}
			tmpl, err := parsePrivilegeRights([]byte(plan.Steps[slices.IndexFunc(plan.Steps, func(s Step) bool { return s.Name == "write-rights-template" })].Write.Content))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tmpl[RightDenyInteractive].Members, tc.interactive) || !slices.Equal(tmpl[RightDenyRemoteInteractive].Members, tc.remote) {
				t.Fatalf("rights template %+v", tmpl)
			}
			if len(tmpl) != 2 {
				t.Fatalf("the template must change only the two deny rights: %+v", tmpl)
			}
		})
	}
}

func lockRecordOf(t *testing.T, plan Plan) winLockRecord {
	t.Helper()
	if len(plan.Steps) == 0 || plan.Steps[0].Name != "write-lock-record" {
		t.Fatalf("first step %v, want the lock record", plan.Steps)
	}
	var r winLockRecord
	if err := json.Unmarshal([]byte(plan.Steps[0].Write.Content), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWindowsLockRecord(t *testing.T) {
	p := newTestWinPlanner(t, newFakeWindows(t, "standalone", "before"), "")
	plan, err := p.Plan(context.Background(), Command{ID: "lock-1", Kind: Lock})
	if err != nil {
		t.Fatal(err)
	}
	r := lockRecordOf(t, plan)
	if r.CommandID != "lock-1" || len(r.DisabledAccounts) != 2 || r.DisabledAccounts[0] != (winAccountRef{"alice", "S-1-5-21-3623811015-3361044348-30300820-1001"}) {
		t.Fatalf("record %+v", r)
	}
	if !slices.Equal(r.PreviousRights[RightDenyInteractive].Members, []string{"Guest"}) || r.PreviousRights[RightDenyRemoteInteractive].Defined {
		t.Fatalf("previous rights %+v", r.PreviousRights)
	}
	if r.BitLocker != nil {
		t.Fatalf("BitLocker recorded on a machine without it: %+v", r.BitLocker)
	}

	p = newTestWinPlanner(t, newFakeWindows(t, "entra", "before"), "")
	plan, err = p.Plan(context.Background(), Command{ID: "lock-2", Kind: Lock, EscrowedProtectors: []string{entraRP1}})
	if err != nil {
		t.Fatal(err)
	}
	r = lockRecordOf(t, plan)
	b := r.BitLocker
	if b == nil || !b.ForcedRecovery || b.Volume != "C:" || !slices.Equal(b.EscrowedProtectorIDs, []string{entraRP1}) ||
		!slices.Equal(b.TPMProtectorsBefore, []winProtectorRef{{"TPM", "{5B7E9A13-2C4D-4E6F-8A0B-1C3D5E7F9A2B}"}}) {
		t.Fatalf("bitlocker record %+v", b)
	}
	if len(r.DisabledAccounts) != 0 {
		t.Fatalf("entra machine: disabled %v", r.DisabledAccounts)
	}
	if strings.Contains(plan.Steps[0].Write.Content, "395120") {
		t.Fatal("the lock record holds a recovery password")
	}
}

type winRun struct {
	res     Result
	commits []Result
	// programs run when the result was committed
	atCommit []string
	ran      []string
}

func executeWin(t *testing.T, f *fakeWindows, p *winPlanner, cmd Command) winRun {
	t.Helper()
	var w winRun
	e := &Executor{Serial: "SN-1", Planner: p, Runner: f, Commit: func(_ context.Context, r Result) error {
		w.commits = append(w.commits, r)
		w.atCommit = f.programsRun()
		return nil
	}}
	cmd.TargetSerial = "SN-1"
	w.res = e.Execute(context.Background(), cmd)
	w.ran = f.programsRun()
	return w
}

func checkOf(t *testing.T, r Result, name string) Check {
	t.Helper()
	if r.Evidence == nil {
		t.Fatal("no evidence")
	}
	for _, c := range r.Evidence.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, r.Evidence.Checks)
	return Check{}
}

// TestWindowsLockExecutor runs the Executor over recorded machines: Done
// only when every fact checks out, the result committed before the
// restart; a lock whose tools did nothing, or with a recovery password the
// server does not hold, is Failed and does not restart.
func TestWindowsLockExecutor(t *testing.T) {
	cases := []struct {
		name     string
		machine  string
		after    string
		escrowed []string
		want     State
		checks   []string
		failing  []string
	}{
		{
			name: "standalone locked", machine: "standalone", after: "locked", want: Done,
			checks: []string{"lock-record", "account-disabled:alice", "account-disabled:bob", "local-accounts-disabled",
				"logon-right-denied:SeDenyInteractiveLogonRight", "logon-right-denied:SeDenyRemoteInteractiveLogonRight",
				"sessions-ended", "bitlocker-recovery:C:"},
		},
		{
			name: "standalone: secedit, logoff and shutdown did nothing", machine: "standalone", after: "noop", want: Failed,
			failing: []string{"logon-right-denied:SeDenyInteractiveLogonRight", "logon-right-denied:SeDenyRemoteInteractiveLogonRight", "sessions-ended"},
		},
		{
			name: "domain locked (zero local accounts)", machine: "domain", after: "locked", escrowed: []string{domainRP}, want: Done,
			checks: []string{"lock-record", "local-accounts-disabled",
				"logon-right-denied:SeDenyInteractiveLogonRight", "logon-right-denied:SeDenyRemoteInteractiveLogonRight",
				"directory-accounts-denied", "sessions-ended", "bitlocker-recovery:C:"},
		},
		{
			name: "domain: zero accounts, and secedit, logoff, forcerecovery and shutdown did nothing", machine: "domain", after: "noop", escrowed: []string{domainRP}, want: Failed,
			failing: []string{"logon-right-denied:SeDenyInteractiveLogonRight", "logon-right-denied:SeDenyRemoteInteractiveLogonRight",
				"directory-accounts-denied", "sessions-ended", "bitlocker-recovery:C:"},
		},
		{
			name: "domain: recovery password not escrowed", machine: "domain", after: "locked", want: Failed,
			failing: []string{"bitlocker-recovery:C:"},
		},
		{
			name: "entra locked", machine: "entra", after: "locked", escrowed: []string{entraRP1}, want: Done,
			checks: []string{"lock-record", "local-accounts-disabled",
				"logon-right-denied:SeDenyInteractiveLogonRight", "logon-right-denied:SeDenyRemoteInteractiveLogonRight",
				"directory-accounts-denied", "sessions-ended", "bitlocker-recovery:C:"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWindows(t, tc.machine, "before", tc.after)
			p := newTestWinPlanner(t, f, "")
			w := executeWin(t, f, p, Command{ID: "lock-1", Kind: Lock, EscrowedProtectors: tc.escrowed, Message: "Locked by IT"})
			if w.res.State != tc.want {
				t.Fatalf("state %s (%s), want %s; checks %+v", w.res.State, w.res.Error, tc.want, w.res.Evidence.Checks)
			}
			restarted := slices.ContainsFunc(w.ran, func(s string) bool { return strings.HasPrefix(s, WinShutdown) })
			if tc.want == Done {
				if got := checkNames(w.res.Evidence.Checks); !slices.Equal(got, tc.checks) {
					t.Fatalf("checks %v, want %v", got, tc.checks)
				}
				if len(w.commits) != 1 || w.commits[0].State != Done || w.commits[0].Evidence.FinalAction != "restart" {
					t.Fatalf("commits %+v", w.commits)
				}
				if slices.ContainsFunc(w.atCommit, func(s string) bool { return strings.HasPrefix(s, WinShutdown) }) || !restarted ||
					!strings.HasPrefix(w.ran[len(w.ran)-1], WinShutdown+" /r") {
					t.Fatalf("restart must run last, after the commit: at commit %v, ran %v", w.atCommit, w.ran)
				}
				return
			}
			if len(w.commits) != 0 || restarted {
				t.Fatalf("a failed lock was committed (%d) or restarted (%v)", len(w.commits), restarted)
			}
			for _, name := range tc.failing {
				if c := checkOf(t, w.res, name); c.OK {
					t.Errorf("check %s passed: %+v", name, c)
				}
				if !strings.Contains(w.res.Error, name) {
					t.Errorf("error %q does not name %s", w.res.Error, name)
				}
			}
			for _, c := range w.res.Evidence.Checks {
				if !c.OK && !slices.Contains(tc.failing, c.Name) {
					t.Errorf("unexpected failing check %+v", c)
				}
			}
		})
	}
}

// TestWindowsLockEvidence pins what the admin reads.
func TestWindowsLockEvidence(t *testing.T) {
	f := newFakeWindows(t, "domain", "before", "locked")
	w := executeWin(t, f, newTestWinPlanner(t, f, ""), Command{ID: "lock-1", Kind: Lock, EscrowedProtectors: []string{domainRP}})
	want := map[string]Check{
		"logon-right-denied:SeDenyRemoteInteractiveLogonRight": {OK: true,
			Observed: "Deny log on through Remote Desktop Services: S-1-5-21-2718281828-3141592653-1618033988-1120, Authenticated Users (S-1-5-11), Guests (S-1-5-32-546)",
			Expected: "includes Authenticated Users (S-1-5-11), Guests (S-1-5-32-546)"},
		"directory-accounts-denied": {OK: true,
			Observed: "joined to domain CONTOSO; its accounts sign in as Authenticated Users, which is denied local and Remote Desktop logon",
			Expected: "domain and Entra ID accounts denied local and Remote Desktop logon"},
		"sessions-ended": {OK: true, Observed: "nobody signed in", Expected: "no interactive or Remote Desktop session signed in"},
		"bitlocker-recovery:C:": {OK: true,
			Observed: "BitLocker on C:, Protection On, no TPM protector: the next boot asks for recovery password " + domainRP + ", which Lanyard holds",
			Expected: "BitLocker off, or recovery forced at next boot with a recovery password escrowed in Lanyard"},
		"local-accounts-disabled": {OK: true,
			Observed: "no enabled local account of a person (0 disabled by this lock; built-in accounts are held by the denied logon rights)",
			Expected: "every local account of a person disabled"},
	}
	for name, c := range want {
		got := checkOf(t, w.res, name)
		got.Name = ""
		if got != c {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, c)
		}
	}
	if w.res.Evidence.Serial != "SN-1" || w.res.Evidence.CommandID != "lock-1" || w.res.Evidence.Kind != Lock {
		t.Fatalf("evidence %+v", w.res.Evidence)
	}

	f = newFakeWindows(t, "domain", "before", "locked")
	w = executeWin(t, f, newTestWinPlanner(t, f, ""), Command{ID: "lock-2", Kind: Lock})
	c := checkOf(t, w.res, "bitlocker-recovery:C:")
	if c.OK || c.Observed != "BitLocker on C:; recovery password not escrowed in Lanyard (recovery password "+domainRP+" unknown to the server); recovery not forced" {
		t.Fatalf("not escrowed: %+v", c)
	}
	f = newFakeWindows(t, "standalone", "before", "noop")
	w = executeWin(t, f, newTestWinPlanner(t, f, ""), Command{ID: "lock-3", Kind: Lock})
	if c := checkOf(t, w.res, "sessions-ended"); c.Observed != "still signed in: alice (session 1, console, Active); bob (session 2, no window station, Disc)" {
		t.Fatalf("sessions left: %+v", c)
	}
	for _, c := range w.res.Evidence.Checks {
		for _, pw := range []string{"684222", "395120"} {
			if strings.Contains(c.Observed, pw) {
				t.Fatalf("a recovery password in the evidence: %+v", c)
			}
		}
	}
}

// TestWindowsReassert: a lock run again (at agent start, or a second lock
// command) keeps the first record, does not restart the machine at every
// boot, and still proves the lock.
func TestWindowsReassert(t *testing.T) {
	dir := t.TempDir()
	f := newFakeWindows(t, "standalone", "before", "locked")
	p := newTestWinPlanner(t, f, dir)
	if w := executeWin(t, f, p, Command{ID: "lock-1", Kind: Lock}); w.res.State != Done {
		t.Fatalf("first lock %s: %s", w.res.State, w.res.Error)
	}
	first, err := os.ReadFile(filepath.Join(dir, winLockRecordName))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []Command{{ID: "lock-1", Kind: Lock, Reassert: true}, {ID: "lock-9", Kind: Lock}} {
		f.set("locked")
		plan, err := p.Plan(context.Background(), cmd)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"write-rights-template: write {dir}/lock-rights.inf", "deny-logon-rights: " + strings.Replace(configure, "%s", "lock-rights.inf", 1)}
		if got := stepLines(dir, plan.Steps); !slices.Equal(got, want) {
			t.Fatalf("%+v: steps\n%s", cmd, strings.Join(got, "\n"))
		}
		if cmd.Reassert == (len(plan.Final) != 0) {
			t.Fatalf("%+v: final %v", cmd, plan.Final)
		}
		w := executeWin(t, f, p, cmd)
		if w.res.State != Done {
			t.Fatalf("%+v: %s %s", cmd, w.res.State, w.res.Error)
		}
		// The record still names the accounts the first lock disabled.
		if c := checkOf(t, w.res, "account-disabled:bob"); !c.OK {
			t.Fatalf("%+v", c)
		}
		now, _ := os.ReadFile(filepath.Join(dir, winLockRecordName))
		if string(now) != string(first) {
			t.Fatalf("lock record overwritten:\n%s\nwas:\n%s", now, first)
		}
	}
	// A re-assert on a machine whose recovery the first lock forced: the
	// record's escrowed ids still count (the client need not repeat them).
	dir = t.TempDir()
	f = newFakeWindows(t, "entra", "before", "locked")
	p = newTestWinPlanner(t, f, dir)
	if w := executeWin(t, f, p, Command{ID: "lock-1", Kind: Lock, EscrowedProtectors: []string{entraRP1}}); w.res.State != Done {
		t.Fatalf("entra lock %s: %s", w.res.State, w.res.Error)
	}
	f.set("locked")
	w := executeWin(t, f, p, Command{ID: "lock-1", Kind: Lock, Reassert: true})
	if w.res.State != Done || !checkOf(t, w.res, "bitlocker-recovery:C:").OK || len(w.commits) != 0 {
		t.Fatalf("entra re-assert %s %s, commits %d", w.res.State, w.res.Error, len(w.commits))
	}

	// A re-assert that must force recovery again (someone re-added the TPM
	// protector) restarts.
	dir = t.TempDir()
	f = newFakeWindows(t, "domain", "before")
	p = newTestWinPlanner(t, f, dir)
	plan, err := p.Plan(context.Background(), Command{ID: "lock-1", Kind: Lock, Reassert: true, EscrowedProtectors: []string{domainRP}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.FinalAction != "restart" || !slices.ContainsFunc(plan.Steps, func(s Step) bool { return s.Name == "force-bitlocker-recovery:C:" }) {
		t.Fatalf("re-forced recovery without restart: %v %q", stepLines(dir, plan.Steps), plan.FinalAction)
	}
}

// TestWindowsUnlock: the unlock restores exactly what the record says,
// proves it, and only then removes the record.
func TestWindowsUnlock(t *testing.T) {
	unlockCfg := strings.Replace(configure, "%s", "unlock-rights.inf", 1)
	cases := []struct {
		name, machine string
		escrowed      []string
		want          []string
		interactive   []string
		remote        []string
		checks        []string
	}{
		{
			name: "standalone", machine: "standalone",
			want: []string{
				`enable-account:alice: C:\Windows\System32\net.exe user alice /active:yes`,
				`enable-account:bob: C:\Windows\System32\net.exe user bob /active:yes`,
				"write-rights-template: write {dir}/unlock-rights.inf",
				"restore-logon-rights: " + unlockCfg,
			},
			interactive: []string{"Guest"}, remote: []string{},
			checks: []string{"account-enabled:alice", "account-enabled:bob", "logon-right-restored:SeDenyInteractiveLogonRight",
				"logon-right-restored:SeDenyRemoteInteractiveLogonRight", "lock-record-removed"},
		},
		{
			name: "domain with forced recovery", machine: "domain", escrowed: []string{domainRP},
			want: []string{
				"write-rights-template: write {dir}/unlock-rights.inf",
				"restore-logon-rights: " + unlockCfg,
				`restore-tpm-protector:C:: C:\Windows\System32\manage-bde.exe -protectors -add C: -tpm`,
			},
			interactive: []string{"Guest"}, remote: []string{"*S-1-5-21-2718281828-3141592653-1618033988-1120"},
			checks: []string{"logon-right-restored:SeDenyInteractiveLogonRight", "logon-right-restored:SeDenyRemoteInteractiveLogonRight",
				"bitlocker-tpm-restored:C:", "lock-record-removed"},
		},
		{
			name: "entra with forced recovery", machine: "entra", escrowed: []string{entraRP1},
			want: []string{
				"write-rights-template: write {dir}/unlock-rights.inf",
				"restore-logon-rights: " + unlockCfg,
				`restore-tpm-protector:C:: C:\Windows\System32\manage-bde.exe -protectors -add C: -tpm`,
			},
			interactive: []string{"Guest"}, remote: []string{},
			checks: []string{"logon-right-restored:SeDenyInteractiveLogonRight", "logon-right-restored:SeDenyRemoteInteractiveLogonRight",
				"bitlocker-tpm-restored:C:", "lock-record-removed"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFakeWindows(t, tc.machine, "before", "locked")
			p := newTestWinPlanner(t, f, dir)
			if w := executeWin(t, f, p, Command{ID: "lock-1", Kind: Lock, EscrowedProtectors: tc.escrowed}); w.res.State != Done {
				t.Fatalf("lock %s: %s", w.res.State, w.res.Error)
			}

			f.set("locked", "unlocked")
			plan, err := p.Plan(context.Background(), Command{ID: "unlock-1", Kind: Unlock})
			if err != nil {
				t.Fatal(err)
			}
			if got := stepLines(dir, plan.Steps); !slices.Equal(got, tc.want) {
				t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(plan.Final) != 0 {
				t.Fatalf("unlock with a final step %v", plan.Final)
			}
			tmpl, err := parsePrivilegeRights([]byte(plan.Steps[slices.IndexFunc(plan.Steps, func(s Step) bool { return s.Name == "write-rights-template" })].Write.Content))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tmpl[RightDenyInteractive].Members, tc.interactive) || !slices.Equal(append([]string{}, tmpl[RightDenyRemoteInteractive].Members...), tc.remote) {
				t.Fatalf("restore template %+v", tmpl)
			}

			// The unlock's tools did nothing: Failed, and the record stays
			// so it can be repeated.
			f.set("locked")
			w := executeWin(t, f, p, Command{ID: "unlock-1", Kind: Unlock})
			if w.res.State != Failed || !strings.Contains(w.res.Error, "logon-right-restored:SeDenyInteractiveLogonRight") {
				t.Fatalf("no-op unlock: %s %s", w.res.State, w.res.Error)
			}
			if c := checkOf(t, w.res, "lock-record-removed"); c.OK || c.Observed != "kept, because the restore is incomplete" {
				t.Fatalf("%+v", c)
			}
			if _, err := os.Stat(filepath.Join(dir, winLockRecordName)); err != nil {
				t.Fatalf("record gone after a failed unlock: %v", err)
			}

			f.set("locked", "unlocked")
			w = executeWin(t, f, p, Command{ID: "unlock-1", Kind: Unlock})
			if w.res.State != Done {
				t.Fatalf("unlock %s: %s %+v", w.res.State, w.res.Error, w.res.Evidence.Checks)
			}
			if got := checkNames(w.res.Evidence.Checks); !slices.Equal(got, tc.checks) {
				t.Fatalf("checks %v, want %v", got, tc.checks)
			}
			if _, err := os.Stat(filepath.Join(dir, winLockRecordName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("record still there: %v", err)
			}

			// Repeated after success: nothing recorded, and the lock's
			// rights are not in place.
			f.set("unlocked")
			w = executeWin(t, f, p, Command{ID: "unlock-1", Kind: Unlock})
			if w.res.State != Done || checkOf(t, w.res, "no-lock-held").Observed != "no lock record; Authenticated Users is not denied logon" {
				t.Fatalf("repeated unlock %s %s %+v", w.res.State, w.res.Error, w.res.Evidence.Checks)
			}
		})
	}
	// No record, yet the deny rights hold Authenticated Users: the previous
	// value is unknown, so the unlock is not Done.
	f := newFakeWindows(t, "standalone", "locked")
	w := executeWin(t, f, newTestWinPlanner(t, f, ""), Command{ID: "unlock-2", Kind: Unlock})
	if w.res.State != Failed || !strings.Contains(w.res.Error, "no-lock-held") {
		t.Fatalf("unlock without record on a locked machine: %s %s", w.res.State, w.res.Error)
	}
}

// TestWindowsWipe: the CSP wipe is committed before the reset, after the
// checks proved the CSP and Windows RE are there.
func TestWindowsWipe(t *testing.T) {
	final := []string{`remote-wipe-csp:doWipeProtected: ` + WinPowerShell + ` -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command ` + wipeProtectedPS}
	cases := []struct {
		name    string
		machine string
		states  []string
		steps   []string
		want    State
		failing string
	}{
		{"entra: Windows RE repaired first", "entra", []string{"before", "wipe-ready"},
			[]string{`enable-winre: C:\Windows\System32\ReAgentc.exe /enable`}, Done, ""},
		{"domain after a forced-recovery lock", "domain", []string{"locked"},
			[]string{`suspend-bitlocker-for-reset:C:: C:\Windows\System32\manage-bde.exe -protectors -disable C: -RebootCount 1`}, Done, ""},
		{"entra: Windows RE cannot be enabled", "entra", []string{"before"},
			[]string{`enable-winre: C:\Windows\System32\ReAgentc.exe /enable`}, Failed, "winre-enabled"},
		{"standalone: never MDM-enrolled", "standalone", []string{"before"}, nil, Failed, "remote-wipe-csp-reachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWindows(t, tc.machine, tc.states...)
			p := newTestWinPlanner(t, f, "")
			plan, err := p.Plan(context.Background(), Command{ID: "wipe-1", Kind: Wipe})
			if err != nil {
				t.Fatal(err)
			}
			if got := stepLines("", plan.Steps); !slices.Equal(got, tc.steps) {
				t.Fatalf("steps %v, want %v", got, tc.steps)
			}
			if got := stepLines("", plan.Final); !slices.Equal(got, final) || plan.FinalAction != "reset" || plan.WipeMethod != WipeRemoteCSP || !plan.Final[0].Destructive {
				t.Fatalf("final %v %q %q", got, plan.FinalAction, plan.WipeMethod)
			}
			if w := executeWin(t, f, p, Command{ID: "wipe-1", Kind: Wipe}); w.res.State != Failed || !strings.Contains(w.res.Error, ErrNotConfirmed.Error()) {
				t.Fatalf("unconfirmed wipe: %s %s", w.res.State, w.res.Error)
			}
			f.set(tc.states...)
			w := executeWin(t, f, p, Command{ID: "wipe-1", Kind: Wipe, Confirmed: true})
			if w.res.State != tc.want {
				t.Fatalf("state %s (%s), want %s", w.res.State, w.res.Error, tc.want)
			}
			wiped := slices.ContainsFunc(w.ran, func(s string) bool { return strings.Contains(s, "doWipeProtectedMethod") })
			if tc.want == Failed {
				if wiped || len(w.commits) != 0 || !strings.Contains(w.res.Error, tc.failing) {
					t.Fatalf("failed wipe: wiped %v commits %d error %q", wiped, len(w.commits), w.res.Error)
				}
				return
			}
			if !slices.Equal(checkNames(w.res.Evidence.Checks), []string{"winre-enabled", "remote-wipe-csp-reachable"}) || w.res.Evidence.WipeMethod != WipeRemoteCSP {
				t.Fatalf("evidence %+v", w.res.Evidence)
			}
			if c := checkOf(t, w.res, "remote-wipe-csp-reachable"); c.Observed != `MDM_RemoteWipe ./Vendor/MSFT/RemoteWipe found in root\cimv2\mdm\dmmap` {
				t.Fatalf("%+v", c)
			}
			if len(w.commits) != 1 || slices.ContainsFunc(w.atCommit, func(s string) bool { return strings.Contains(s, "doWipeProtectedMethod") }) ||
				!wiped || !strings.Contains(w.ran[len(w.ran)-1], "doWipeProtectedMethod") {
				t.Fatalf("the reset must run last, after the commit: at commit %v, ran %v", w.atCommit, w.ran)
			}
		})
	}
}

func TestWindowsRecoveryKeys(t *testing.T) {
	var _ RecoveryKeyReader = (*winPlanner)(nil)
	cases := []struct {
		machine string
		states  []string
		want    []RecoveryKey
		added   bool
	}{
		{"standalone", []string{"before"}, nil, false},
		{"domain", []string{"before"}, []RecoveryKey{{"bitlocker", "C:", domainRP, "684222-387827-504317-205590-550242-015653-540309-695717"}}, false},
		{"entra", []string{"before"}, []RecoveryKey{
			{"bitlocker", "C:", entraRP1, "395120-663531-328207-002398-209495-634458-530079-233948"},
			{"bitlocker", "C:", entraRP2, "489742-303138-084810-287826-107569-485881-583363-125939"},
		}, false},
		{"tpm-only", []string{"before", "added"}, []RecoveryKey{{"bitlocker", "C:", "{C7B6A594-8372-4615-A0B9-C8D7E6F5A4B3}", "026818-087637-321871-131164-611039-639782-162239-610170"}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.machine, func(t *testing.T) {
			f := newFakeWindows(t, tc.machine, tc.states...)
			keys, err := newTestWinPlanner(t, f, "").RecoveryKeys(context.Background())
			if err != nil || !slices.Equal(keys, tc.want) {
				t.Fatalf("keys %+v %v, want %+v", keys, err, tc.want)
			}
			add := []string{WinManageBDE + " -protectors -add C: -RecoveryPassword"}
			if got := f.programsRun(); tc.added != slices.Equal(got, add) || (!tc.added && len(got) != 0) {
				t.Fatalf("changes %v (added %v)", got, tc.added)
			}
		})
	}
	// The add did not produce a password: an error, without any password.
	f := newFakeWindows(t, "tpm-only", "before")
	if keys, err := newTestWinPlanner(t, f, "").RecoveryKeys(context.Background()); err == nil || keys != nil {
		t.Fatalf("keys %v err %v", keys, err)
	}
}

func TestWindowsMessageAndUnsupported(t *testing.T) {
	p := newTestWinPlanner(t, newFakeWindows(t, "standalone", "before"), "")
	plan, err := p.Plan(context.Background(), Command{Kind: Message, Title: "IT", Message: "Please call us"})
	if err != nil || !slices.Equal(stepLines("", plan.Steps), []string{`message: C:\Windows\System32\msg.exe * /TIME:0 IT: Please call us`}) {
		t.Fatalf("%v %v", plan.Steps, err)
	}
	if _, err := p.Plan(context.Background(), Command{Kind: "reboot"}); !errors.Is(err, ErrUnsupported) {
		t.Fatal(err)
	}
	p.stateDir = ""
	if _, err := p.Plan(context.Background(), Command{Kind: Lock}); err == nil {
		t.Fatal("lock without a state dir")
	}
}
