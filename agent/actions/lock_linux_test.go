package actions

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/pamlock"
)

// The namespace test re-executes the test binary inside
// `unshare --mount --pid --fork --mount-proc`; these variables tell the
// child where its work directory is and which mount namespace it must not
// be in.
const (
	nsWorkEnv      = "LANYARD_LOCK_NS_WORK"
	nsParentMntEnv = "LANYARD_LOCK_NS_PARENT_MNT"
	nsDoneMarker   = "LANYARD-NAMESPACE-LOCK-VERIFIED"
	nsService      = "lanyard-lock-test"
)

// TestLinuxLockInNamespace runs the real lock, a simulated reboot, a
// re-assert and the real unlock as root against a real PAM stack, checked
// with pamtester, inside a private mount and pid namespace: /etc is a copy
// bind-mounted over the real one, /run, /home and /var are fresh tmpfs, so
// the machine's own accounts and files are never touched (the parent
// checks that afterwards).
//
// Users: alice (local, known password), bob (local, locked with an expiry
// before the lock: unlock must leave him so), carol (directory-style,
// served by libnss-extrausers, UID 70001, no shadow entry) and dave
// (directory-style with a low UID 950: refused by pam_localuser alone).
func TestLinuxLockInNamespace(t *testing.T) {
	if work := os.Getenv(nsWorkEnv); work != "" {
		namespaceChild(t, work)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount namespaces, usermod, pamtester as root)")
	}
	for _, tool := range []string{"/usr/bin/pamtester", "/usr/bin/unshare", "/usr/sbin/useradd", "/usr/sbin/chpasswd", "/usr/sbin/usermod", "/usr/bin/pkill"} {
		if _, err := os.Stat(tool); err != nil {
			t.Skipf("%s not installed (Debian: pamtester, util-linux, passwd, procps)", tool)
		}
	}
	if !extrausersInstalled() {
		t.Skip("libnss-extrausers not installed")
	}
	before := hostSnapshot(t)
	selfMnt, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/unshare", "--mount", "--pid", "--fork", "--mount-proc",
		os.Args[0], "-test.run=^TestLinuxLockInNamespace$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), nsWorkEnv+"="+work, nsParentMntEnv+"="+selfMnt)
	out, runErr := cmd.CombinedOutput()
	t.Logf("namespace child output:\n%s", out)
	after := hostSnapshot(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("the host changed: %s was %q, now %q", k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("the host changed: %s appeared (%q)", k, v)
		}
	}
	if runErr != nil {
		t.Fatalf("namespace child failed: %v", runErr)
	}
	if !bytes.Contains(out, []byte(nsDoneMarker)) || !bytes.Contains(out, []byte("--- PASS: TestLinuxLockInNamespace")) {
		t.Fatal("namespace child did not run to the end")
	}
}

func extrausersInstalled() bool {
	for _, pat := range []string{"/usr/lib/libnss_extrausers.so.2", "/lib/libnss_extrausers.so.2",
		"/usr/lib/*-linux-gnu/libnss_extrausers.so.2", "/lib/*-linux-gnu/libnss_extrausers.so.2"} {
		if m, _ := filepath.Glob(pat); len(m) > 0 {
			return true
		}
	}
	return false
}

// hostSnapshot is what the namespace test must leave untouched on the host.
func hostSnapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	file := func(p string) {
		st, err := os.Lstat(p)
		if err != nil {
			out[p] = "absent"
			return
		}
		if st.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			out[p] = "symlink " + l
			return
		}
		b, _ := os.ReadFile(p)
		out[p] = fmt.Sprintf("%v %x", st.Mode(), b)
	}
	for _, p := range []string{"/etc/shadow", "/etc/passwd", "/etc/group", "/etc/gshadow", "/etc/nsswitch.conf",
		"/etc/nologin", "/run/nologin", "/var/lib/extrausers", "/etc/subuid", "/etc/subgid"} {
		file(p)
	}
	for _, d := range []string{"/etc/pam.d", "/home", "/var/lib/extrausers", "/var/mail"} {
		entries, _ := os.ReadDir(d)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
			if d == "/etc/pam.d" {
				file(filepath.Join(d, e.Name()))
			}
		}
		out["listing "+d] = strings.Join(names, " ")
	}
	return out
}

// namespaceChild is the test body; it runs as PID 1 of a new pid namespace
// in a new mount namespace, and refuses to start otherwise.
func namespaceChild(t *testing.T, work string) {
	if os.Getpid() != 1 {
		t.Fatalf("not in a new pid namespace (pid %d): refusing to touch accounts", os.Getpid())
	}
	if mnt, err := os.Readlink("/proc/self/ns/mnt"); err != nil || mnt == os.Getenv(nsParentMntEnv) {
		t.Fatalf("not in a new mount namespace (%s, %v): refusing to touch accounts", mnt, err)
	}
	isolate(t, work)
	ctx := context.Background()

	// The machine: users, extrausers, a PAM service using the system-wide
	// includes, and root with a known password (in the copy of /etc).
	run(t, "/usr/sbin/useradd", "-m", "-s", "/bin/bash", "alice")
	run(t, "/usr/sbin/useradd", "-m", "-s", "/bin/bash", "bob")
	if _, err := os.Stat("/home/alice"); err != nil {
		t.Fatalf("useradd -m did not create alice's home on the namespace's /home: %v", err)
	}
	runIn(t, "alice:alice-pw\nbob:bob-pw\nroot:root-pw\n", "/usr/sbin/chpasswd")
	run(t, "/usr/sbin/usermod", "--lock", "--expiredate", "2099-12-31", "bob")
	write(t, "/var/lib/extrausers/passwd", "carol:*:70001:70001:Carol (directory):/home/carol:/bin/bash\n"+
		"dave:*:950:950:Dave (directory, low UID):/home/dave:/bin/bash\n")
	write(t, "/var/lib/extrausers/group", "carol:x:70001:\ndave:x:950:\n")
	write(t, "/etc/pam.d/"+nsService, "auth include common-auth\naccount include common-account\n")
	if out := run(t, "/usr/bin/getent", "passwd", "carol"); !strings.HasPrefix(out, "carol:*:70001:") {
		t.Fatalf("extrausers not active: getent carol = %q", out)
	}
	shadowBefore := readFile(t, "/etc/shadow")
	pamBefore := pamSnapshot(t)

	type pamCase struct {
		user, password string
		ops            []string
		pass           bool
	}
	auth := []string{"authenticate", "acct_mgmt"}
	acct := []string{"acct_mgmt"}
	expect := func(stage string, cases []pamCase) {
		t.Helper()
		for _, c := range cases {
			err := pamtest(c.user, c.password, c.ops...)
			if (err == nil) != c.pass {
				t.Errorf("%s: pamtester %s %v: passed=%v, want %v (%v)", stage, c.user, c.ops, err == nil, c.pass, err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	open := []pamCase{
		{"alice", "alice-pw", auth, true},
		{"alice", "wrong", auth, false}, // the stack checks passwords
		{"bob", "bob-pw", auth, false},  // locked before the lock
		{"carol", "", acct, true},
		{"dave", "", acct, true},
		{"root", "root-pw", auth, true},
	}
	locked := []pamCase{
		{"alice", "alice-pw", auth, false},
		{"alice", "", acct, false},
		{"bob", "bob-pw", auth, false},
		{"carol", "", acct, false},
		{"dave", "", acct, false},
		{"nobody-such", "", acct, false},
		{"root", "root-pw", auth, true},
	}
	expect("before the lock", open)

	// Sessions: a process of alice, and one of carol known to logind.
	aliceUID := uidOf(t, "alice")
	sessions := map[string]chan error{
		"alice": startAs(t, aliceUID, aliceUID),
		"carol": startAs(t, 70001, 70001),
	}
	write(t, "/run/systemd/users/70001", "# a logind user record\nNAME=carol\nSTATE=active\n")

	state := filepath.Join(work, "state")
	exe := &Executor{Serial: "NS-SERIAL", Planner: &LinuxPlanner{Root: "/", StateDir: state}, Runner: ExecRunner{}}
	lock := Command{ID: "lock-ns", Kind: Lock, TargetSerial: "NS-SERIAL", Message: "Locked by IT (namespace test).\n"}
	res := exe.Execute(ctx, lock)
	requireDone(t, "lock", res, "lock-record", "account-locked:alice", "account-locked:bob",
		"pam-account-deny:/etc/pam.d/common-account", "sessions-ended:alice", "sessions-ended:carol")
	for who, done := range sessions {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s's process exited cleanly, want killed", who)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s's process still runs after the lock", who)
		}
	}
	recordPath := filepath.Join(state, LinuxLockRecordName)
	if st, err := os.Stat(recordPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock record %v %v", st, err)
	}
	record := readFile(t, recordPath)
	expect("after the lock", locked)

	// A reboot: systemd starts with an empty /run and
	// systemd-user-sessions deletes /etc/nologin.
	if err := syscall.Unmount("/run", syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, "/run")
	if err := os.Remove("/etc/nologin"); err != nil {
		t.Fatal(err)
	}
	expect("after a reboot", locked)

	// The agent re-asserts the lock at start: idempotent, record kept.
	lock.Reassert = true
	res = exe.Execute(ctx, lock)
	requireDone(t, "re-assert", res, "lock-record", "account-locked:alice")
	for _, s := range res.Steps {
		if s.Step.Name == "lock-record" || strings.HasPrefix(s.Step.Name, "pam-") {
			t.Errorf("re-assert ran %s: the record and the PAM rule were in place", s.Step.Name)
		}
	}
	if got := readFile(t, recordPath); got != record {
		t.Fatalf("re-assert changed the record:\n%s\nwas\n%s", got, record)
	}
	if n := strings.Count(readFile(t, "/etc/pam.d/common-account"), pamlock.Begin); n != 1 {
		t.Fatalf("common-account holds the rule %d times after the re-assert", n)
	}
	for _, p := range []string{"/etc/nologin", "/run/nologin"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("re-assert did not write %s again: %v", p, err)
		}
	}
	expect("after the re-assert", locked)

	// Unlock restores exactly what the lock changed.
	res = exe.Execute(ctx, Command{ID: "unlock-ns", Kind: Unlock, TargetSerial: "NS-SERIAL"})
	requireDone(t, "unlock", res, "account-restored:alice", "account-restored:bob",
		"pam-account-deny-removed:/etc/pam.d/common-account", "file-removed:/etc/nologin", "file-removed:/run/nologin")
	expect("after the unlock", open)
	if got := pamSnapshot(t); !maps.Equal(got, pamBefore) {
		t.Fatalf("/etc/pam.d differs from before the lock:\n%v\nwas\n%v", got, pamBefore)
	}
	if got := readFile(t, "/etc/shadow"); got != shadowBefore {
		sh, _ := accounts.ReadShadowStates("/")
		t.Fatalf("/etc/shadow differs from before the lock (alice: %s, bob: %s)", sh["alice"].Describe(), sh["bob"].Describe())
	}
	for _, p := range []string{"/etc/nologin", "/run/nologin", recordPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after the unlock: %v", p, err)
		}
	}
	res = exe.Execute(ctx, Command{ID: "unlock-again", Kind: Unlock, TargetSerial: "NS-SERIAL"})
	if res.State != Failed || !strings.Contains(res.Error, "no lock record") {
		t.Fatalf("unlock without a record: %s %q", res.State, res.Error)
	}
	fmt.Println(nsDoneMarker)
}

// isolate makes every path the test writes private to this namespace and
// proves it before anything is written.
func isolate(t *testing.T, work string) {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	etc := filepath.Join(work, "etc")
	run(t, "/bin/cp", "-a", "/etc", etc)
	tok := make([]byte, 16)
	rand.Read(tok)
	sentinel := hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(etc, ".lanyard-ns-sentinel"), []byte(sentinel), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(etc, "/etc", "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over /etc: %v", etc, err)
	}
	if b, err := os.ReadFile("/etc/.lanyard-ns-sentinel"); err != nil || string(b) != sentinel {
		t.Fatalf("/etc is not the private copy (%v): refusing to go on", err)
	}
	for _, d := range []string{"/run", "/home", "/var"} {
		mountTmpfs(t, d)
	}
	for _, d := range []string{"/var/lib/extrausers", "/var/log", "/var/mail", "/var/spool", "/run/lock"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("/run", "/var/run")
	os.Symlink("/run/lock", "/var/lock")
	nss := readFile(t, "/etc/nsswitch.conf")
	var lines []string
	for _, l := range strings.Split(nss, "\n") {
		switch {
		case strings.HasPrefix(l, "passwd:"):
			l = "passwd: files extrausers"
		case strings.HasPrefix(l, "group:"):
			l = "group: files extrausers"
		case strings.HasPrefix(l, "shadow:"):
			l = "shadow: files"
		}
		lines = append(lines, l)
	}
	write(t, "/etc/nsswitch.conf", strings.Join(lines, "\n"))
}

func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("tmpfs on %s: %v", dir, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Type != 0x01021994 { // TMPFS_MAGIC
		t.Fatalf("%s is not a fresh tmpfs (%x, %v): refusing to go on", dir, st.Type, err)
	}
}

func pamtest(user, password string, ops ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/pamtester", append([]string{nsService, user}, ops...)...)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startAs starts a long-running process as uid and returns a channel that
// receives its exit.
func startAs(t *testing.T, uid, gid int) chan error {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return done
}

func uidOf(t *testing.T, name string) int {
	t.Helper()
	accts, _, err := accounts.Local("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accts {
		if a.Name == name {
			return a.UID
		}
	}
	t.Fatalf("no account %s", name)
	return 0
}

func requireDone(t *testing.T, what string, res Result, names ...string) {
	t.Helper()
	if res.State != Done || res.Evidence == nil {
		t.Fatalf("%s: %s %q\nsteps: %+v\nchecks: %+v", what, res.State, res.Error, res.Steps, evidenceChecks(res))
	}
	got := checkNames(res.Evidence.Checks)
	for _, n := range names {
		if !slices.Contains(got, n) {
			t.Fatalf("%s: no check %s in %v", what, n, got)
		}
	}
	for _, c := range res.Evidence.Checks {
		t.Logf("%s evidence: %s ok=%v observed=%q expected=%q", what, c.Name, c.OK, c.Observed, c.Expected)
		if !c.OK || strings.Contains(c.Observed, "$") {
			t.Fatalf("%s: check %+v", what, c)
		}
	}
	var ran []string
	for _, s := range res.Steps {
		ran = append(ran, s.Step.Name+"="+string(s.Status))
	}
	t.Logf("%s steps: %s", what, strings.Join(ran, " "))
}

func evidenceChecks(res Result) []Check {
	if res.Evidence == nil {
		return nil
	}
	return res.Evidence.Checks
}

func pamSnapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir("/etc/pam.d")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join("/etc/pam.d", e.Name())
		st, _ := os.Lstat(p)
		out[e.Name()] = fmt.Sprintf("%v %s", st.Mode(), readFile(t, p))
	}
	return out
}

func run(t *testing.T, argv ...string) string { t.Helper(); return runIn(t, "", argv...) }

func runIn(t *testing.T, stdin string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v: %s", argv, err, out)
	}
	return string(out)
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
