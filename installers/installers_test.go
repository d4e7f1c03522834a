package installers

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/installers/internal/testutil"
	"github.com/lanyardhq/lanyard/installers/msi"
	"github.com/lanyardhq/lanyard/installers/pkg"
	"github.com/lanyardhq/lanyard/installers/pkg/bom"
)

const testFingerprint = "3f1c2a4b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"

type fakeMinter struct {
	mu     sync.Mutex
	minted []SecretOptions
}

func (f *fakeMinter) MintPackageSecret(_ context.Context, orgID string, o SecretOptions) (MintedSecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.minted = append(f.minted, o)
	n := len(f.minted)
	return MintedSecret{ID: fmt.Sprintf("sec-%d", n), Plaintext: fmt.Sprintf("lyes_TESTSECRET%04d_%s", n, orgID)}, nil
}

type fakeCA struct{}

func (fakeCA) CAFingerprint(context.Context, string) (string, error) { return testFingerprint, nil }

type fakeOrgs map[string]domain.Org

func (f fakeOrgs) GetOrg(_ context.Context, id string) (domain.Org, error) {
	o, ok := f[id]
	if !ok {
		return o, errors.New("not found")
	}
	return o, nil
}

type testBinaries struct{ t testing.TB }

func (b testBinaries) AgentBinary(_ context.Context, goos, goarch string) (string, error) {
	return testutil.GoBinary(b.t, goos, goarch), nil
}

var orgs = fakeOrgs{
	"org-pro": {ID: "org-pro", Name: "Acme", Plan: domain.PlanPro, Settings: domain.OrgSettings{KeepEnrollmentSecret: true}},
	"org-ess": {ID: "org-ess", Name: "Small Co", Plan: domain.PlanEssentials},
}

func newBuilder(t testing.TB, m *fakeMinter) *Builder {
	return &Builder{ControlPlaneURL: "https://lanyard.example.com", Version: "1.2.3", Secrets: m, CA: fakeCA{},
		Orgs: orgs, Agents: testBinaries{t}, Now: func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }}
}

// built holds one package per target, built once per test run.
var (
	buildOnce sync.Once
	built     map[Target]Artifact
	builtDir  string
	buildErr  error
	minter    = &fakeMinter{}
	signCert  string
)

var allTargets = []Target{
	{LinuxDeb, "amd64"}, {LinuxRPM, "arm64"}, {WindowsMSI, "amd64"}, {MacOSPkg, "arm64"}, {MacOSPkg, Universal},
}

func buildAll(t *testing.T) map[Target]Artifact {
	t.Helper()
	testutil.Need(t, "dpkg-deb", "rpm", "wixl", "msibuild", "msiinfo", "msiextract", "bsdtar", "cpio", "osslsigncode")
	buildOnce.Do(func() {
		builtDir, buildErr = testutil.TempDir()
		if buildErr != nil {
			return
		}
		b := newBuilder(t, minter)
		cert, key := testutil.CodeSigningCert(t, builtDir)
		signCert = cert
		b.Authenticode = &msi.Authenticode{CertFile: cert, KeyFile: key}
		b.PkgSigning = &pkg.Signing{CertFile: cert, KeyFile: key}
		built = map[Target]Artifact{}
		for _, tg := range allTargets {
			a, err := b.Build(context.Background(), Request{OrgID: "org-pro", Target: tg}, filepath.Join(builtDir, "out"))
			if err != nil {
				buildErr = err
				return
			}
			built[tg] = a
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

func TestParseTarget(t *testing.T) {
	for _, c := range []struct{ p, a, want string }{
		{"linux-deb", "", "linux-deb/amd64"}, {"linux-rpm", "aarch64", "linux-rpm/arm64"},
		{"windows-msi", "x64", "windows-msi/amd64"}, {"macos-pkg", "", "macos-pkg/universal"},
		{"MACOS-PKG", "universal", "macos-pkg/universal"},
	} {
		tg, err := ParseTarget(c.p, c.a)
		if err != nil || string(tg.Platform)+"/"+tg.Arch != c.want {
			t.Errorf("ParseTarget(%q, %q) = %v, %v; want %s", c.p, c.a, tg, err, c.want)
		}
	}
	_, err := ParseTarget("linux-apk", "amd64")
	if !errors.Is(err, ErrInvalidTarget) || !strings.Contains(err.Error(), "valid: linux-deb, linux-rpm, macos-pkg, windows-msi") {
		t.Errorf("unknown platform: %v", err)
	}
	_, err = ParseTarget("windows-msi", "arm64")
	if !errors.Is(err, ErrInvalidTarget) || !strings.Contains(err.Error(), "valid: amd64") {
		t.Errorf("unknown arch: %v", err)
	}
}

func TestPackageVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.4.0": "1.4.0", "1.4.0-rc.1": "1.4.0-rc.1", "dev": "0.0.0-dev+dev",
		"2ba6d02-dirty": "0.0.0-dev+2ba6d02.dirty", "1.2.3-4-gabc": "1.2.3-4-gabc", "abc123-dirty": "0.0.0-dev+abc123.dirty", "": "0.0.0-dev",
	} {
		if got := PackageVersion(in); got != want {
			t.Errorf("PackageVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlanRefused(t *testing.T) {
	m := &fakeMinter{}
	b := newBuilder(t, m)
	_, err := b.Build(context.Background(), Request{OrgID: "org-ess", Target: Target{LinuxDeb, "amd64"}}, t.TempDir())
	if !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), `"pro" plan`) {
		t.Fatalf("err = %v, want a plan refusal naming the pro plan", err)
	}
	if len(m.minted) != 0 {
		t.Error("a secret was minted for a refused build")
	}
	if _, err := b.Build(context.Background(), Request{OrgID: "org-pro", Target: Target{"linux-apk", "amd64"}}, t.TempDir()); !errors.Is(err, ErrInvalidTarget) {
		t.Errorf("bad platform: %v", err)
	}
}

func TestArtifacts(t *testing.T) {
	arts := buildAll(t)
	ids := map[string]bool{}
	for tg, a := range arts {
		want := fmt.Sprintf("lanyard-agent_1.2.3_%s_%s.%s", tg.Platform, tg.Arch, extensions[tg.Platform])
		if a.FileName != want || filepath.Base(a.Path) != want {
			t.Errorf("%v: file name %q, want %q", tg, a.FileName, want)
		}
		if ids[a.SecretID] {
			t.Errorf("%v: secret %s reused", tg, a.SecretID)
		}
		ids[a.SecretID] = true
		sumFile, err := os.ReadFile(a.SHA256Path)
		if err != nil || string(sumFile) != a.SHA256+"  "+want+"\n" {
			t.Errorf("%v: sha256 file = %q, %v", tg, sumFile, err)
		}
		cmd := exec.Command("sha256sum", "-c", filepath.Base(a.SHA256Path))
		cmd.Dir = filepath.Dir(a.Path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%v: sha256sum -c: %v\n%s", tg, err, out)
		}
	}
	for _, tg := range []Target{{WindowsMSI, "amd64"}, {MacOSPkg, "arm64"}, {MacOSPkg, Universal}} {
		if !arts[tg].Signed {
			t.Errorf("%v not marked signed", tg)
		}
	}
	if minter.minted[0].Name != "installer linux-deb/amd64 1.2.3" {
		t.Errorf("secret name = %q", minter.minted[0].Name)
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// secretOf returns the plaintext secret baked into an artifact.
func secretOf(a Artifact) string {
	var n int
	fmt.Sscanf(a.SecretID, "sec-%d", &n)
	return fmt.Sprintf("lyes_TESTSECRET%04d_org-pro", n)
}

// extract unpacks a package into a directory tree with the packaged modes
// and returns the root plus the package's metadata (scripts, tables) as text.
func extract(t *testing.T, a Artifact) (root string, meta map[string]string) {
	t.Helper()
	root = t.TempDir()
	meta = map[string]string{}
	switch a.Target.Platform {
	case LinuxDeb:
		run(t, "", "dpkg-deb", "-x", a.Path, root)
		ctl := t.TempDir()
		run(t, "", "dpkg-deb", "-e", a.Path, ctl)
		_ = filepath.WalkDir(ctl, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				meta["control/"+d.Name()] = string(b)
			}
			return nil
		})
	case LinuxRPM:
		run(t, "", "bsdtar", "-xpf", a.Path, "-C", root)
		meta["scripts"] = run(t, "", "rpm", "-qp", "--scripts", a.Path)
		meta["info"] = run(t, "", "rpm", "-qpi", a.Path)
	case WindowsMSI:
		run(t, "", "msiextract", "-C", root, a.Path)
		for _, tb := range []string{"Property", "ServiceInstall", "ServiceControl", "Registry", "CustomAction", "MsiLockPermissionsEx"} {
			meta["table/"+tb] = run(t, "", "msiinfo", "export", a.Path, tb)
		}
	case MacOSPkg:
		x := t.TempDir()
		run(t, "", "bsdtar", "-xf", a.Path, "-C", x)
		for _, f := range []string{"Distribution", "base.pkg/PackageInfo", "base.pkg/Bom"} {
			b, err := os.ReadFile(filepath.Join(x, f))
			if err != nil {
				t.Fatal(err)
			}
			meta[f] = string(b)
		}
		sx := t.TempDir()
		sh := fmt.Sprintf("gzip -dc %q | cpio -idm --quiet", filepath.Join(x, "base.pkg", "Scripts"))
		run(t, sx, "sh", "-c", sh)
		for _, s := range []string{"preinstall", "postinstall"} {
			b, _ := os.ReadFile(filepath.Join(sx, s))
			meta["scripts/"+s] = string(b)
		}
		run(t, root, "sh", "-c", fmt.Sprintf("gzip -dc %q | cpio -idm --quiet", filepath.Join(x, "base.pkg", "Payload")))
	}
	return root, meta
}

// TestNoSecretInWorldReadablePlace extracts every package and checks that
// the baked secret is only in the configuration file, that the file is
// not world- or group-readable (Windows: locked by MsiLockPermissionsEx),
// and that no script, table or metadata carries it.
func TestNoSecretInWorldReadablePlace(t *testing.T) {
	arts := buildAll(t)
	wantConfig := map[Platform]string{
		LinuxDeb: "etc/lanyard/agent.json", LinuxRPM: "etc/lanyard/agent.json",
		WindowsMSI: "agent.json", MacOSPkg: "Library/Application Support/Lanyard/agent.json",
	}
	for _, tg := range allTargets {
		a := arts[tg]
		t.Run(string(tg.Platform)+"/"+tg.Arch, func(t *testing.T) {
			secret := secretOf(a)
			root, meta := extract(t, a)
			var holders []string
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if bytes.Contains(b, []byte(secret)) {
					rel, _ := filepath.Rel(root, p)
					holders = append(holders, rel)
					fi, _ := d.Info()
					if tg.Platform != WindowsMSI && fi.Mode().Perm()&0o077 != 0 {
						t.Errorf("%s holds the secret with mode %v", rel, fi.Mode().Perm())
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(holders) != 1 || !strings.HasSuffix(filepath.ToSlash(holders[0]), wantConfig[tg.Platform]) {
				t.Fatalf("secret found in %q, want only in %s", holders, wantConfig[tg.Platform])
			}
			for name, text := range meta {
				if strings.Contains(text, secret) {
					t.Errorf("secret found in %s", name)
				}
			}
			cfg, err := config.Load(filepath.Join(root, holders[0]))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.EnrollmentSecret != secret || cfg.ControlPlaneURL != "https://lanyard.example.com" ||
				cfg.CAFingerprintSHA256 != testFingerprint || !cfg.KeepSecret {
				t.Errorf("baked config = %+v", cfg)
			}
			if tg.Platform == WindowsMSI && !strings.Contains(meta["table/MsiLockPermissionsEx"], "AgentConfig\tFile\tD:P(A;;FA;;;SY)(A;;FA;;;BA)") {
				t.Errorf("config file is not locked to SYSTEM/Administrators:\n%s", meta["table/MsiLockPermissionsEx"])
			}
		})
	}
}

func TestMacOSPkgWithLinuxTools(t *testing.T) {
	arts := buildAll(t)
	for _, arch := range []string{"arm64", Universal} {
		a := arts[Target{MacOSPkg, arch}]
		list := run(t, "", "bsdtar", "-tvf", a.Path)
		for _, want := range []string{"Distribution", "base.pkg/PackageInfo", "base.pkg/Bom", "base.pkg/Payload", "base.pkg/Scripts"} {
			if !strings.Contains(list, want) {
				t.Errorf("%s: bsdtar -tvf lacks %s:\n%s", arch, want, list)
			}
		}
		x := t.TempDir()
		run(t, "", "bsdtar", "-xf", a.Path, "-C", x)
		cpioList := run(t, x, "sh", "-c", "gzip -dc base.pkg/Payload | cpio -itv --numeric-uid-gid --quiet")
		for _, line := range []string{
			"-rwxr-xr-x   1 0        80", "./usr/local/bin/lanyard-agent",
			"-rw-------   1 0        80", "./Library/Application Support/Lanyard/agent.json",
			"-rw-r--r--   1 0        80", "./Library/LaunchDaemons/com.lanyard.agent.plist",
			"drwx------   1 0        80", "./Library/Application Support/Lanyard/state",
		} {
			if !strings.Contains(cpioList, line) {
				t.Errorf("%s: payload listing lacks %q:\n%s", arch, line, cpioList)
			}
		}
		for _, l := range strings.Split(strings.TrimSpace(cpioList), "\n") {
			if f := strings.Fields(l); len(f) > 3 && (f[2] != "0" || f[3] != "80") {
				t.Errorf("%s: payload entry not owned 0:80: %s", arch, l)
			}
		}
		// BOM round trip: every payload path with its mode and size.
		bomBytes, _ := os.ReadFile(filepath.Join(x, "base.pkg", "Bom"))
		entries, err := bom.Read(bomBytes)
		if err != nil {
			t.Fatal(err)
		}
		px := t.TempDir()
		run(t, px, "sh", "-c", fmt.Sprintf("gzip -dc %q | cpio -idm --quiet", filepath.Join(x, "base.pkg", "Payload")))
		for _, e := range entries {
			fi, err := os.Lstat(filepath.Join(px, e.Path))
			if err != nil {
				t.Errorf("%s: BOM path %s not in payload", arch, e.Path)
				continue
			}
			if uint32(fi.Mode().Perm()) != uint32(e.Mode)&0o777 || e.GID != 80 {
				t.Errorf("%s: %s BOM mode %o gid %d, payload %v", arch, e.Path, e.Mode, e.GID, fi.Mode())
			}
			if fi.Mode().IsRegular() {
				b, _ := os.ReadFile(filepath.Join(px, e.Path))
				if e.Size != uint32(len(b)) || e.Checksum != bom.Cksum(b) {
					t.Errorf("%s: %s BOM size/cksum mismatch", arch, e.Path)
				}
			}
		}
		if arch == Universal {
			dist, _ := os.ReadFile(filepath.Join(x, "Distribution"))
			if !strings.Contains(string(dist), `hostArchitectures="arm64,x86_64"`) {
				t.Errorf("universal Distribution:\n%s", dist)
			}
			bin, _ := os.ReadFile(filepath.Join(px, "usr/local/bin/lanyard-agent"))
			if len(bin) < 4 || !bytes.Equal(bin[:4], []byte{0xca, 0xfe, 0xba, 0xbe}) {
				t.Error("universal package does not carry a fat binary")
			}
		}
	}
}

func TestSignedMSI(t *testing.T) {
	a := buildAll(t)[Target{WindowsMSI, "amd64"}]
	ctx := context.Background()
	if err := msi.Verify(ctx, msi.Tools{}, signCert, a.Path); err != nil {
		t.Fatalf("signed MSI: %v", err)
	}
	if err := msi.Verify(ctx, msi.Tools{}, signCert, testutil.Tampered(t, a.Path)); err == nil {
		t.Error("tampered MSI verified")
	}
	si := run(t, "", "msiinfo", "export", a.Path, "ServiceInstall")
	if !strings.Contains(si, "lanyard-agent\tLanyard Agent\t16\t2\t") {
		t.Errorf("ServiceInstall:\n%s", si)
	}
}

func TestSignedPkg(t *testing.T) {
	arts := buildAll(t)
	pemBytes, err := os.ReadFile(signCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	for _, arch := range []string{"arm64", Universal} {
		b, err := os.ReadFile(arts[Target{MacOSPkg, arch}].Path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pkg.Verify(b, roots); err != nil {
			t.Errorf("%s: signed pkg does not verify: %v", arch, err)
		}
		tampered, _ := os.ReadFile(testutil.Tampered(t, arts[Target{MacOSPkg, arch}].Path))
		if _, err := pkg.Verify(tampered, roots); err == nil {
			t.Errorf("%s: tampered pkg verified", arch)
		}
	}
}
