package posture

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestCollectOnThisMachine runs the real checks. In a container the root is
// overlay, so disk encryption must be Unknown, never Off.
func TestCollectOnThisMachine(t *testing.T) {
	r := Collect(context.Background(), "12", "")
	for name, st := range map[string]State{
		"disk_encryption": r.DiskEncryption, "firewall": r.Firewall,
		"screen_lock": r.ScreenLock, "auto_updates": r.AutoUpdates,
	} {
		if st != On && st != Off && st != Unknown {
			t.Errorf("%s = %q", name, st)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if _, _, fstype, err := RootDevice(string(mi)); err == nil && fstype == "overlay" {
		if r.DiskEncryption != Unknown {
			t.Fatalf("overlay root: disk_encryption = %q, want unknown", r.DiskEncryption)
		}
		if !strings.Contains(r.Details["disk_encryption"], "not on a block device") {
			t.Fatalf("detail = %q", r.Details["disk_encryption"])
		}
	}
	if r.OSVersion != "12" {
		t.Fatalf("OSVersion = %q", r.OSVersion)
	}
}
