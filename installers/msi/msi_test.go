package msi

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lanyardhq/lanyard/installers/internal/testutil"
)

const secret = "lyes_msitest_5b1f0c"

type built struct {
	unsigned, signed, cert string
}

var (
	once sync.Once
	b    built
	berr error
)

// buildBoth builds one unsigned and one signed MSI per test run.
func buildBoth(t *testing.T) built {
	t.Helper()
	testutil.Need(t, "wixl", "msibuild", "msiinfo", "msiextract", "osslsigncode")
	once.Do(func() {
		dir, err := testutil.TempDir()
		if err != nil {
			berr = err
			return
		}
		exe := testutil.GoBinary(t, "windows", "amd64")
		cfg := []byte(`{"control_plane_url":"https://lanyard.example.com","enrollment_secret":"` + secret + `"}` + "\n")
		ctx := context.Background()
		for _, signed := range []bool{false, true} {
			scratch, _ := os.MkdirTemp(dir, "scratch-")
			in := Input{Arch: "amd64", Version: "1.2.3-rc.1", ExePath: exe, Config: cfg}
			out := filepath.Join(dir, "unsigned.msi")
			if signed {
				cert, key := testutil.CodeSigningCert(t, dir)
				in.Sign = &Authenticode{CertFile: cert, KeyFile: key}
				b.cert = cert
				out = filepath.Join(dir, "signed.msi")
			}
			if err := Build(ctx, in, scratch, out); err != nil {
				berr = err
				return
			}
			if signed {
				b.signed = out
			} else {
				b.unsigned = out
			}
		}
	})
	if berr != nil {
		t.Fatal(berr)
	}
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

func export(t *testing.T, msi, table string) string {
	t.Helper()
	out, err := exec.Command("msiinfo", "export", msi, table).CombinedOutput()
	if err != nil {
		t.Fatalf("msiinfo export %s: %v\n%s", table, err, out)
	}
	return string(out)
}

func row(t *testing.T, table, key string) []string {
	t.Helper()
	for _, l := range strings.Split(strings.ReplaceAll(table, "\r", ""), "\n") {
		f := strings.Split(l, "\t")
		if f[0] == key {
			return f
		}
	}
	t.Fatalf("no row %q in:\n%s", key, table)
	return nil
}

func TestTables(t *testing.T) {
	msi := buildBoth(t).unsigned
	si := row(t, export(t, msi, "ServiceInstall"), "AgentService")
	// Name, DisplayName, ServiceType, StartType, ErrorControl, ..., StartName, Password, Arguments, Component_
	if si[1] != ServiceName || si[3] != "16" || si[4] != "2" || si[8] != "LocalSystem" || si[10] != "run" || si[11] != "AgentExe" {
		t.Errorf("ServiceInstall row = %q (want own process 16, auto start 2, LocalSystem, args \"run\")", si)
	}
	sc := row(t, export(t, msi, "ServiceControl"), "AgentServiceControl")
	if sc[1] != ServiceName || sc[2] != "163" || sc[4] != "1" {
		t.Errorf("ServiceControl row = %q (want event 163: start on install, stop both, delete on uninstall; wait)", sc)
	}
	files := export(t, msi, "File")
	if f := row(t, files, "AgentExe"); f[2] != "LANYARDA.EXE|lanyard-agent.exe" {
		t.Errorf("exe File row = %q", f)
	}
	if f := row(t, files, "AgentConfig"); f[2] != "AGENT.JSN|agent.json" {
		t.Errorf("config File row = %q", f)
	}
	fa := row(t, export(t, msi, "MsiServiceConfigFailureActions"), "AgentRestartOnFailure")
	if fa[1] != ServiceName || fa[6] != "1[~]1[~]1" {
		t.Errorf("failure actions row = %q", fa)
	}
	if seq := row(t, export(t, msi, "InstallExecuteSequence"), "MsiConfigureServices"); seq[2] != "5850" {
		t.Errorf("MsiConfigureServices sequence = %q", seq)
	}
	lp := export(t, msi, "MsiLockPermissionsEx")
	if r := row(t, lp, "LockAgentConfig"); r[1] != "AgentConfig" || r[2] != "File" || r[3] != configSDDL {
		t.Errorf("config lock row = %q", r)
	}
	if r := row(t, lp, "LockAgentDataDir"); r[1] != "DATADIR" || r[2] != "CreateFolder" {
		t.Errorf("folder lock row = %q", r)
	}
	if up := export(t, msi, "Upgrade"); !strings.Contains(up, "{"+UpgradeCode+"}") && !strings.Contains(up, UpgradeCode) {
		t.Errorf("Upgrade table lacks the stable upgrade code:\n%s", up)
	}
	prop := export(t, msi, "Property")
	if !strings.Contains(prop, UpgradeCode) || !strings.Contains(prop, "ProductVersion\t1.2.3") {
		t.Errorf("Property table:\n%s", prop)
	}
	// The secret is in no table: not a property, not a service argument.
	for _, table := range []string{"Property", "ServiceInstall", "ServiceControl", "CustomAction", "Registry"} {
		if strings.Contains(export(t, msi, table), secret) {
			t.Errorf("secret found in the %s table", table)
		}
	}
	// The config file is in the cabinet with the baked secret.
	dir := t.TempDir()
	if out, err := exec.Command("msiextract", "-C", dir, msi).CombinedOutput(); err != nil {
		t.Fatalf("msiextract: %v\n%s", err, out)
	}
	var cfg []byte
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "agent.json" {
			cfg, _ = os.ReadFile(p)
		}
		return nil
	})
	if !strings.Contains(string(cfg), secret) {
		t.Errorf("extracted agent.json = %q", cfg)
	}
}

func TestSigned(t *testing.T) {
	bb := buildBoth(t)
	ctx := context.Background()
	if err := Verify(ctx, Tools{}, bb.cert, bb.signed); err != nil {
		t.Fatalf("signed MSI does not verify: %v", err)
	}
	if err := Verify(ctx, Tools{}, bb.cert, bb.unsigned); err == nil {
		t.Error("unsigned MSI verified")
	}
	if err := Verify(ctx, Tools{}, bb.cert, testutil.Tampered(t, bb.signed)); err == nil {
		t.Error("tampered MSI verified")
	}
	// The same checks in Go (relic), for hosts without osslsigncode.
	pemBytes, _ := os.ReadFile(bb.cert)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	if _, err := VerifyGo(bb.signed, roots); err != nil {
		t.Errorf("relic: signed MSI does not verify: %v", err)
	}
	if _, err := VerifyGo(bb.unsigned, roots); err == nil {
		t.Error("relic: unsigned MSI verified")
	}
	if _, err := VerifyGo(testutil.Tampered(t, bb.signed), roots); err == nil {
		t.Error("relic: tampered MSI verified")
	}
	if _, err := VerifyGo(bb.signed, x509.NewCertPool()); err == nil {
		t.Error("relic: MSI verified against an unrelated root")
	}
	// The exe inside was signed before it was packed.
	dir := t.TempDir()
	if out, err := exec.Command("msiextract", "-C", dir, bb.signed).CombinedOutput(); err != nil {
		t.Fatalf("msiextract: %v\n%s", err, out)
	}
	var exe string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "lanyard-agent.exe" {
			exe = p
		}
		return nil
	})
	if exe == "" {
		t.Fatal("no exe in the signed MSI")
	}
	if err := Verify(ctx, Tools{}, bb.cert, exe); err != nil {
		t.Errorf("exe inside the MSI is not signed: %v", err)
	}
}

func TestMSIVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3": "1.2.3", "v0.4.0-rc.1+abc": "0.4.0", "2": "2.0.0", "1.2": "1.2.0", "255.255.65535": "255.255.65535",
	} {
		got, err := MSIVersion(in)
		if err != nil || got != want {
			t.Errorf("MSIVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "dev", "256.0.0", "1.2.70000"} {
		if _, err := MSIVersion(bad); err == nil {
			t.Errorf("MSIVersion(%q) accepted", bad)
		}
	}
}

func TestRejectsArch(t *testing.T) {
	err := Build(context.Background(), Input{Arch: "arm64", Version: "1.0.0", ExePath: "x", Config: []byte("{}")}, t.TempDir(), filepath.Join(t.TempDir(), "x.msi"))
	if err == nil || !strings.Contains(err.Error(), "valid: amd64") {
		t.Errorf("arm64: err = %v", err)
	}
}
