package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/internal/e2etest"
)

// A machine is a private mount and pid namespace that plays a Linux laptop
// for a real lanyard-agent: its own copy of /etc (users alice, with a known
// password, and root; carol served by libnss-extrausers), /home and /var
// from the test's directory, a fresh tmpfs /run, and a fake DMI table
// giving it a firmware serial. Everything that changes accounts runs in it,
// behind a guard that refuses to run unless /etc is the copy, so this
// machine's own users, /etc and /home are never touched (the tests check
// that afterwards with hostSum).
//
// The namespace lives as long as its init (PID 1, a sleep); the agent and
// every command (useradd, pamtester, the simulated reboot) enter it with
// nsenter, so the agent can be stopped, killed and restarted while the
// machine keeps its state, as a service on a laptop is.
type machine struct {
	t        *testing.T
	dir      string // host directory holding etc/, home/, var/
	sentinel string
	serial   string
	uuid     string
	holder   *e2etest.Proc
	initPID  int // host pid of the namespace's PID 1
}

// The PAM service pamtester uses: the system-wide includes the lock changes.
const pamService = "lanyard-e2e"

// machineInitScript runs as PID 1 of the new namespaces: it mounts the
// machine's view, proves /etc, /home and /var are the test's before it
// writes anything, creates the users (first start only) and becomes init.
const machineInitScript = `set -eu
m=$1; shift
mount -t tmpfs lanyard-e2e /sys/class
mkdir -p /sys/class/dmi/id
printf '%s\n' "$LANYARD_E2E_SERIAL" > /sys/class/dmi/id/product_serial
printf '%s\n' "$LANYARD_E2E_UUID" > /sys/class/dmi/id/product_uuid
printf 'LENOVO\n' > /sys/class/dmi/id/sys_vendor
printf '20XW0026US\n' > /sys/class/dmi/id/product_name
mount --bind "$m/etc" /etc
mount --bind "$m/home" /home
mount --bind "$m/var" /var
for d in /etc /home /var; do
	[ "$(cat $d/.lanyard-e2e-sentinel 2>/dev/null)" = "$LANYARD_E2E_SENTINEL" ] || { echo "$d is not the test machine's: refusing" >&2; exit 97; }
done
mount -t tmpfs -o mode=0755 lanyard-e2e /run
mkdir -p /run/lock /run/systemd/users
if ! grep -q '^alice:' /etc/passwd; then
	/usr/sbin/useradd -m -s /bin/bash alice
	printf 'alice:alice-pw\nroot:root-pw\n' | /usr/sbin/chpasswd
fi
getent passwd carol | grep -q '^carol:\*:70001:' || { echo "extrausers not active in the test machine" >&2; exit 98; }
: > "$m/ready"
exec "$@"
`

// inMachine guards every command run in the machine: it runs only when
// /etc is the test machine's copy.
const inMachine = `[ "$(cat /etc/.lanyard-e2e-sentinel 2>/dev/null)" = "$1" ] || { echo "not in the test machine: refusing" >&2; exit 97; }
shift
exec "$@"`

// needMachineTools skips unless this is root with everything a machine needs.
func needMachineTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount and pid namespaces, accounts changed inside them)")
	}
	for _, tool := range []string{"/usr/bin/unshare", "/usr/bin/nsenter", "/usr/bin/setpriv", "/usr/bin/pamtester",
		"/usr/sbin/useradd", "/usr/sbin/chpasswd", "/usr/sbin/usermod", "/usr/bin/pkill", "/usr/bin/getent"} {
		if _, err := os.Stat(tool); err != nil {
			t.Skipf("%s not installed (Debian: util-linux, pamtester, passwd, procps, libc-bin)", tool)
		}
	}
	found := false
	for _, pat := range []string{"/usr/lib/libnss_extrausers.so.2", "/lib/libnss_extrausers.so.2",
		"/usr/lib/*-linux-gnu/libnss_extrausers.so.2", "/lib/*-linux-gnu/libnss_extrausers.so.2"} {
		if m, _ := filepath.Glob(pat); len(m) > 0 {
			found = true
		}
	}
	if !found {
		t.Skip("libnss-extrausers not installed")
	}
}

// hostPaths are what no test here may change on this machine.
var hostPaths = []string{"/etc/shadow", "/etc/passwd", "/etc/group", "/etc/gshadow", "/etc/nsswitch.conf",
	"/etc/pam.d", "/etc/security", "/etc/nologin", "/run/nologin", "/home", "/var/lib/extrausers"}

// guardHost fails the test when this machine's accounts, PAM or homes
// differ after it from before it. Call it first: it checks after every
// other cleanup (namespaces torn down, agents stopped).
func guardHost(t *testing.T) {
	before := treeSum(t, hostPaths...)
	t.Cleanup(func() {
		if after := treeSum(t, hostPaths...); after != before {
			t.Error("this machine's /etc, /home or /var/lib/extrausers changed during the test")
		}
	})
}

// newMachine prepares the machine's files and starts its namespace. With
// aliceInit its PID 1 runs as alice: a process of hers that nobody in the
// namespace can kill (the kernel drops SIGKILL sent to a namespace's init
// from inside it), so a lock's "sessions ended" check keeps waiting (up to
// its 10 s bound) and the lock stays running long enough to kill the agent
// in the middle of it.
func newMachine(t *testing.T, serial, uuid string, aliceInit bool) *machine {
	t.Helper()
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	m := &machine{t: t, dir: t.TempDir(), sentinel: hex.EncodeToString(tok), serial: serial, uuid: uuid}
	etc := filepath.Join(m.dir, "etc")
	if out, err := exec.Command("/bin/cp", "-a", "/etc", etc).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc: %v %s", err, out)
	}
	nss, err := os.ReadFile(filepath.Join(etc, "nsswitch.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(nss), "\n") {
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
	files := map[string]string{
		"etc/nsswitch.conf":          strings.Join(lines, "\n"),
		"etc/pam.d/" + pamService:    "auth include common-auth\naccount include common-account\n",
		"var/lib/extrausers/passwd":  "carol:*:70001:70001:Carol (directory):/home/carol:/bin/bash\n",
		"var/lib/extrausers/group":   "carol:x:70001:\n",
		"etc/.lanyard-e2e-sentinel":  m.sentinel,
		"home/.lanyard-e2e-sentinel": m.sentinel,
		"var/.lanyard-e2e-sentinel":  m.sentinel,
		"var/log/.keep":              "",
		"var/mail/.keep":             "",
		"var/spool/.keep":            "",
		"var/tmp/.keep":              "",
		"var/lib/lanyard-e2e/.keep":  "",
	}
	for p, c := range files {
		full := filepath.Join(m.dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"var/run": "/run", "var/lock": "/run/lock"} {
		if err := os.Symlink(target, filepath.Join(m.dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	initArgv := []string{"/bin/sleep", "1000000"}
	if aliceInit {
		initArgv = append([]string{"/usr/bin/setpriv", "--reuid=alice", "--regid=alice", "--clear-groups"}, initArgv...)
	}
	args := append([]string{"--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
		"/bin/sh", "-c", machineInitScript, "sh", m.dir}, initArgv...)
	m.holder = e2etest.Start(t, "/usr/bin/unshare", []string{"LANYARD_E2E_SERIAL=" + serial, "LANYARD_E2E_UUID=" + uuid,
		"LANYARD_E2E_SENTINEL=" + m.sentinel}, args...)
	t.Cleanup(func() {
		// Killing the namespace's init ends every process in it.
		if m.initPID > 0 {
			_ = syscall.Kill(m.initPID, syscall.SIGKILL)
		}
		select {
		case <-m.holder.Done():
		case <-time.After(20 * time.Second):
			t.Errorf("the test machine's namespace did not end")
		}
	})
	waitUntil(t, "the test machine to start", 60*time.Second, 50*time.Millisecond, func() bool {
		if m.holder.Exited() {
			t.Fatalf("the test machine's init exited:\n%s", m.holder.Output())
		}
		_, err := os.Stat(filepath.Join(m.dir, "ready"))
		return err == nil
	})
	m.initPID = childOf(t, m.holder.Cmd.Process.Pid)
	return m
}

// childOf is the only child of pid (an unshare --fork or an nsenter).
func childOf(t *testing.T, pid int) int {
	t.Helper()
	var child int
	waitUntil(t, fmt.Sprintf("the child of pid %d", pid), 10*time.Second, 10*time.Millisecond, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			t.Fatalf("children of %d: %v", pid, err)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false
		}
		if len(f) > 1 {
			t.Fatalf("pid %d has children %v, want one", pid, f)
		}
		child, _ = strconv.Atoi(f[0])
		return true
	})
	return child
}

// command is argv run inside the machine (guarded by inMachine).
func (m *machine) command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"-t", strconv.Itoa(m.initPID), "-m", "-p", "--", "/bin/sh", "-c", inMachine, "sh", m.sentinel}, argv...)
	return exec.CommandContext(ctx, "/usr/bin/nsenter", args...)
}

// run runs argv in the machine with stdin and fails the test on an error.
func (m *machine) run(stdin string, argv ...string) string {
	m.t.Helper()
	out, err := m.try(stdin, argv...)
	if err != nil {
		m.t.Fatalf("in the test machine: %v: %v\n%s", argv, err, out)
	}
	return out
}

func (m *machine) try(stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := m.command(ctx, argv...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pamCase is one pamtester run: user (password on stdin) through ops.
type pamCase struct {
	user, password string
	ops            []string
	pass           bool
}

var (
	pamAuth = []string{"authenticate", "acct_mgmt"}
	pamAcct = []string{"acct_mgmt"}
)

// pamOpen: before a lock and after an unlock. carol, a directory account,
// has no password here: her acct_mgmt is what a lock must refuse.
var pamOpen = []pamCase{
	{"alice", "alice-pw", pamAuth, true},
	{"alice", "wrong", pamAuth, false}, // the stack really checks passwords
	{"carol", "", pamAcct, true},
	{"root", "root-pw", pamAuth, true},
}

// pamLocked: while a lock holds.
var pamLocked = []pamCase{
	{"alice", "alice-pw", pamAuth, false},
	{"alice", "", pamAcct, false},
	{"carol", "", pamAcct, false},
	{"root", "root-pw", pamAuth, true},
}

// expectPAM runs pamtester in the machine for every case.
func (m *machine) expectPAM(stage string, cases []pamCase) {
	m.t.Helper()
	for _, c := range cases {
		out, err := m.try(c.password+"\n", append([]string{"/usr/bin/pamtester", pamService, c.user}, c.ops...)...)
		if (err == nil) != c.pass {
			m.t.Errorf("%s: pamtester %s %v: passed=%v, want %v\n%s", stage, c.user, c.ops, err == nil, c.pass, strings.TrimSpace(out))
		}
	}
	if m.t.Failed() {
		m.t.FailNow()
	}
}

// startAs starts a long-running process in the machine as uid and returns
// a channel that receives its exit.
func (m *machine) startAs(uid int) <-chan error {
	m.t.Helper()
	u := strconv.Itoa(uid)
	cmd := m.command(context.Background(), "/usr/bin/setpriv", "--reuid="+u, "--regid="+u, "--clear-groups", "/bin/sleep", "600")
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	m.t.Cleanup(func() { _ = cmd.Process.Kill() })
	return done
}

// reboot is what a restart does to the machine's state while the agent is
// stopped: a fresh /run, and systemd-user-sessions removes /etc/nologin.
func (m *machine) reboot() {
	m.t.Helper()
	m.run("", "/bin/sh", "-c", "umount -l /run && mount -t tmpfs -o mode=0755 lanyard-e2e /run && "+
		"mkdir -p /run/lock /run/systemd/users && rm -f /etc/nologin")
}

// file reads a file of the machine (its /etc is a directory of the test).
func (m *machine) file(p string) string {
	m.t.Helper()
	rel, ok := strings.CutPrefix(p, "/etc/")
	if !ok {
		m.t.Fatalf("machine.file reads /etc only, not %s", p)
	}
	b, err := os.ReadFile(filepath.Join(m.dir, "etc", rel))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.t.Fatal(err)
	}
	return string(b)
}

// agentProc is a lanyard-agent running in a machine.
type agentProc struct {
	t    *testing.T
	proc *e2etest.Proc // the nsenter that started it
	pid  int           // the agent's host pid
}

// startAgent runs bin with args in the machine.
func (m *machine) startAgent(bin string, args ...string) *agentProc {
	m.t.Helper()
	argv := append([]string{"-t", strconv.Itoa(m.initPID), "-m", "-p", "--", "/bin/sh", "-c", inMachine, "sh", m.sentinel, bin}, args...)
	p := e2etest.Start(m.t, "/usr/bin/nsenter", nil, argv...)
	a := &agentProc{t: m.t, proc: p, pid: childOf(m.t, p.Cmd.Process.Pid)}
	// nsenter does not pass signals on: stop the agent itself (this
	// cleanup runs before e2etest's, which stops the nsenter).
	m.t.Cleanup(a.stop)
	return a
}

// stop interrupts the agent and waits until it exited (SIGKILL after 20 s).
func (a *agentProc) stop() {
	if a.proc.Exited() {
		return
	}
	_ = syscall.Kill(a.pid, syscall.SIGINT)
	select {
	case <-a.proc.Done():
	case <-time.After(20 * time.Second):
		a.t.Errorf("the agent did not stop on SIGINT within 20 s")
		a.kill()
	}
}

// kill ends the agent at once, as a power cut or an OOM kill would.
func (a *agentProc) kill() {
	_ = syscall.Kill(a.pid, syscall.SIGKILL)
	select {
	case <-a.proc.Done():
	case <-time.After(20 * time.Second):
		a.t.Fatalf("the agent survived SIGKILL")
	}
}
