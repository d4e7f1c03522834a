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

// TestRPMLifecycle installs, upgrades and erases the .rpm on this machine
// with rpm itself (a private database, --nodeps: Debian's rpm has no
// packages of its own), so the scriptlets really run: %post fixes modes and
// tolerates the missing systemd, upgrade keeps the identity, erase removes
// it (rpm has no purge).
func TestRPMLifecycle(t *testing.T) {
	mayInstall(t, "an .rpm", "rpm", "rpm not installed (apt-get install rpm)")
	dir := t.TempDir()
	db := filepath.Join(dir, "rpmdb")
	rpm := func(args ...string) string {
		t.Helper()
		return run(t, "rpm", append([]string{"--dbpath", db}, args...)...)
	}
	t.Cleanup(func() {
		_ = exec.Command("rpm", "--dbpath", db, "-e", "--nodeps", "lanyard-agent").Run()
		for _, p := range []string{"/etc/lanyard", stateDir, agentBin, unitPath} {
			_ = os.RemoveAll(p)
		}
	})
	rpm("--initdb")

	out := rpm("-i", "--nodeps", "--ignorearch", standInPackage(t, dir, linux.RPM, "1.0.0", "lyes_first"))
	if !strings.Contains(out, "systemd is not running") {
		t.Errorf("%%post output:\n%s", out)
	}
	for p, want := range map[string]os.FileMode{configPath: 0o600, stateDir: 0o700 | os.ModeDir, agentBin: 0o755} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&(os.ModeDir|os.ModePerm) != want {
			t.Errorf("%s: %v %v, want %v", p, fi, err, want)
		}
	}
	identity := filepath.Join(stateDir, "identity.pem")
	if err := os.WriteFile(identity, []byte("device identity"), 0o600); err != nil {
		t.Fatal(err)
	}

	rpm("-U", "--nodeps", "--ignorearch", standInPackage(t, dir, linux.RPM, "1.1.0", "lyes_second"))
	if b, err := os.ReadFile(identity); err != nil || string(b) != "device identity" {
		t.Fatalf("identity after upgrade: %q, %v", b, err)
	}
	if cfg, err := config.Load(configPath); err != nil || cfg.EnrollmentSecret != "lyes_second" {
		t.Errorf("config after upgrade: %+v, %v", cfg, err)
	}
	if v := strings.TrimSpace(rpm("-q", "--qf", "%{VERSION}", "lanyard-agent")); v != "1.1.0" {
		t.Errorf("installed version %q", v)
	}

	rpm("-e", "--nodeps", "lanyard-agent")
	for _, p := range []string{stateDir, "/etc/lanyard", agentBin, unitPath, wantsLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left after erase", p)
		}
	}
}
