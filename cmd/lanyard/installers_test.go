package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/config"
)

func runLanyard(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestInstallersBuild drives `lanyard installers build` in-process on a temp data dir:
// a package per build with its own secret, plan refusal, target validation.
func TestInstallersBuild(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	bins := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bins, 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in agent: the .deb does not care what it packs.
	if err := os.WriteFile(filepath.Join(bins, "lanyard-agent-linux-amd64"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, org := range [][2]string{{"Acme Pro", "pro"}, {"Small Co", "essentials"}} {
		if out, err := runLanyard(t, "--data-dir", data, "admin", "create-org", org[0], "--plan", org[1], "--owner-email", "owner@"+org[1]+".example"); err != nil {
			t.Fatalf("create-org: %v\n%s", err, out)
		}
	}
	build := func(extra ...string) (string, error) {
		args := append([]string{"--data-dir", data, "--log-level", "warn", "--public-url", "https://lanyard.example.com",
			"--agent-url", "lanyard.example.com:8443", "installers", "build", "--agent-bin", bins, "--out", filepath.Join(dir, "out")}, extra...)
		return runLanyard(t, args...)
	}
	out, err := build("--org", "acme pro", "--platform", "linux-deb", "--arch", "amd64", "--version", "v1.2.3", "--secret-max-uses", "5")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	deb := filepath.Join(dir, "out", "lanyard-agent_1.2.3_linux-deb_amd64.deb")
	if !strings.Contains(out, deb) || !strings.Contains(out, "sha256") {
		t.Fatalf("output:\n%s", out)
	}
	if _, err := os.Stat(deb + ".sha256"); err != nil {
		t.Error(err)
	}
	x := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v %s", err, b)
	}
	cfg, err := config.Load(filepath.Join(x, "etc/lanyard/agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ControlPlaneURL != "https://lanyard.example.com" || cfg.GRPCAddress != "lanyard.example.com:8443" ||
		len(cfg.CAFingerprintSHA256) != 64 || !strings.HasPrefix(cfg.EnrollmentSecret, "lyes_") {
		t.Errorf("baked config %+v", cfg)
	}
	secret1 := regexp.MustCompile(`secret\s+(\S+)`).FindStringSubmatch(out)

	// A second build gets its own secret.
	out, err = build("--org", "Acme Pro", "--platform", "linux-deb", "--version", "1.2.3")
	secret2 := regexp.MustCompile(`secret\s+(\S+)`).FindStringSubmatch(out)
	if err != nil || secret1 == nil || secret2 == nil || secret1[1] == secret2[1] {
		t.Errorf("second build: %v, secrets %v %v", err, secret1, secret2)
	}

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"plan":     {[]string{"--org", "Small Co", "--platform", "linux-deb"}, `"essentials" plan`},
		"platform": {[]string{"--org", "Acme Pro", "--platform", "linux-apk"}, "valid: linux-deb, linux-rpm, macos-pkg, windows-msi"},
		"arch":     {[]string{"--org", "Acme Pro", "--platform", "windows-msi", "--arch", "arm64"}, "valid: amd64"},
		"org":      {[]string{"--org", "Nope", "--platform", "linux-deb"}, `known: "Acme Pro"`},
	} {
		if _, err := build(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
}
