package blockdevtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// LUKSLoop is a LUKS header on a 32 MiB image attached to a loop device.
type LUKSLoop struct {
	Name  string // "loop5"
	Devno string // "7:5"
	UUID  string
	Key   string // key file
	Img   string
}

// Dev is the loop device's path.
func (l LUKSLoop) Dev() string { return "/dev/" + l.Name }

// NewLUKSLoop formats an image in a temporary directory as typ ("luks1",
// "luks2") with cryptsetup cs and attaches it to a free loop device, detached
// (and checked detached) when the test ends. The test is skipped when no loop
// device is available. The fresh header must open with its key.
func NewLUKSLoop(t *testing.T, cs, typ string) LUKSLoop {
	t.Helper()
	dir := t.TempDir()
	img, key := filepath.Join(dir, "disk.img"), filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("correct horse battery staple "+typ), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	// The minimum PBKDF2 cost keeps the tests fast on a busy machine (a
	// benchmarked LUKS1 format takes seconds).
	args := []string{"luksFormat", "--batch-mode", "--type", typ, "--key-file", key, "--pbkdf-force-iterations", "1000"}
	if typ == "luks2" {
		args = append(args, "--pbkdf", "pbkdf2")
	}
	if out, err := exec.Command(cs, append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("luksFormat: %v %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device available: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v %s", dev, err, out)
		}
		if b, _ := exec.Command("losetup", "--associated", img).Output(); strings.TrimSpace(string(b)) != "" {
			t.Errorf("%s still attached: %s", img, b)
		}
	})
	l := LUKSLoop{Name: filepath.Base(dev), Key: key, Img: img}
	b, err := os.ReadFile(filepath.Join("/sys/class/block", l.Name, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	l.Devno = strings.TrimSpace(string(b))
	u, err := exec.Command(cs, "luksUUID", dev).Output()
	if err != nil {
		t.Fatal(err)
	}
	l.UUID = strings.TrimSpace(string(u))
	if st := l.HeaderState(cs); st != "opens" {
		t.Fatalf("fresh header %s does not open: %s", dev, st)
	}
	return l
}

// HeaderState tries the volume's own key: "opens", or cryptsetup's refusal
// (in the C locale, so tests can match "No usable keyslot").
func (l LUKSLoop) HeaderState(cs string) string {
	cmd := exec.Command(cs, "open", "--test-passphrase", "--key-file", l.Key, l.Dev())
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "opens"
	}
	return strings.TrimSpace(string(out))
}

// DMUUID is what cryptsetup writes into an opened LUKS mapping's dm uuid.
func DMUUID(typ, uuid, name string) string {
	return "CRYPT-" + typ + "-" + strings.ReplaceAll(uuid, "-", "") + "-" + name
}
