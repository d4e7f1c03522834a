// Package msi builds the agent's Windows Installer package with wixl
// (Debian msitools) from a text/template .wxs, then applies with msibuild
// what wixl 0.101 cannot express:
//
//   - MsiServiceConfigFailureActions + MsiConfigureServices: restart the
//     service on failure (10 s, 10 s, 60 s; counter reset after a day);
//   - MsiLockPermissionsEx: the configuration file and its folder get a
//     protected DACL for SYSTEM and Administrators only (wixl has no
//     PermissionEx), so the baked enrollment secret is not readable by
//     users;
//   - 8.3 short names in the File table.
//
// The upgrade code and component GUIDs are constants, so a newer MSI
// replaces an older one (MajorUpgrade) and the device identity the agent
// keeps under ProgramData\Lanyard\state, which no component owns,
// survives. wixl cannot build arm64 packages, so only x64 is offered.
//
// Optional Authenticode signing uses osslsigncode: the exe is signed before
// it goes into the MSI, the MSI last; nothing touches the MSI after that.
package msi

import (
	"bytes"
	"context"
	"crypto/x509"
	"embed"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/sassoftware/relic/v7/lib/authenticode"
)

// Stable identifiers. Never change them: Windows Installer matches
// upgrades by UpgradeCode and components by GUID.
const (
	UpgradeCode         = "6B0C7A8E-3F7B-4B1E-9B7D-2A1C5E9F4D10"
	ExeComponentGUID    = "0F2A5C1E-7D3B-4E8A-9C6F-1B2D3E4F5A60"
	ConfigComponentGUID = "5E1D2C3B-4A59-4687-8796-A5B4C3D2E1F0"
	ServiceName         = "lanyard-agent"
)

// SDDL of the configuration file and its folder: protected (no inherited
// ACEs), full access for LocalSystem and Builtin Administrators only.
const (
	configSDDL = "D:P(A;;FA;;;SY)(A;;FA;;;BA)"
	folderSDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
)

//go:embed templates
var templates embed.FS

var tmpl = template.Must(template.New("").Option("missingkey=error").Funcs(template.FuncMap{
	"xml": func(s string) (string, error) {
		var b strings.Builder
		err := xml.EscapeText(&b, []byte(s))
		return b.String(), err
	},
}).ParseFS(templates, "templates/*.wxs"))

// Tools are the external programs used; empty fields are looked up in PATH.
type Tools struct {
	Wixl, Msibuild, Osslsigncode string
}

// Authenticode configures signing. CertFile is a PEM certificate chain
// and KeyFile its PEM private key.
type Authenticode struct {
	CertFile     string
	KeyFile      string
	Description  string // shown in the UAC prompt; default the product name
	URL          string // publisher URL, optional
	TimestampURL string // RFC 3161 TSA, optional (release builds)
}

// Input is what one package contains.
type Input struct {
	Arch         string // "amd64" (wixl cannot build arm64)
	Version      string // semantic version, mapped to MSI's a.b.c
	ExePath      string // windows agent executable on disk
	Config       []byte // agent.json (agent/config format)
	ProductName  string // default "Lanyard Agent"
	Manufacturer string // default "Lanyard"
	Sign         *Authenticode
	Tools        Tools
}

var semverRe = regexp.MustCompile(`^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?`)

// MSIVersion maps a semantic version to ProductVersion (major.minor.build,
// at most 255.255.65535). Pre-release and build suffixes are dropped.
func MSIVersion(v string) (string, error) {
	m := semverRe.FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("msi: version %q does not start with a number", v)
	}
	limits := []int{255, 255, 65535}
	parts := make([]string, 3)
	for i := range 3 {
		s := m[i+1]
		if s == "" {
			s = "0"
		}
		n, err := strconv.Atoi(s)
		if err != nil || n > limits[i] {
			return "", fmt.Errorf("msi: version %q: part %d must be at most %d", v, i+1, limits[i])
		}
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "."), nil
}

func tool(ctx context.Context, dir, path, name string, args ...string) error {
	if path == "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return fmt.Errorf("msi: %s not found (Debian: apt-get install wixl msitools osslsigncode): %w", name, err)
		}
		path = p
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("msi: %s %s: %w: %s", name, strings.Join(redact(args), " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// redact hides nothing secret today (keys are paths) but keeps long
// msibuild queries readable in errors.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 120 {
			a = a[:117] + "..."
		}
		out[i] = a
	}
	return out
}

// Build writes the MSI to outPath, using scratch for intermediate files.
func Build(ctx context.Context, in Input, scratch, outPath string) error {
	if in.Arch != "amd64" {
		return fmt.Errorf("msi: unsupported arch %q (valid: amd64; wixl cannot build arm64)", in.Arch)
	}
	if in.ExePath == "" || len(in.Config) == 0 {
		return fmt.Errorf("msi: exe and config are required")
	}
	ver, err := MSIVersion(in.Version)
	if err != nil {
		return err
	}
	if in.ProductName == "" {
		in.ProductName = "Lanyard Agent"
	}
	if in.Manufacturer == "" {
		in.Manufacturer = "Lanyard"
	}
	exe := filepath.Join(scratch, "lanyard-agent.exe")
	if in.Sign != nil {
		if err := Sign(ctx, in.Tools, *in.Sign, in.ProductName, in.ExePath, exe); err != nil {
			return err
		}
	} else if err := copyFile(in.ExePath, exe); err != nil {
		return err
	}
	cfg := filepath.Join(scratch, "agent.json")
	if err := os.WriteFile(cfg, in.Config, 0o600); err != nil {
		return fmt.Errorf("msi: write config: %w", err)
	}
	var wxs bytes.Buffer
	if err := tmpl.ExecuteTemplate(&wxs, "agent.wxs", map[string]string{
		"ProductName": in.ProductName, "Manufacturer": in.Manufacturer, "Version": in.Version, "MSIVersion": ver,
		"UpgradeCode": UpgradeCode, "ExeComponentGUID": ExeComponentGUID, "ConfigComponentGUID": ConfigComponentGUID,
		"ServiceName": ServiceName, "ExePath": filepath.Base(exe), "ConfigPath": filepath.Base(cfg), // wixl wants paths relative to its working directory
	}); err != nil {
		return fmt.Errorf("msi: render wxs: %w", err)
	}
	wxsPath := filepath.Join(scratch, "agent.wxs")
	if err := os.WriteFile(wxsPath, wxs.Bytes(), 0o644); err != nil {
		return err
	}
	unsigned := filepath.Join(scratch, "unsigned.msi")
	if err := tool(ctx, scratch, in.Tools.Wixl, "wixl", "-a", "x64", "-o", "unsigned.msi", "agent.wxs"); err != nil {
		return err
	}
	if err := postFix(ctx, in.Tools, unsigned, scratch); err != nil {
		return err
	}
	if in.Sign != nil {
		return Sign(ctx, in.Tools, *in.Sign, in.ProductName, unsigned, outPath)
	}
	return copyFile(unsigned, outPath)
}

// postFix applies the msibuild changes described in the package comment.
func postFix(ctx context.Context, t Tools, msiPath, scratch string) error {
	tables := map[string]string{
		"MsiServiceConfigFailureActions.idt": strings.Join([]string{
			"MsiServiceConfigFailureActions\tName\tEvent\tResetPeriod\tRebootMessage\tCommand\tActions\tDelayActions\tComponent_",
			"s72\ts255\ti2\tI4\tL255\tL255\tS255\tS255\ts72",
			"MsiServiceConfigFailureActions\tMsiServiceConfigFailureActions",
			// Event 3 = install + reinstall; action 1 = restart the service.
			"AgentRestartOnFailure\t" + ServiceName + "\t3\t86400\t\t\t1[~]1[~]1\t10000[~]10000[~]60000\tAgentExe",
		}, "\r\n") + "\r\n",
		"MsiLockPermissionsEx.idt": strings.Join([]string{
			"MsiLockPermissionsEx\tLockObject\tTable\tSDDLText\tCondition",
			"s72\ts72\ts32\ts0\tS255",
			"MsiLockPermissionsEx\tMsiLockPermissionsEx",
			"LockAgentConfig\tAgentConfig\tFile\t" + configSDDL + "\t",
			"LockAgentDataDir\tDATADIR\tCreateFolder\t" + folderSDDL + "\t",
		}, "\r\n") + "\r\n",
	}
	args := []string{msiPath}
	for name, body := range tables {
		p := filepath.Join(scratch, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
		args = append(args, "-i", p)
	}
	args = append(args,
		"-q", "INSERT INTO InstallExecuteSequence (Action, Condition, Sequence) VALUES ('MsiConfigureServices', 'VersionNT >= 600', 5850)",
		"-q", "UPDATE File SET FileName='LANYARDA.EXE|lanyard-agent.exe' WHERE File='AgentExe'",
		"-q", "UPDATE File SET FileName='AGENT.JSN|agent.json' WHERE File='AgentConfig'",
	)
	return tool(ctx, "", t.Msibuild, "msibuild", args...)
}

// Sign writes an Authenticode-signed copy of in (an exe or an MSI) to out.
func Sign(ctx context.Context, t Tools, a Authenticode, product, in, out string) error {
	if a.CertFile == "" || a.KeyFile == "" {
		return fmt.Errorf("msi: signing needs a certificate and a key file")
	}
	desc := a.Description
	if desc == "" {
		desc = product
	}
	args := []string{"sign", "-certs", a.CertFile, "-key", a.KeyFile, "-h", "sha256", "-n", desc}
	if a.URL != "" {
		args = append(args, "-i", a.URL)
	}
	if a.TimestampURL != "" {
		args = append(args, "-ts", a.TimestampURL)
	}
	_ = os.Remove(out)
	args = append(args, "-in", in, "-out", out)
	return tool(ctx, "", t.Osslsigncode, "osslsigncode", args...)
}

// Verify checks an Authenticode signature against the CA bundle caFile.
func Verify(ctx context.Context, t Tools, caFile, path string) error {
	return tool(ctx, "", t.Osslsigncode, "osslsigncode", "verify", "-CAfile", caFile, "-in", path)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("msi: read %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("msi: write %s: %w", dst, err)
	}
	return nil
}

// VerifyGo checks an MSI's Authenticode signature in Go (relic v7.6.2),
// without osslsigncode: the digest of every stream and the signer's chain
// to roots. It returns the signing certificate.
func VerifyGo(path string, roots *x509.CertPool) (*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sig, err := authenticode.VerifyMSI(f, false)
	if err != nil {
		return nil, fmt.Errorf("msi: verify %s: %w", filepath.Base(path), err)
	}
	leaf := sig.Certificate
	inter := x509.NewCertPool()
	for _, c := range sig.Intermediates {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		return nil, fmt.Errorf("msi: signer %q: %w", leaf.Subject.CommonName, err)
	}
	return leaf, nil
}
