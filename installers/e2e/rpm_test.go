package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/installers/linux"
)

// TestRPMLifecycle installs, upgrades and erases the .rpm on this machine
// with rpm itself (a private database, --nodeps: Debian's rpm has no
// packages of its own), so the scriptlets really run: %post fixes modes and
// tolerates the missing systemd, upgrade keeps the identity, erase removes
// it (rpm has no purge).
func TestRPMLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("installs a package on this machine; skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing an .rpm needs root")
	}
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm not installed (apt-get install rpm)")
	}
	if exec.Command("dpkg", "-s", "lanyard-agent").Run() == nil {
		t.Skip("lanyard-agent is installed on this machine; not touching it")
	}
	for _, p := range []string{configPath, stateDir, agentBin} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s exists on this machine; not touching it", p)
		}
	}
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
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho stand-in agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pkg := func(version, secret string) string {
		cfg, err := config.Marshal(config.Config{ControlPlaneURL: "https://lanyard.example.com", EnrollmentSecret: secret})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := linux.Build(&buf, linux.Input{Format: linux.RPM, Arch: goarchDeb(), Version: version, BinaryPath: bin,
			Config: cfg, Mtime: time.Unix(1764000000, 0)}, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "lanyard-agent-"+version+".rpm")
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	out := rpm("-i", "--nodeps", "--ignorearch", pkg("1.0.0", "lyes_first"))
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

	rpm("-U", "--nodeps", "--ignorearch", pkg("1.1.0", "lyes_second"))
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
