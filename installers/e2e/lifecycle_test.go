package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/installers/linux"
)

// TestDebLifecycle installs, upgrades, removes and purges the .deb on this
// machine without a control plane: the package scripts must work without a
// running systemd, keep the device identity (/var/lib/lanyard) across
// upgrade and remove, and delete it with the configuration on purge.
func TestDebLifecycle(t *testing.T) {
	mayInstall(t, "a .deb", "dpkg", "dpkg not available")
	t.Cleanup(func() {
		_ = exec.Command("dpkg", "-P", "lanyard-agent").Run()
		_ = os.RemoveAll("/etc/lanyard")
		_ = os.RemoveAll(stateDir)
	})
	dir := t.TempDir()

	out := run(t, "dpkg", "-i", standInPackage(t, dir, linux.Deb, "1.0.0", "lyes_first"))
	if !strings.Contains(out, "systemd is not running") {
		t.Errorf("postinst output:\n%s", out)
	}
	// The agent would write its identity here after enrolling.
	identity := filepath.Join(stateDir, "identity.pem")
	if err := os.WriteFile(identity, []byte("device identity"), 0o600); err != nil {
		t.Fatal(err)
	}

	run(t, "dpkg", "-i", standInPackage(t, dir, linux.Deb, "1.1.0", "lyes_second"))
	if b, err := os.ReadFile(identity); err != nil || string(b) != "device identity" {
		t.Fatalf("identity after upgrade: %q, %v", b, err)
	}
	if cfg, err := config.Load(configPath); err != nil || cfg.EnrollmentSecret != "lyes_second" {
		t.Errorf("config after upgrade: %+v, %v (want the new package's file)", cfg, err)
	}
	if fi, err := os.Stat(configPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode after upgrade: %v, %v", fi, err)
	}

	run(t, "dpkg", "-r", "lanyard-agent")
	if _, err := os.Stat(agentBin); err == nil {
		t.Error("binary left after remove")
	}
	if _, err := os.Stat(configPath); err == nil {
		t.Error("config (with its secret) left after remove")
	}
	if _, err := os.Stat(identity); err != nil {
		t.Errorf("remove (not purge) deleted the device identity: %v", err)
	}

	run(t, "dpkg", "-P", "lanyard-agent")
	for _, p := range []string{stateDir, "/etc/lanyard", agentBin, unitPath, wantsLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
}
