package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/installers"
	installersvc "github.com/lanyardhq/lanyard/installers/service"
)

type ctlMinter struct{ db *store.DB }

func (m ctlMinter) MintPackageSecret(ctx context.Context, orgID string, o installers.SecretOptions) (installers.MintedSecret, error) {
	plain := "lyes_" + domain.NewID()
	s := store.EnrollmentSecret{OrgID: orgID, Name: o.Name, Prefix: plain[:10]}
	if err := m.db.CreateEnrollmentSecret(ctx, &s, store.HashToken(plain)); err != nil {
		return installers.MintedSecret{}, err
	}
	return installers.MintedSecret{ID: s.ID, Plaintext: plain}, nil
}

type ctlCA struct{}

func (ctlCA) CAFingerprint(context.Context, string) (string, error) {
	return strings.Repeat("cd", 32), nil
}

// scriptAgent stands in for the agent binary (a .deb does not care what it packs).
type scriptAgent struct{ path string }

func (s scriptAgent) AgentBinary(context.Context, string, string) (string, error) { return s.path, nil }

func TestInstallersCommands(t *testing.T) {
	db := storetest.NewSQLite(t)
	o := storetest.Org(t, db, domain.PlanPro)
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	if err := os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := &installers.Builder{ControlPlaneURL: "https://lanyard.example.com", Version: "2.0.0", Secrets: ctlMinter{db},
		CA: ctlCA{}, Orgs: db, Agents: scriptAgent{agent}}
	svc, err := installersvc.New(b, db, filepath.Join(dir, "cache"), nil)
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.New(secrets.NewKey())
	h := apitest.New(t, db, api.Options{}, svc.Routes())
	svc.Links = &installersvc.Links{Sealer: kr, BaseURL: h.Server.URL}
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(dir, "ctl.json"))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(context.Background(), args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleIT)); err != nil {
		t.Fatal(err)
	}
	if out, err := run("installers", "platforms"); err != nil || !strings.Contains(out, "windows-msi") || !strings.Contains(out, "not yet verified on macOS") {
		t.Fatalf("platforms: %q %v", out, err)
	}
	outDir := filepath.Join(dir, "dl")
	out, err := run("installers", "download", "--platform", "linux-deb", "--arch", "amd64", "--out", outDir)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	file := filepath.Join(outDir, "lanyard-agent_2.0.0_linux-deb_amd64.deb")
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("download wrote %q: %v", out, err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("downloaded installer mode %v, want 0600", fi.Mode().Perm())
	}
	sum := sha256.Sum256(body)
	if sumFile, _ := os.ReadFile(file + ".sha256"); string(sumFile) != hex.EncodeToString(sum[:])+"  lanyard-agent_2.0.0_linux-deb_amd64.deb\n" {
		t.Errorf(".sha256 = %q", sumFile)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		c := exec.Command("sha256sum", "-c", filepath.Base(file)+".sha256")
		c.Dir = outDir
		if b, err := c.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v %s", err, b)
		}
	}
	if out, err := run("installers", "builds"); err != nil || !strings.Contains(out, "lanyard-agent_2.0.0_linux-deb_amd64.deb") {
		t.Fatalf("builds: %q %v", out, err)
	}
	out, err = run("installers", "link", "--platform", "linux-deb", "--ttl", "24h")
	if err != nil || !strings.Contains(out, h.Server.URL+"/api/v1/installers/download/") {
		t.Fatalf("link: %q %v", out, err)
	}
	if _, err := run("installers", "download", "--platform", "linux-apk"); err == nil || !strings.Contains(err.Error(), "valid:") {
		t.Errorf("bad platform: %v", err)
	}
}
