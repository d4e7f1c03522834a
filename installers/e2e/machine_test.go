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

// mayInstall skips the test unless it may install pkg ("a .deb") on this
// machine: not in -short mode, as root, with tool on the PATH (else it
// skips saying missing), and with no lanyard-agent installed and none of
// its files in place.
func mayInstall(t *testing.T, pkg, tool, missing string) {
	t.Helper()
	if testing.Short() {
		t.Skip("installs a package on this machine; skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skipf("installing %s needs root", pkg)
	}
	if _, err := exec.LookPath(tool); err != nil {
		t.Skip(missing)
	}
	if exec.Command("dpkg", "-s", "lanyard-agent").Run() == nil {
		t.Skip("lanyard-agent is already installed on this machine; not touching it")
	}
	for _, p := range []string{configPath, stateDir, agentBin} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s exists on this machine; not touching it", p)
		}
	}
}

// standInPackage builds a package of format (linux.Deb or linux.RPM) at
// version around a shell-script agent, with a config holding only a
// control plane URL and secret, and writes it into dir.
func standInPackage(t *testing.T, dir, format, version, secret string) string {
	t.Helper()
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho stand-in agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Marshal(config.Config{ControlPlaneURL: "https://lanyard.example.com", EnrollmentSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := linux.Build(&buf, linux.Input{Format: format, Arch: goarchDeb(), Version: version, BinaryPath: bin,
		Config: cfg, Mtime: time.Unix(1764000000, 0)}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	name := "lanyard-agent_" + version + ".deb"
	if format == linux.RPM {
		name = "lanyard-agent-" + version + ".rpm"
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func goarchDeb() string {
	out, err := exec.Command("dpkg", "--print-architecture").Output()
	if err == nil {
		switch strings.TrimSpace(string(out)) {
		case "arm64":
			return "arm64"
		}
	}
	return "amd64"
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
