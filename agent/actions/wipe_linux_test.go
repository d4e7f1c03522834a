package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev/blockdevtest"
)

// The wipe runs for real here: LUKS headers on image files attached to loop
// devices are erased by the real `cryptsetup luksErase` through ExecRunner,
// and verified by the real luksDump. This kernel has no device-mapper, so
// the LUKS volumes cannot be opened: discovery reads an injected sysfs and
// mountinfo that show the dm-crypt mappings a booted machine would have,
// stacked on the real loop devices. The lock part runs against a throwaway
// root (usermod --prefix), and the power-off is replaced by a harmless
// program the recording runner logs.

func needWipeTools(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices, cryptsetup, usermod --prefix)")
	}
	cs := allowcmd.First("/usr/sbin/cryptsetup", "/sbin/cryptsetup")
	if cs == "" {
		t.Skip("cryptsetup not installed (apt-get install cryptsetup-bin)")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not installed")
	}
	if allowcmd.First("/usr/sbin/usermod", "/sbin/usermod") == "" {
		t.Skip("usermod not installed")
	}
	return cs
}

// fakeMachineRoot is a throwaway root with passwd/shadow (alice and bob
// human, svc a service account), homes, /root, and a directory-account
// home (carol@corp, not in passwd).
func fakeMachineRoot(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n" +
			"bob:x:1001:1001:Bob:/home/bob:/bin/bash\nsvc:x:999:999::/var/svc:/usr/sbin/nologin\n",
		"etc/shadow": "root:$y$j9T$rootHash:20000:0:99999:7:::\nalice:$y$j9T$aliceHash:20000:0:99999:7:::\n" +
			"bob:$y$j9T$bobHash:20000:0:99999:7:::\nsvc:*:20000:0:99999:7:::\n",
		"etc/group":                       "root:x:0:\nalice:x:1000:\nbob:x:1001:\nsvc:x:999:\n",
		"etc/gshadow":                     "root:*::\nalice:!::\nbob:!::\nsvc:!::\n",
		"home/alice/Documents/offer.pdf":  "alice's data",
		"home/bob/.ssh/id_ed25519":        "bob's key",
		"home/carol@corp/notes.txt":       "a directory account's data",
		"root/.bash_history":              "history",
		"var/svc/state":                   "service data",
		"var/lib/lanyard-agent/state.txt": "agent state",
		// The lock part of the wipe adds its PAM rule here (the modules must exist).
		"etc/pam.d/common-account": "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so \n" +
			"account\trequisite\t\t\tpam_deny.so\naccount\trequired\t\t\tpam_permit.so\n",
		"usr/lib/x86_64-linux-gnu/security/pam_succeed_if.so": "",
		"usr/lib/x86_64-linux-gnu/security/pam_localuser.so":  "",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// hostState is what a wipe test must never change on this machine.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"/etc/shadow", "/etc/passwd"} {
		c, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "%s:%x\n", f, c)
	}
	for _, d := range []string{"/home", "/root"} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			fmt.Fprintf(&b, "%s/%s\n", d, e.Name())
		}
	}
	return b.String()
}

// recordingRunner runs steps for real and logs their names, interleaved
// with the Executor's commit.
type recordingRunner struct {
	mu  sync.Mutex
	log []string
}

func (r *recordingRunner) Run(ctx context.Context, s Step) (string, error) {
	r.note("step:" + s.Name)
	return ExecRunner{}.Run(ctx, s)
}

func (r *recordingRunner) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recordingRunner) entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// wipeOnFakeMachine plans from a throwaway root's accounts and the given
// layout, with the power-off replaced.
type wipeOnFakeMachine struct {
	root string
	env  linuxWipeEnv
}

func (p wipeOnFakeMachine) Plan(ctx context.Context, cmd Command) (Plan, error) {
	f, err := (&LinuxPlanner{Root: p.root}).Facts()
	if err != nil {
		return Plan{}, err
	}
	if cmd.Kind != Wipe {
		return Plan{}, ErrUnsupported
	}
	return p.env.plan(ctx, f, cmd)
}

// committed is what Executor.Commit saw (the server's view before power-off).
type committed struct {
	result Result
	// logLen is how many runner entries existed at commit time.
	logLen int
}

// runWipe executes a wipe with a recording Commit and runner.
func runWipe(t *testing.T, root, spec string, allowBestEffort bool) (Result, []committed, []string) {
	t.Helper()
	powerOff := allowcmd.First("/usr/bin/id", "/bin/id")
	if powerOff == "" {
		t.Skip("id not installed")
	}
	r := &recordingRunner{}
	var commits []committed
	e := &Executor{
		Serial: "SER-1", Runner: r,
		Planner: wipeOnFakeMachine{root: root, env: linuxWipeEnv{
			roots: blockdevtest.Materialize(t, spec), powerOff: []string{powerOff, "-u"}}},
		Commit: func(_ context.Context, res Result) error {
			r.note("commit")
			commits = append(commits, committed{result: res, logLen: len(r.entries())})
			return nil
		},
	}
	res := e.Execute(context.Background(), Command{ID: "wipe-1", Kind: Wipe, TargetSerial: "SER-1", Confirmed: true,
		AllowBestEffort: allowBestEffort})
	return res, commits, r.entries()
}

const wipeProcMounts = "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n" +
	"23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n" +
	"24 27 0:5 / /dev rw,nosuid shared:8 - devtmpfs devtmpfs rw,mode=755,inode64\n" +
	"25 27 0:25 / /run rw,nosuid,nodev shared:11 - tmpfs tmpfs rw,mode=755,inode64"

func TestLinuxWipeOnLoopDevices(t *testing.T) {
	cs := needWipeTools(t)
	before := hostState(t)
	t.Cleanup(func() {
		if after := hostState(t); after != before {
			t.Errorf("the host's accounts or homes changed:\n%s\nwas:\n%s", after, before)
		}
	})

	type layoutFn func(b *blockdevtest.Builder, ls []blockdevtest.LUKSLoop)
	const nvme = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0"
	cases := []struct {
		name  string
		luks  []string // formats of the loop devices
		build layoutFn
	}{
		{
			name: "LUKS root", luks: []string{"luks2"},
			build: func(b *blockdevtest.Builder, ls []blockdevtest.LUKSLoop) {
				b.Disk(nvme, "nvme0n1", "259:0").Partition("nvme0n1", "nvme0n1p1", "259:1", 1).
					DM("dm-0", "253:0", "luks-"+ls[0].UUID, blockdevtest.DMUUID("LUKS2", ls[0].UUID, "luks-"+ls[0].UUID), ls[0].Name).
					Mount(wipeProcMounts,
						"27 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/luks-"+ls[0].UUID+" rw",
						"28 27 259:1 / /boot/efi rw,relatime shared:29 - vfat /dev/nvme0n1p1 rw")
			},
		},
		{
			// Fedora: one btrfs over two LUKS devices (one LUKS1 here),
			// subvolumes / and /home, swap on zram.
			name: "btrfs on LUKS", luks: []string{"luks2", "luks1"},
			build: func(b *blockdevtest.Builder, ls []blockdevtest.LUKSLoop) {
				b.DM("dm-0", "253:0", "luks-"+ls[0].UUID, blockdevtest.DMUUID("LUKS2", ls[0].UUID, "luks-"+ls[0].UUID), ls[0].Name).
					DM("dm-1", "253:1", "luks-"+ls[1].UUID, blockdevtest.DMUUID("LUKS1", ls[1].UUID, "luks-"+ls[1].UUID), ls[1].Name).
					Btrfs("6f0e6f7a-3d2c-4b8e-9f61-2a2f0a5e9c11", "dm-0", "dm-1").
					Disk("devices/virtual/block", "zram0", "252:0").
					Mount(wipeProcMounts,
						"27 1 0:33 /root / rw,relatime shared:1 - btrfs /dev/mapper/luks-"+ls[0].UUID+" rw,compress=zstd:1,subvolid=257,subvol=/root",
						"95 27 0:33 /home /home rw,relatime shared:57 - btrfs /dev/mapper/luks-"+ls[0].UUID+" rw,compress=zstd:1,subvolid=256,subvol=/home").
					Swap("/dev/zram0                              partition\t8388604\t\t0\t\t100")
			},
		},
		{
			// Debian's encrypted LVM for / and swap, plus a separate LUKS /home.
			name: "LVM on LUKS root and separate LUKS home", luks: []string{"luks2", "luks2"},
			build: func(b *blockdevtest.Builder, ls []blockdevtest.LUKSLoop) {
				b.DM("dm-0", "253:0", ls[0].Name+"_crypt", blockdevtest.DMUUID("LUKS2", ls[0].UUID, ls[0].Name+"_crypt"), ls[0].Name).
					DM("dm-1", "253:1", "vg-root", "LVM-Xq3dPz0aR8kW2mN5bV7cT1yU4iO6pL9hfA2sD4gJ6kL8zX0cV3bN5mQ7wE9rT1yU", "dm-0").
					DM("dm-2", "253:2", "vg-swap_1", "LVM-Xq3dPz0aR8kW2mN5bV7cT1yU4iO6pL9hK3jH5gF7dS9aP1oI2uY4tR6eW8qZ0xC", "dm-0").
					DM("dm-3", "253:3", "home", blockdevtest.DMUUID("LUKS2", ls[1].UUID, "home"), ls[1].Name).
					Mount(wipeProcMounts,
						"27 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw",
						"40 27 253:3 / /home rw,relatime shared:31 - ext4 /dev/mapper/home rw").
					Swap("/dev/dm-2                               partition\t1003516\t\t0\t\t-2")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ls []blockdevtest.LUKSLoop
			for _, typ := range tc.luks {
				ls = append(ls, blockdevtest.NewLUKSLoop(t, cs, typ))
			}
			b := blockdevtest.NewBuilder()
			for _, l := range ls {
				b.Loop(l.Name, l.Devno, "")
			}
			tc.build(b, ls)
			root := fakeMachineRoot(t)

			res, commits, log := runWipe(t, root, b.String(), false)
			if res.State != Done {
				t.Fatalf("wipe %s: %s\n%s", res.State, res.Error, describeSteps(res))
			}
			// Every header is destroyed: its own key no longer opens it.
			for _, l := range ls {
				if st := l.HeaderState(cs); !strings.Contains(st, "No usable keyslot") {
					t.Errorf("%s after the wipe: %q", l.Dev(), st)
				}
			}
			// The server got the Done result, with one keyslot check per
			// device, before the power-off ran, and the power-off ran last.
			if len(commits) != 1 {
				t.Fatalf("%d commits", len(commits))
			}
			c := commits[0]
			if c.result.State != Done || c.result.Evidence == nil || c.result.Evidence.WipeMethod != WipeCryptoErase ||
				c.result.Evidence.FinalAction != "power-off" {
				t.Fatalf("committed %+v", c.result)
			}
			if slices.Contains(log[:c.logLen], "step:power-off") || log[len(log)-1] != "step:power-off" || log[c.logLen-1] != "commit" {
				t.Fatalf("order: %v (commit at %d)", log, c.logLen)
			}
			checks := map[string]Check{}
			for _, ch := range c.result.Evidence.Checks {
				checks[ch.Name] = ch
				if !ch.OK {
					t.Errorf("check %+v", ch)
				}
			}
			for _, l := range ls {
				ch, ok := checks["luks-keyslots-destroyed:"+l.Dev()]
				if !ok || !strings.Contains(ch.Observed, l.UUID+": 0 keyslots") {
					t.Errorf("no keyslot check for %s: %+v", l.Dev(), ch)
				}
			}
			n := 0
			for name := range checks {
				if strings.HasPrefix(name, "luks-keyslots-destroyed:") {
					n++
				}
			}
			if n != len(ls) {
				t.Errorf("%d keyslot checks for %d devices", n, len(ls))
			}
			for _, want := range []string{"account-locked:alice", "account-locked:bob", "pam-account-deny:/etc/pam.d/common-account", "storage:/"} {
				if _, ok := checks[want]; !ok {
					t.Errorf("evidence lacks %s", want)
				}
			}
			// A crypto-erase deletes no file: the data is unreadable, not removed.
			if _, err := os.Stat(filepath.Join(root, "home/alice/Documents/offer.pdf")); err != nil {
				t.Errorf("crypto-erase removed files: %v", err)
			}
		})
	}
}

// TestLinuxWipeRefusesWithoutLUKS: no crypto-erase possible → failed before
// anything runs, unless best effort is allowed; then the LUKS volumes that
// exist are erased, home directories and /root on the rest are removed and
// verified gone, and the evidence says best_effort.
func TestLinuxWipeRefusesWithoutLUKS(t *testing.T) {
	cs := needWipeTools(t)
	before := hostState(t)
	t.Cleanup(func() {
		if after := hostState(t); after != before {
			t.Errorf("the host's accounts or homes changed")
		}
	})
	const sata = "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0"
	noLUKS := blockdevtest.NewBuilder().
		Disk(sata, "sda", "8:0").Partition("sda", "sda1", "8:1", 1).Partition("sda", "sda2", "8:2", 2).
		Mount(wipeProcMounts,
			"27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro").
		Swap("/dev/sda2                               partition\t8388604\t\t0\t\t-2").String()

	t.Run("no encryption", func(t *testing.T) {
		root := fakeMachineRoot(t)
		res, commits, log := runWipe(t, root, noLUKS, false)
		if res.State != Failed || !strings.Contains(res.Error, "no crypto-erase possible") ||
			!strings.Contains(res.Error, "/ (ext4 on sda1: not encrypted)") || !strings.Contains(res.Error, "swap on sda2: not encrypted") {
			t.Fatalf("wipe without LUKS: %s %q", res.State, res.Error)
		}
		if len(log) != 0 || len(commits) != 0 {
			t.Fatalf("a refused wipe ran %v, committed %d", log, len(commits))
		}
		if _, err := os.Stat(filepath.Join(root, "home/alice/Documents/offer.pdf")); err != nil {
			t.Fatal("a refused wipe removed data")
		}
	})

	t.Run("no encryption, best effort allowed", func(t *testing.T) {
		root := fakeMachineRoot(t)
		res, commits, log := runWipe(t, root, noLUKS, true)
		if res.State != Done || len(commits) != 1 {
			t.Fatalf("best effort: %s %q\n%s", res.State, res.Error, describeSteps(res))
		}
		ev := commits[0].result.Evidence
		if ev.WipeMethod != WipeBestEffort || !strings.Contains(commits[0].result.Message, "best-effort") {
			t.Fatalf("evidence %+v message %q", ev, commits[0].result.Message)
		}
		removed := []string{"/root", "/home/alice", "/home/bob", "/home/carol@corp"}
		checks := map[string]Check{}
		for _, c := range ev.Checks {
			checks[c.Name] = c
		}
		for _, p := range removed {
			if c := checks["user-data-removed:"+p]; !c.OK || c.Observed != "absent" {
				t.Errorf("%s: %+v", p, c)
			}
			if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there: %v", p, err)
			}
		}
		for _, keep := range []string{"var/svc/state", "var/lib/lanyard-agent/state.txt", "etc/passwd"} {
			if _, err := os.Stat(filepath.Join(root, keep)); err != nil {
				t.Errorf("best effort removed %s: %v", keep, err)
			}
		}
		for _, name := range []string{"storage:/", "storage:/dev/sda2"} {
			if c, ok := checks[name]; !ok || !strings.Contains(c.Observed, "not crypto-erasable") {
				t.Errorf("%s: %+v", name, c)
			}
		}
		if log[len(log)-1] != "step:power-off" || slices.Contains(log[:commits[0].logLen], "step:power-off") {
			t.Fatalf("order %v", log)
		}
	})

	t.Run("plain root, LUKS home", func(t *testing.T) {
		l := blockdevtest.NewLUKSLoop(t, cs, "luks2")
		spec := blockdevtest.NewBuilder().
			Disk(sata, "sda", "8:0").Partition("sda", "sda1", "8:1", 1).Loop(l.Name, l.Devno, "").
			DM("dm-0", "253:0", "home", blockdevtest.DMUUID("LUKS2", l.UUID, "home"), l.Name).
			Mount(wipeProcMounts,
				"27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
				"40 27 253:0 / /home rw,relatime shared:31 - ext4 /dev/mapper/home rw").String()
		root := fakeMachineRoot(t)
		res, _, log := runWipe(t, root, spec, false)
		if res.State != Failed || !strings.Contains(res.Error, "no crypto-erase possible") || len(log) != 0 {
			t.Fatalf("plain / refused? %s %q ran %v", res.State, res.Error, log)
		}
		if st := l.HeaderState(cs); st != "opens" {
			t.Fatalf("a refused wipe touched the /home header: %q", st)
		}
		res, commits, _ := runWipe(t, root, spec, true)
		if res.State != Done || commits[0].result.Evidence.WipeMethod != WipeBestEffort {
			t.Fatalf("best effort: %s %q\n%s", res.State, res.Error, describeSteps(res))
		}
		if st := l.HeaderState(cs); !strings.Contains(st, "No usable keyslot") {
			t.Fatalf("best effort left the /home header usable: %q", st)
		}
		// /root is on the plain /, the homes are under the erased /home.
		if _, err := os.Lstat(filepath.Join(root, "root")); !errors.Is(err, os.ErrNotExist) {
			t.Error("/root not removed")
		}
		if _, err := os.Stat(filepath.Join(root, "home/alice/Documents/offer.pdf")); err != nil {
			t.Error("best effort removed files that the crypto-erase already covers")
		}
	})
}

// TestLinuxWipeFailsWhenAHeaderSurvives: a luksErase that cannot destroy a
// header (the device is read-only) leaves the wipe Failed, not committed,
// and never powers off.
func TestLinuxWipeFailsWhenAHeaderSurvives(t *testing.T) {
	cs := needWipeTools(t)
	l := blockdevtest.NewLUKSLoop(t, cs, "luks2")
	if out, err := exec.Command("blockdev", "--setro", l.Dev()).CombinedOutput(); err != nil {
		t.Skipf("blockdev --setro: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("blockdev", "--setrw", l.Dev()).Run() })
	spec := blockdevtest.NewBuilder().Loop(l.Name, l.Devno, "").
		DM("dm-0", "253:0", "root", blockdevtest.DMUUID("LUKS2", l.UUID, "root"), l.Name).
		Mount(wipeProcMounts, "27 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/root rw").String()
	res, commits, log := runWipe(t, fakeMachineRoot(t), spec, false)
	if res.State != Failed || len(commits) != 0 || slices.Contains(log, "step:power-off") {
		t.Fatalf("state %s commits %d log %v", res.State, len(commits), log)
	}
	if !strings.Contains(res.Error, "luks-keyslots-destroyed:"+l.Dev()) {
		t.Fatalf("error %q does not name the surviving header", res.Error)
	}
	if st := l.HeaderState(cs); st != "opens" {
		t.Fatalf("header state %q", st)
	}
}

func describeSteps(r Result) string {
	var b strings.Builder
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "  %s %s %s\n", s.Status, s.Step, s.Error)
	}
	if r.Evidence != nil {
		for _, c := range r.Evidence.Checks {
			fmt.Fprintf(&b, "  check %s ok=%v observed=%q\n", c.Name, c.OK, c.Observed)
		}
	}
	return b.String()
}
