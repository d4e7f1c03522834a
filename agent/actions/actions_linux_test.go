package actions

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/internal/pamlock"
)

// TestLinuxLockOnFakeRoot runs the real lock and unlock plans (ExecRunner,
// real usermod with --prefix, real PAM file edits) against a temporary root
// with its own passwd, shadow and PAM files, then checks the files.
func TestLinuxLockOnFakeRoot(t *testing.T) {
	usermod := allowcmd.First("/usr/sbin/usermod", "/sbin/usermod")
	if usermod == "" {
		t.Skip("usermod not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("usermod --prefix needs root")
	}
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	for _, d := range []string{"etc/pam.d", "etc/authselect", "run", "usr/lib/x86_64-linux-gnu/security"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	const commonAccount = "# here are the per-package modules (the \"Primary\" block)\n" +
		"account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so \naccount\trequisite\t\t\tpam_deny.so\naccount\trequired\t\t\tpam_permit.so\n"
	const systemAuth = "auth required pam_env.so\naccount sufficient pam_localuser.so\naccount required pam_unix.so\n"
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n" +
			"bob:x:1001:1001:Bob:/home/bob:/bin/bash\nsvc:x:999:999::/var/svc:/usr/sbin/nologin\n",
		// bob was locked (and had an expiry) before the lock.
		"etc/shadow": "root:$y$j9T$rootHash:20000:0:99999:7:::\nalice:$y$j9T$aliceHash:20000:0:99999:7:::\n" +
			"bob:!$y$j9T$bobHash:20000:0:99999:7::30000:\nsvc:*:20000:0:99999:7:::\n",
		"etc/group":                  "root:x:0:\nalice:x:1000:\nbob:x:1001:\nsvc:x:999:\n",
		"etc/gshadow":                "root:*::\nalice:!::\nbob:!::\nsvc:!::\n",
		"etc/pam.d/common-account":   commonAccount,
		"etc/authselect/system-auth": systemAuth,
		"usr/lib/x86_64-linux-gnu/security/pam_succeed_if.so": "",
		"usr/lib/x86_64-linux-gnu/security/pam_localuser.so":  "",
	}
	for n, c := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(n, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(root, n), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	// authselect's layout: an absolute link, resolved inside the fake root.
	if err := os.Symlink("/etc/authselect/system-auth", filepath.Join(etc, "pam.d", "system-auth")); err != nil {
		t.Fatal(err)
	}
	realShadow, _ := os.ReadFile("/etc/shadow")
	state := filepath.Join(t.TempDir(), "state")

	p := &LinuxPlanner{Root: root, StateDir: state}
	e := &Executor{Serial: "S1", Planner: p, Runner: ExecRunner{}}
	res := e.Execute(context.Background(), Command{ID: "l", Kind: Lock, TargetSerial: "S1", Message: "locked by IT\n"})
	if res.State != Done {
		t.Fatalf("lock failed: %+v", res)
	}
	wantChecks := []string{"lock-record", "account-locked:alice", "account-locked:bob",
		"pam-account-deny:/etc/pam.d/common-account", "pam-account-deny:/etc/pam.d/system-auth"}
	if got := checkNames(res.Evidence.Checks); !slices.Equal(got, wantChecks) {
		t.Fatalf("checks %v, want %v", got, wantChecks)
	}
	for _, s := range res.Steps {
		if strings.HasPrefix(s.Step.Name, "end-sessions") || strings.HasPrefix(s.Step.Name, "kill-processes") {
			t.Fatalf("session step in a fake-root plan: %v", s.Step)
		}
	}
	for _, f := range []string{"etc/nologin", "run/nologin"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil || string(b) != "locked by IT\n" {
			t.Fatalf("%s = %q, %v", f, b, err)
		}
	}
	fields := shadowFields(t, root)
	for _, u := range []string{"alice", "bob"} {
		f := fields[u]
		if !strings.HasPrefix(f[1], "!") || strings.HasPrefix(f[1], "!!") || f[7] != "1" {
			t.Errorf("%s not locked and expired: %v", u, f)
		}
	}
	for _, u := range []string{"root", "svc"} {
		f := fields[u]
		if strings.HasPrefix(f[1], "!") || f[7] != "" {
			t.Errorf("%s must not be touched: %v", u, f)
		}
	}
	// The rule went into the file behind the link; the link stays a link.
	if st, err := os.Lstat(filepath.Join(etc, "pam.d", "system-auth")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("system-auth is no longer a symlink: %v", err)
	}
	for _, f := range []string{"etc/pam.d/common-account", "etc/authselect/system-auth"} {
		b, _ := os.ReadFile(filepath.Join(root, f))
		if !pamlock.Inspect(string(b)).Holds() {
			t.Fatalf("%s lacks the rule:\n%s", f, b)
		}
	}
	st, err := os.Stat(filepath.Join(state, LinuxLockRecordName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock record: %v %v", st, err)
	}
	rec, err := readLinuxLockRecord(filepath.Join(state, LinuxLockRecordName))
	if err != nil || rec.CommandID != "l" || len(rec.Accounts) != 2 || !rec.Accounts[1].WasLocked || rec.Accounts[1].PreviousExpiry != 30000 ||
		len(rec.PAMFiles) != 2 || rec.PAMFiles[1].Real != "/etc/authselect/system-auth" || !slices.Equal(rec.CreatedFiles, []string{"/etc/nologin", "/run/nologin"}) {
		t.Fatalf("record %+v, %v", rec, err)
	}

	// Unlock restores what the lock changed, from the record.
	res = e.Execute(context.Background(), Command{ID: "u", Kind: Unlock, TargetSerial: "S1"})
	if res.State != Done {
		t.Fatalf("unlock failed: %+v", res)
	}
	for _, c := range res.Evidence.Checks {
		if !c.OK {
			t.Fatalf("unlock check %+v", c)
		}
	}
	fields = shadowFields(t, root)
	if f := fields["alice"]; f[1] != "$y$j9T$aliceHash" || f[7] != "" {
		t.Errorf("alice not restored: %v", f)
	}
	if f := fields["bob"]; f[1] != "!$y$j9T$bobHash" || f[7] != "30000" {
		t.Errorf("bob (locked before the lock) not restored as he was: %v", f)
	}
	for f, want := range map[string]string{"etc/pam.d/common-account": commonAccount, "etc/authselect/system-auth": systemAuth} {
		if b, _ := os.ReadFile(filepath.Join(root, f)); string(b) != want {
			t.Errorf("%s not restored byte for byte:\n%q", f, b)
		}
	}
	for _, f := range []string{"etc/nologin", "run/nologin", filepath.Join(state, LinuxLockRecordName)} {
		if !filepath.IsAbs(f) {
			f = filepath.Join(root, f)
		}
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left after unlock: %v", f, err)
		}
	}
	if res := e.Execute(context.Background(), Command{ID: "u2", Kind: Unlock, TargetSerial: "S1"}); res.State != Failed || !strings.Contains(res.Error, "no lock record") {
		t.Fatalf("unlock without a record: %+v", res)
	}
	if after, _ := os.ReadFile("/etc/shadow"); string(after) != string(realShadow) {
		t.Fatal("the host's /etc/shadow changed")
	}
	// The same accounts are what inventory would call human.
	accts, _, _ := accounts.Local(root)
	if len(accounts.Humans(accts)) != 2 {
		t.Fatal("human accounts mismatch")
	}
}

func shadowFields(t *testing.T, root string) map[string][]string {
	t.Helper()
	shadow, err := os.ReadFile(filepath.Join(root, "etc", "shadow"))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(shadow)), "\n") {
		f := strings.Split(l, ":")
		fields[f[0]] = f
	}
	return fields
}

// TestLUKSEraseOnImage creates a LUKS2 image file, runs the real
// crypto-erase step through ExecRunner and checks no keyslot is left.
func TestLUKSEraseOnImage(t *testing.T) {
	cs := allowcmd.First("/usr/sbin/cryptsetup", "/sbin/cryptsetup")
	if cs == "" {
		t.Skip("cryptsetup not installed (apt-get install cryptsetup-bin)")
	}
	if os.Geteuid() != 0 {
		t.Skip("cryptsetup needs root")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("correct horse battery staple"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx := context.Background()
	if out, err := allowcmd.Run(ctx, cs, "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
		"--pbkdf-force-iterations", "1000", "--key-file", key, img); err != nil {
		t.Skipf("luksFormat not possible here: %v %s", err, out)
	}
	if _, err := allowcmd.Run(ctx, cs, "open", "--test-passphrase", "--key-file", key, img); err != nil {
		t.Fatalf("fresh image does not open: %v", err)
	}
	step := Step{Name: "crypto-erase", Destructive: true, Argv: []string{cs, "luksErase", "--batch-mode", img}}
	e := &Executor{Serial: "S1", Runner: ExecRunner{}, Planner: planFunc(func(Command) []Step { return []Step{step} })}
	res := e.Execute(ctx, Command{ID: "w", Kind: Wipe, TargetSerial: "S1", Confirmed: true})
	if res.State != Done {
		t.Fatalf("erase: %+v", res)
	}
	_, err = allowcmd.Run(ctx, cs, "open", "--test-passphrase", "--key-file", key, img)
	if err == nil || !strings.Contains(err.Error(), "keyslot") {
		t.Fatalf("image still opens after luksErase: %v", err)
	}
}

// TestLinuxLockWithoutStateDir: the machine is still locked, but the lock
// is not done: nothing recorded what an unlock should restore.
func TestLinuxLockWithoutStateDir(t *testing.T) {
	if allowcmd.First("/usr/sbin/usermod", "/sbin/usermod") == "" || os.Geteuid() != 0 {
		t.Skip("needs root and usermod")
	}
	root := fakeRoot(t, map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
		"etc/shadow":  "root:*:20000:0:99999:7:::\nalice:$y$j9T$aliceHash:20000:0:99999:7:::\n",
		"etc/group":   "root:x:0:\nalice:x:1000:\n",
		"etc/gshadow": "root:*::\nalice:!::\n",
	})
	e := &Executor{Serial: "S1", Planner: &LinuxPlanner{Root: root}, Runner: ExecRunner{}}
	res := e.Execute(context.Background(), Command{ID: "l", Kind: Lock, TargetSerial: "S1"})
	if res.State != Failed || !strings.Contains(res.Error, "lock-record") || !strings.Contains(res.Error, "no state directory") {
		t.Fatalf("lock without a state dir: %s %q", res.State, res.Error)
	}
	if f := shadowFields(t, root)["alice"]; !strings.HasPrefix(f[1], "!") || f[7] != "1" {
		t.Fatalf("alice not locked: %v", f)
	}
}
