package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/config"
	cpconfig "github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/installers"
)

// TestInstallerAddressesCLIMatchAPI: with an agent-url whose port is not 8443, a package
// built by `lanyard installers build` carries the same agent.json addresses (control
// plane, agent gRPC, enrollment, CA fingerprint) as the one the installers API builds for
// the same config, in every package format, and the enrollment address is the port the
// server's enrollment listener uses (agent port + 1), not the agent's 8444 default.
func TestInstallerAddressesCLIMatchAPI(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "rpm", "bsdtar", "wixl", "msiextract", "cpio", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	bins := filepath.Join(dir, "bin")
	targets := []installers.Target{{Platform: installers.LinuxDeb, Arch: "amd64"}, {Platform: installers.LinuxRPM, Arch: "amd64"},
		{Platform: installers.WindowsMSI, Arch: "amd64"}, {Platform: installers.MacOSPkg, Arch: "arm64"}}
	// Stand-in agents: the package formats do not care what they pack. The CLI reads them
	// from --agent-bin, the server (as in production) from beside its own executable.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		standIn(t, filepath.Join(bins, installers.BinaryName(tg.GOOS(), tg.Arch)))
		standIn(t, filepath.Join(filepath.Dir(exe), installers.BinaryName(tg.GOOS(), tg.Arch)))
	}
	global := []string{"--data-dir", data, "--log-level", "warn", "--public-url", "https://lanyard.example.com",
		"--agent-url", "lanyard.example.com:9443"}
	if out, err := runLanyard(t, append(global, "admin", "create-org", "Acme Pro", "--plan", "pro", "--owner-email", "owner@acme.example")...); err != nil {
		t.Fatalf("create-org: %v\n%s", err, out)
	}
	cliCfg := map[installers.Platform]config.Config{}
	for _, tg := range targets {
		out := filepath.Join(dir, "cli-"+string(tg.Platform))
		if o, err := runLanyard(t, append(global, "installers", "build", "--org", "Acme Pro", "--platform", string(tg.Platform),
			"--arch", tg.Arch, "--agent-bin", bins, "--out", out, "--version", "1.2.3")...); err != nil {
			t.Fatalf("cli build %s: %v\n%s", tg.Platform, err, o)
		}
		cliCfg[tg.Platform] = bakedConfig(t, tg.Platform, filepath.Join(out, tg.FileName("1.2.3")))
	}

	// The same config, served: GET /api/v1/installers/{platform} builds a fresh package.
	root := newRootCmd()
	if err := root.PersistentFlags().Parse(global); err != nil {
		t.Fatal(err)
	}
	scfg, err := cpconfig.Load(root.PersistentFlags())
	if err != nil {
		t.Fatal(err)
	}
	scfg.HTTPAddr, scfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	if scfg.DataDir != data {
		t.Fatalf("server config data dir %q, want %q", scfg.DataDir, data)
	}
	s, err := server.New(context.Background(), scfg, server.NewLogger(scfg))
	if err != nil {
		t.Fatal(err)
	}
	defer s.DB.Close()
	orgs, err := s.DB.ListOrgs(context.Background())
	if err != nil || len(orgs) != 1 {
		t.Fatalf("orgs %v %v", orgs, err)
	}
	_, token, err := s.DB.CreateToken(context.Background(), orgs[0].ID, "test", domain.RoleOwner, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	for _, tg := range targets {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/installers/"+string(tg.Platform)+"?arch="+tg.Arch+"&fresh=true", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("api build %s: %d %s", tg.Platform, resp.StatusCode, body)
		}
		p := filepath.Join(dir, "api-"+tg.FileName("api"))
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		api := bakedConfig(t, tg.Platform, p)
		cli := cliCfg[tg.Platform]
		if api.EnrollmentAddress != "lanyard.example.com:9444" || api.GRPCAddress != "lanyard.example.com:9443" {
			t.Errorf("%s: API package addresses grpc=%q enroll=%q, want lanyard.example.com:9443 and :9444", tg.Platform, api.GRPCAddress, api.EnrollmentAddress)
		}
		for _, f := range []struct{ name, cli, api string }{
			{"control_plane_url", cli.ControlPlaneURL, api.ControlPlaneURL},
			{"grpc_address", cli.GRPCAddress, api.GRPCAddress},
			{"enrollment_address", cli.EnrollmentAddress, api.EnrollmentAddress},
			{"ca_fingerprint_sha256", cli.CAFingerprintSHA256, api.CAFingerprintSHA256},
		} {
			if f.cli != f.api || f.cli == "" {
				t.Errorf("%s: %s is %q from the CLI, %q from the API", tg.Platform, f.name, f.cli, f.api)
			}
		}
	}
}

// standIn writes a placeholder agent binary at p, unless one is there already (then it
// is left alone); the file is removed when the test ends.
func standIn(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Stat(p); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho lanyard-agent stand-in\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(p) })
}

// bakedConfig unpacks a package with the format's own tools and reads its agent.json.
func bakedConfig(t *testing.T, p installers.Platform, pkgPath string) config.Config {
	t.Helper()
	root := t.TempDir()
	run := func(dir, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	switch p {
	case installers.LinuxDeb:
		run("", "dpkg-deb", "-x", pkgPath, root)
	case installers.LinuxRPM:
		run("", "bsdtar", "-xpf", pkgPath, "-C", root)
	case installers.WindowsMSI:
		run("", "msiextract", "-C", root, pkgPath)
	case installers.MacOSPkg:
		x := t.TempDir()
		run("", "bsdtar", "-xf", pkgPath, "-C", x)
		run(root, "sh", "-c", fmt.Sprintf("gzip -dc %q | cpio -idm --quiet", filepath.Join(x, "base.pkg", "Payload")))
	}
	var found []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.EqualFold(d.Name(), "agent.json") {
			found = append(found, path)
		}
		return nil
	})
	if len(found) != 1 {
		t.Fatalf("%s: agent.json found at %v", p, found)
	}
	c, err := config.Load(found[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}
