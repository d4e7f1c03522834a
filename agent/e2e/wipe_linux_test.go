package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/client"
	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev/blockdevtest"
	"github.com/lanyardhq/lanyard/agent/inventory"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The wipe end to end: a real `lanyard serve`, an in-process agent (the real
// client: enrollment with a secret from the admin API, the stream, the
// Executor, the commit before the final step) whose planner is the real
// Linux wipe planner, pointed at a throwaway root (passwd, shadow, PAM) and
// at a disk layout stacked on real loop devices that carry LUKS headers.
// The real `cryptsetup luksErase` destroys them. Only the power-off is
// replaced, by a recording step that asks the admin API what the server
// has recorded at that moment, then runs a harmless program.
//
// This kernel has no device-mapper, so the LUKS volumes cannot be opened;
// the planner reads an injected sysfs and mountinfo showing the dm-crypt
// mappings a booted machine would have on those loop devices. The agent
// runs in a private mount namespace (the test binary again, under unshare)
// with a fake DMI table, so it reports a firmware serial: a serial override
// would make every result simulated.

const (
	wipeChildEnv    = "LANYARD_E2E_WIPE_CHILD"
	wipeChildMarker = "LANYARD-E2E-WIPE-CHILD-VERIFIED"
)

// wipeInput is what the parent hands the namespace child.
type wipeInput struct {
	ParentMnt  string   `json:"parent_mnt"`
	Serial     string   `json:"serial"`
	ConfigPath string   `json:"config_path"`
	StateDir   string   `json:"state_dir"`
	URL        string   `json:"url"`
	Token      string   `json:"token"`
	Approver   string   `json:"approver"`
	DeviceID   string   `json:"device_id"`
	Root       string   `json:"root"`
	Sys        string   `json:"sys"`
	Proc       string   `json:"proc"`
	Headers    []string `json:"headers"` // /dev/loopN, one per LUKS header
	UUIDs      []string `json:"uuids"`
}

// wipeLayout builds a block-device layout over the loop devices.
type wipeLayout struct {
	name  string
	luks  []string // luks1/luks2, one loop device each
	build func(b *blockdevtest.Builder, ls []blockdevtest.LUKSLoop)
}

const wipeProcMounts = "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n" +
	"23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n" +
	"24 27 0:5 / /dev rw,nosuid shared:8 - devtmpfs devtmpfs rw,mode=755,inode64\n" +
	"25 27 0:25 / /run rw,nosuid,nodev shared:11 - tmpfs tmpfs rw,mode=755,inode64"

var wipeLayouts = []wipeLayout{
	{
		// A LUKS root with a separate LUKS /home, and a plain EFI partition.
		name: "LUKS root and LUKS home", luks: []string{"luks2", "luks2"},
		build: func(b *blockdevtest.Builder, ls []blockdevtest.LUKSLoop) {
			const nvme = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0"
			b.Disk(nvme, "nvme0n1", "259:0").Partition("nvme0n1", "nvme0n1p1", "259:1", 1).
				DM("dm-0", "253:0", "luks-"+ls[0].UUID, blockdevtest.DMUUID("LUKS2", ls[0].UUID, "luks-"+ls[0].UUID), ls[0].Name).
				DM("dm-1", "253:1", "home", blockdevtest.DMUUID("LUKS2", ls[1].UUID, "home"), ls[1].Name).
				Mount(wipeProcMounts,
					"27 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/luks-"+ls[0].UUID+" rw",
					"28 27 259:1 / /boot/efi rw,relatime shared:29 - vfat /dev/nvme0n1p1 rw",
					"40 27 253:1 / /home rw,relatime shared:31 - ext4 /dev/mapper/home rw")
		},
	},
	{
		// Fedora: one btrfs over two LUKS devices (one LUKS1), subvolumes
		// / and /home, swap on zram.
		name: "btrfs on two LUKS devices", luks: []string{"luks2", "luks1"},
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
}

func cryptsetupPath() string { return allowcmd.First("/usr/sbin/cryptsetup", "/sbin/cryptsetup") }

// TestWipeEndToEndOnLoopDevices: for each layout, the wipe sent through the
// admin API (the org requires a second admin's approval: the creator
// cannot approve it, another admin does) is recorded done by the server,
// with verified evidence, one luks-keyslots-destroyed check per header and
// wipe_method crypto_erase, before the power-off step runs; afterwards
// every header refuses its key. On SQLite, and on Postgres when
// LANYARD_TEST_DATABASE_URL is set.
func TestWipeEndToEndOnLoopDevices(t *testing.T) {
	if in := os.Getenv(wipeChildEnv); in != "" {
		wipeChild(t, in)
		return
	}
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices, cryptsetup, a mount namespace)")
	}
	if cryptsetupPath() == "" {
		t.Skip("cryptsetup not installed (Debian: cryptsetup-bin)")
	}
	for _, tool := range []string{"losetup", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (util-linux)", tool)
		}
	}
	if allowcmd.First("/usr/sbin/usermod", "/sbin/usermod") == "" || allowcmd.First("/usr/bin/id", "/bin/id") == "" {
		t.Skip("usermod or id not installed")
	}
	guardHost(t)
	bin := buildBinaries(t, false)
	t.Run("sqlite", func(t *testing.T) {
		e := serveWith(t, bin)
		approver := requireWipeApproval(t, e)
		for i, l := range wipeLayouts {
			t.Run(l.name, func(t *testing.T) { runWipe(t, e, approver, l, fmt.Sprintf("E2E-WIPE-SQ-%d", i)) })
		}
	})
	t.Run("postgres", func(t *testing.T) {
		url := storetest.PostgresURL(t)
		e := serveWith(t, bin, "--database-url", url)
		approver := requireWipeApproval(t, e, "--database-url", url)
		runWipe(t, e, approver, wipeLayouts[1], "E2E-WIPE-PG-1")
	})
}

// requireWipeApproval turns on the org's wipe_requires_approval and returns
// a second admin's token.
func requireWipeApproval(t *testing.T, e *env, serveFlags ...string) string {
	api := e.client()
	var org struct {
		Settings map[string]any `json:"settings"`
	}
	api.must(t, "GET", "/api/v1/org", nil, &org)
	org.Settings["wipe_requires_approval"] = true
	api.must(t, "PATCH", "/api/v1/org", map[string]any{"settings": org.Settings}, &org)
	if org.Settings["wipe_requires_approval"] != true {
		t.Fatalf("org settings after the patch: %v", org.Settings)
	}
	// The approver must be a different person: a token the owner mints through the API is
	// the owner's own, so the second admin's token is the operator's break-glass one
	// (`lanyard admin create-token`), which acts for nobody but itself.
	var me struct {
		ID string `json:"id"`
	}
	api.must(t, "GET", "/api/v1/org", nil, &me)
	args := []string{"admin", "create-token", me.ID, "--role", "admin", "--name", "second admin", "--data-dir", filepath.Join(e.dir, "server")}
	out, err := exec.Command(filepath.Join(e.bin, "lanyard"), append(args, serveFlags...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("lanyard admin create-token: %v: %s", err, out)
	}
	secret := strings.TrimSpace(string(out))
	if i := strings.LastIndex(secret, "\n"); i >= 0 {
		secret = secret[i+1:]
	}
	if !strings.HasPrefix(secret, "lyd_") {
		t.Fatalf("no token from lanyard admin create-token: %q", out)
	}
	return secret
}

// fakeMachineRoot is a throwaway root: alice and bob human accounts, homes,
// and a PAM account stack the lock part of the wipe adds its rule to.
func fakeMachineRoot(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n" +
			"bob:x:1001:1001:Bob:/home/bob:/bin/bash\n",
		"etc/shadow": "root:$y$j9T$rootHash:20000:0:99999:7:::\nalice:$y$j9T$aliceHash:20000:0:99999:7:::\n" +
			"bob:$y$j9T$bobHash:20000:0:99999:7:::\n",
		"etc/group":                      "root:x:0:\nalice:x:1000:\nbob:x:1001:\n",
		"etc/gshadow":                    "root:*::\nalice:!::\nbob:!::\n",
		"home/alice/Documents/offer.pdf": "alice's data",
		"home/bob/.ssh/id_ed25519":       "bob's key",
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

// runWipe wipes one layout end to end and checks the headers afterwards.
func runWipe(t *testing.T, e *env, approver string, l wipeLayout, serial string) {
	var ls []blockdevtest.LUKSLoop
	for _, typ := range l.luks {
		ls = append(ls, blockdevtest.NewLUKSLoop(t, cryptsetupPath(), typ))
	}
	b := blockdevtest.NewBuilder()
	for _, x := range ls {
		b.Loop(x.Name, x.Devno, "")
	}
	l.build(b, ls)
	roots := blockdevtest.Materialize(t, b.String())
	name := "wipe-" + strings.ToLower(serial)
	cfgPath, stateDir, deviceID := e.deviceWithAgent(serial, name, "")
	selfMnt, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	in := wipeInput{ParentMnt: selfMnt, Serial: serial, ConfigPath: cfgPath, StateDir: stateDir, URL: e.serve.HTTPURL,
		Token: e.token, Approver: approver, DeviceID: deviceID, Root: fakeMachineRoot(t), Sys: roots.Sys, Proc: roots.Proc}
	for _, x := range ls {
		in.Headers = append(in.Headers, x.Dev())
		in.UUIDs = append(in.UUIDs, x.UUID)
	}
	inPath := filepath.Join(t.TempDir(), "wipe-input.json")
	bs, _ := json.Marshal(in)
	if err := os.WriteFile(inPath, bs, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private",
		os.Args[0], "-test.run=^TestWipeEndToEndOnLoopDevices$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), wipeChildEnv+"="+inPath)
	out, runErr := cmd.CombinedOutput()
	if runErr != nil || !strings.Contains(string(out), wipeChildMarker) || !strings.Contains(string(out), "--- PASS: TestWipeEndToEndOnLoopDevices") {
		t.Fatalf("the agent's namespace (%v):\n%s", runErr, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "wipe_linux_test.go") {
			t.Log(strings.TrimSpace(line))
		}
	}
	t.Logf("wipe of %d headers end to end in %s", len(ls), time.Since(start).Round(time.Millisecond))
	// Every header is destroyed: its own key no longer opens it.
	for _, x := range ls {
		if st := x.HeaderState(cryptsetupPath()); !strings.Contains(st, "No usable keyslot") {
			t.Errorf("%s after the wipe: %q", x.Dev(), st)
		}
	}
}

// powerOffRecorder runs every step for real (ExecRunner) and records its
// name; at the power-off step (a harmless program here) it first asks the
// admin API what the server has recorded for the wipe.
type powerOffRecorder struct {
	api apiClient

	mu      sync.Mutex
	cmdID   string
	steps   []string
	seen    action
	seenErr error
	powered chan struct{}
}

func (r *powerOffRecorder) Run(ctx context.Context, s actions.Step) (string, error) {
	r.mu.Lock()
	r.steps = append(r.steps, s.Name)
	id := r.cmdID
	r.mu.Unlock()
	if s.Name == "power-off" {
		var a action
		_, err := r.api.do("GET", "/api/v1/device-actions/"+id, nil, &a)
		r.mu.Lock()
		first := r.seen.ID == "" && r.seenErr == nil
		if first {
			r.seen, r.seenErr = a, err
		}
		r.mu.Unlock()
		if first {
			close(r.powered)
		}
	}
	return actions.ExecRunner{}.Run(ctx, s)
}

func (r *powerOffRecorder) setCommand(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmdID = id
}

// wipeChild runs in the private mount namespace: fake DMI, the in-process
// agent, the wipe through the admin API, the assertions on what the server
// recorded when the power-off ran.
func wipeChild(t *testing.T, inPath string) {
	var in wipeInput
	b, err := os.ReadFile(inPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	if mnt, err := os.Readlink("/proc/self/ns/mnt"); err != nil || mnt == in.ParentMnt {
		t.Fatalf("not in a private mount namespace (%s, %v): refusing to mount over /sys/class", mnt, err)
	}
	if err := syscall.Mount("lanyard-e2e", "/sys/class", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("tmpfs on /sys/class: %v", err)
	}
	dmi := map[string]string{"product_serial": in.Serial, "product_uuid": "7a4c1e52-9d3b-4f0a-8e6d-2b1c0a9f8e7d",
		"sys_vendor": "LENOVO", "product_name": "20XW0026US"}
	for f, v := range dmi {
		if err := os.MkdirAll("/sys/class/dmi/id", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("/sys/class/dmi/id", f), []byte(v+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(in.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	api := apiClient{url: in.URL, token: in.Token}
	rec := &powerOffRecorder{api: api, powered: make(chan struct{})}
	agent, err := client.New(client.Options{
		Config: cfg, ConfigPath: in.ConfigPath, StateDir: in.StateDir,
		Collector: &inventory.Collector{AgentVersion: "1.1.0-e2e"},
		Planner: actions.NewLinuxPlannerAt(actions.LinuxPlannerRoots{Root: in.Root, StateDir: in.StateDir,
			Sys: in.Sys, Proc: in.Proc, PowerOff: []string{allowcmd.First("/usr/bin/id", "/bin/id"), "-u"}}),
		Runner:            rec,
		Version:           "1.1.0-e2e",
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HeartbeatInterval: time.Second, InventoryInterval: 2 * time.Second, BackoffMax: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- agent.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-runDone:
			if err != nil && ctx.Err() == nil {
				t.Errorf("agent Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the agent did not stop within 30 s")
		}
	}
	defer stop()

	waitUntil(t, "the agent to enroll, connect and report its device", 60*time.Second, 50*time.Millisecond, func() bool {
		st := agent.Status()
		return st.Connected && st.DeviceID == in.DeviceID && st.SerialNumber == in.Serial && !st.SerialOverridden && !st.DryRun
	})

	wipe := api.sendAction(t, in.DeviceID, map[string]any{"type": "wipe", "confirm": in.Serial})
	rec.setCommand(wipe.ID)
	if wipe.State != "awaiting_approval" {
		t.Fatalf("the org requires a second admin for a wipe, the command is %s", wipe.State)
	}
	if code, err := api.do("POST", "/api/v1/device-actions/"+wipe.ID+"/approve", nil, nil); err == nil || code < 400 {
		t.Fatalf("the creator approved their own wipe: %d %v", code, err)
	}
	sentAt := time.Now()
	apiClient{url: in.URL, token: in.Approver}.must(t, "POST", "/api/v1/device-actions/"+wipe.ID+"/approve", nil, nil)
	select {
	case <-rec.powered:
	case <-time.After(90 * time.Second):
		var a action
		_, _ = api.do("GET", "/api/v1/device-actions/"+wipe.ID, nil, &a)
		t.Fatalf("the power-off step never ran; the command is %s %q", a.State, a.Error)
	}
	t.Logf("approved wipe reached the power-off in %s", time.Since(sentAt).Round(time.Millisecond))

	rec.mu.Lock()
	seen, seenErr, steps := rec.seen, rec.seenErr, slices.Clone(rec.steps)
	rec.mu.Unlock()
	if seenErr != nil {
		t.Fatalf("the admin API at power-off: %v", seenErr)
	}
	// What the server had recorded when the power-off ran.
	var want []string
	for _, h := range in.Headers {
		want = append(want, "luks-keyslots-destroyed:"+h)
	}
	requireProven(t, "the wipe when the power-off ran", seen, append(want, "account-locked:alice", "account-locked:bob",
		"pam-account-deny:/etc/pam.d/common-account", "storage:/")...)
	if seen.Evidence.WipeMethod != "crypto_erase" || seen.Evidence.FinalAction != "power-off" ||
		!strings.EqualFold(seen.Evidence.SerialNumber, in.Serial) {
		t.Fatalf("evidence at power-off: %+v", seen.Evidence)
	}
	n := 0
	for _, c := range seen.Evidence.Checks {
		if h, ok := strings.CutPrefix(c.Name, "luks-keyslots-destroyed:"); ok {
			n++
			i := slices.Index(in.Headers, h)
			if i < 0 || !strings.Contains(c.Observed, in.UUIDs[i]+": 0 keyslots") {
				t.Errorf("keyslot check %+v", c)
			}
		}
		t.Logf("evidence at power-off: %s ok=%v observed=%q", c.Name, c.OK, c.Observed)
	}
	if n != len(in.Headers) {
		t.Fatalf("%d keyslot checks for %d headers", n, len(in.Headers))
	}
	// The power-off ran last, after every erase.
	if len(steps) == 0 || steps[len(steps)-1] != "power-off" {
		t.Fatalf("steps %v: power-off is not last", steps)
	}
	for _, h := range in.Headers {
		if i := slices.Index(steps, "crypto-erase:"+h); i < 0 || i > len(steps)-2 {
			t.Fatalf("steps %v: no crypto-erase of %s before the power-off", steps, h)
		}
	}
	stop()
	// Nothing after the power-off changed the record.
	final := api.waitAction(t, wipe.ID, 10*time.Second)
	if final.State != "done" || !final.Evidence.Verified || len(final.Evidence.Checks) != len(seen.Evidence.Checks) {
		t.Fatalf("the wipe after the agent stopped: %s %q %+v", final.State, final.Error, final.Evidence)
	}
	fmt.Println(wipeChildMarker)
}
