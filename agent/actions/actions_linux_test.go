package actions

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

// TestLinuxLockOnFakeRoot runs the real lock plan (ExecRunner, real usermod
// with --prefix) against a temporary root with its own passwd and shadow.
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
	os.MkdirAll(etc, 0o755)
	files := map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n" +
			"bob:x:1001:1001:Bob:/home/bob:/bin/bash\nsvc:x:999:999::/var/svc:/usr/sbin/nologin\n",
		"shadow": "root:$y$j9T$rootHash:20000:0:99999:7:::\nalice:$y$j9T$aliceHash:20000:0:99999:7:::\n" +
			"bob:$y$j9T$bobHash:20000:0:99999:7:::\nsvc:*:20000:0:99999:7:::\n",
		"group":   "root:x:0:\nalice:x:1000:\nbob:x:1001:\nsvc:x:999:\n",
		"gshadow": "root:*::\nalice:!::\nbob:!::\nsvc:!::\n",
	}
	for n, c := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(n, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(etc, n), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	realShadow, _ := os.ReadFile("/etc/shadow")

	p := &LinuxPlanner{Root: root}
	e := &Executor{Serial: "S1", Planner: p, Runner: ExecRunner{}}
	res := e.Execute(context.Background(), Command{ID: "l", Kind: Lock, TargetSerial: "S1", Message: "locked by IT\n"})
	if res.State != Done {
		t.Fatalf("lock failed: %+v", res)
	}
	for _, s := range res.Steps {
		if strings.HasPrefix(s.Step.Name, "end-sessions") {
			t.Fatalf("session step in a fake-root plan: %v", s.Step)
		}
	}
	for _, f := range []string{"etc/nologin", "run/nologin"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil || string(b) != "locked by IT\n" {
			t.Fatalf("%s = %q, %v", f, b, err)
		}
	}
	shadow, err := os.ReadFile(filepath.Join(etc, "shadow"))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(shadow)), "\n") {
		f := strings.Split(l, ":")
		fields[f[0]] = f
	}
	for _, u := range []string{"alice", "bob"} {
		f := fields[u]
		if !strings.HasPrefix(f[1], "!") || f[7] != "1" {
			t.Errorf("%s not locked and expired: %v", u, f)
		}
	}
	for _, u := range []string{"root", "svc"} {
		f := fields[u]
		if strings.HasPrefix(f[1], "!") || f[7] != "" {
			t.Errorf("%s must not be touched: %v", u, f)
		}
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
