// Package installers builds the device agent's installers for an
// organization: .deb and .rpm (nfpm), .msi (wixl) and macOS .pkg (own Go
// writer), each with the agent configuration baked in (control-plane URL,
// pinned CA fingerprint and an enrollment secret minted for that one
// build), plus a SHA-256 file beside every package.
//
// The secret is written only to the agent's configuration file, readable
// by root/SYSTEM alone (0600; Windows: protected DACL); never into service
// arguments or MSI properties. Each build gets its own secret (listed,
// revocable, optionally expiring and use-limited by the enrollment-secret
// owner), so a leaked package is revoked without touching enrolled devices.
//
// Dependencies are small interfaces declared here (secret minting, CA
// fingerprint, org plan, agent binaries) so the package is usable from the
// CLI, the REST API and tests alike.
package installers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/installers/linux"
	"github.com/lanyardhq/lanyard/installers/msi"
	"github.com/lanyardhq/lanyard/installers/pkg"
)

// Platform names a package format and its OS.
type Platform string

// Platforms.
const (
	LinuxDeb   Platform = "linux-deb"
	LinuxRPM   Platform = "linux-rpm"
	WindowsMSI Platform = "windows-msi"
	MacOSPkg   Platform = "macos-pkg"
)

// Universal is the macOS arch that holds both arm64 and amd64.
const Universal = "universal"

// archs lists the valid architectures per platform (Go names). wixl
// cannot build arm64 MSIs.
var archs = map[Platform][]string{
	LinuxDeb:   {"amd64", "arm64"},
	LinuxRPM:   {"amd64", "arm64"},
	WindowsMSI: {"amd64"},
	MacOSPkg:   {Universal, "arm64", "amd64"}, // universal first: the default runs on every Mac
}

var extensions = map[Platform]string{LinuxDeb: "deb", LinuxRPM: "rpm", WindowsMSI: "msi", MacOSPkg: "pkg"}

// Platforms returns the supported platforms in a stable order.
func Platforms() []Platform {
	out := make([]Platform, 0, len(archs))
	for p := range archs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Archs returns the valid architectures of p.
func Archs(p Platform) []string { return slices.Clone(archs[p]) }

var (
	versionRe = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~-]*$`)
	releaseRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*([-+~][0-9A-Za-z.+~-]*)?$`)
)

// PackageVersion turns a build version (a tag such as v1.4.0, or a git
// describe string such as 2ba6d02-dirty, or "dev") into one every package
// format accepts: a leading "v" is dropped, and a version that does not
// start with a digit becomes 0.0.0-dev+<version>.
func PackageVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if releaseRe.MatchString(v) {
		return v
	}
	clean := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' {
			return r
		}
		return '.'
	}, v)
	if clean == "" {
		return "0.0.0-dev"
	}
	return "0.0.0-dev+" + clean
}

// ErrInvalidTarget wraps every unknown platform or arch error.
var ErrInvalidTarget = errors.New("invalid installer target")

// ErrNoAgentBinary means the agent executable for a target is not available.
var ErrNoAgentBinary = errors.New("agent binary not available")

// ErrPlan means the org's plan does not include device tracking.
var ErrPlan = errors.New("plan does not include device tracking")

// Target is a platform and an architecture.
type Target struct {
	Platform Platform `json:"platform"`
	Arch     string   `json:"arch"`
}

// ParseTarget validates platform and arch; an empty arch picks the first
// valid one (amd64, or universal for macOS). Errors list the valid values.
func ParseTarget(platform, arch string) (Target, error) {
	p := Platform(strings.ToLower(strings.TrimSpace(platform)))
	valid, ok := archs[p]
	if !ok {
		names := make([]string, 0, len(archs))
		for _, q := range Platforms() {
			names = append(names, string(q))
		}
		return Target{}, fmt.Errorf("%w: unknown platform %q (valid: %s)", ErrInvalidTarget, platform, strings.Join(names, ", "))
	}
	a := strings.ToLower(strings.TrimSpace(arch))
	switch a {
	case "x86_64", "x64":
		a = "amd64"
	case "aarch64":
		a = "arm64"
	case "":
		a = valid[0]
	}
	if !slices.Contains(valid, a) {
		return Target{}, fmt.Errorf("%w: unknown arch %q for %s (valid: %s)", ErrInvalidTarget, arch, p, strings.Join(valid, ", "))
	}
	return Target{Platform: p, Arch: a}, nil
}

// FileName is the package's file name: name, version, platform and arch.
func (t Target) FileName(version string) string {
	return fmt.Sprintf("lanyard-agent_%s_%s_%s.%s", version, t.Platform, t.Arch, extensions[t.Platform])
}

// GOOS returns the Go OS the agent binary is built for.
func (t Target) GOOS() string {
	switch t.Platform {
	case WindowsMSI:
		return "windows"
	case MacOSPkg:
		return "darwin"
	default:
		return "linux"
	}
}

// SecretOptions limit a minted package secret.
type SecretOptions struct {
	Name      string     // e.g. "installer linux-deb/amd64 1.2.3"
	ExpiresAt *time.Time // nil: no expiry
	MaxUses   int        // 0: unlimited
}

// MintedSecret is a newly minted enrollment secret. Plaintext is never
// stored by the control plane; it exists only inside the package.
type MintedSecret struct {
	ID        string
	Plaintext string
}

// SecretMinter creates a per-package enrollment secret for an org. The
// agent-server capability implements it.
type SecretMinter interface {
	MintPackageSecret(ctx context.Context, orgID string, opts SecretOptions) (MintedSecret, error)
}

// CAFingerprinter returns the SHA-256 fingerprint (hex) of the root CA
// certificate agents must pin.
type CAFingerprinter interface {
	CAFingerprint(ctx context.Context, orgID string) (string, error)
}

// OrgGetter reads an org (plan and settings).
type OrgGetter interface {
	GetOrg(ctx context.Context, id string) (domain.Org, error)
}

// AgentBinaries provides the agent executable for an OS/arch, as a path
// that stays valid until the Builder returns.
type AgentBinaries interface {
	AgentBinary(ctx context.Context, goos, goarch string) (string, error)
}

// Builder builds packages. All fields except Authenticode, GRPCAddress(es) and
// Logger are required.
type Builder struct {
	ControlPlaneURL string // baked into the config, e.g. https://lanyard.example.com
	GRPCAddress     string // agent API host:port when not the URL's host:8443
	// GRPCAddresses are every replica's agent API host:port; the agent fails over
	// between them (GRPCAddress, when set, is one of them).
	GRPCAddresses []string
	// EnrollmentAddress is the enrollment endpoint host:port; empty lets the agent
	// derive it (agent/config's default).
	EnrollmentAddress string
	// EnrollmentAddresses are every replica's enrollment endpoints, tried in turn.
	EnrollmentAddresses []string
	Version             string // agent version, part of the file name
	Secrets             SecretMinter
	CA                  CAFingerprinter
	Orgs                OrgGetter
	Agents              AgentBinaries
	// Authenticode signs the exe and the MSI when set.
	Authenticode *msi.Authenticode
	// PkgSigning signs the macOS .pkg (relic) when set.
	PkgSigning *pkg.Signing
	MSITools   msi.Tools
	Now        func() time.Time
	Logger     *slog.Logger
}

// Request is one build.
type Request struct {
	OrgID  string
	Target Target
	// Secret limits; the secret is always new for this build.
	SecretExpiresAt *time.Time
	SecretMaxUses   int
}

// Artifact is a built package on disk.
type Artifact struct {
	Target     Target    `json:"target"`
	Version    string    `json:"version"`
	FileName   string    `json:"file_name"`
	Path       string    `json:"-"`
	SHA256     string    `json:"sha256"`
	SHA256Path string    `json:"-"`
	Size       int64     `json:"size"`
	SecretID   string    `json:"secret_id"`
	Signed     bool      `json:"signed"`
	BuiltAt    time.Time `json:"built_at"`
}

func (b *Builder) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}

// CheckOrg refuses orgs whose plan lacks device tracking.
func (b *Builder) CheckOrg(ctx context.Context, orgID string) (domain.Org, error) {
	org, err := b.Orgs.GetOrg(ctx, orgID)
	if err != nil {
		return org, fmt.Errorf("installers: org %s: %w", orgID, err)
	}
	if !org.Plan.Allows(domain.FeatureDeviceTracking) {
		return org, fmt.Errorf("installers: org %q is on the %q plan: %w (agent installers need the %q plan)",
			org.Name, org.Plan, ErrPlan, domain.FeatureDeviceTracking.RequiredPlan())
	}
	return org, nil
}

// Build mints a secret, bakes the configuration and writes the package and
// its .sha256 file into outDir.
func (b *Builder) Build(ctx context.Context, req Request, outDir string) (Artifact, error) {
	t, err := ParseTarget(string(req.Target.Platform), req.Target.Arch)
	if err != nil {
		return Artifact{}, err
	}
	if b.Version == "" || b.ControlPlaneURL == "" {
		return Artifact{}, errors.New("installers: builder needs a version and a control-plane URL")
	}
	if !versionRe.MatchString(b.Version) {
		return Artifact{}, fmt.Errorf("installers: version %q must start with a digit and use only letters, digits and . + ~ - (e.g. 1.4.0 or 0.0.0-dev+abc123)", b.Version)
	}
	org, err := b.CheckOrg(ctx, req.OrgID)
	if err != nil {
		return Artifact{}, err
	}
	fp, err := b.CA.CAFingerprint(ctx, org.ID)
	if err != nil {
		return Artifact{}, fmt.Errorf("installers: CA fingerprint: %w", err)
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	builtAt := now().UTC().Truncate(time.Second)

	// Everything that can fail for reasons other than the secret is done
	// before minting, so failed builds leave no unused secrets behind.
	scratch, err := os.MkdirTemp("", "lanyard-installer-")
	if err != nil {
		return Artifact{}, err
	}
	defer os.RemoveAll(scratch)
	binaries, err := b.binaries(ctx, t, scratch)
	if err != nil {
		return Artifact{}, err
	}
	sec, err := b.Secrets.MintPackageSecret(ctx, org.ID, SecretOptions{
		Name:      fmt.Sprintf("installer %s/%s %s", t.Platform, t.Arch, b.Version),
		ExpiresAt: req.SecretExpiresAt, MaxUses: req.SecretMaxUses,
	})
	if err != nil {
		return Artifact{}, fmt.Errorf("installers: mint enrollment secret: %w", err)
	}
	cfg, err := config.Marshal(config.Config{
		ControlPlaneURL:     b.ControlPlaneURL,
		GRPCAddress:         b.GRPCAddress,
		GRPCAddresses:       b.GRPCAddresses,
		EnrollmentAddress:   b.EnrollmentAddress,
		EnrollmentAddresses: b.EnrollmentAddresses,
		CAFingerprintSHA256: fp,
		EnrollmentSecret:    sec.Plaintext,
		KeepSecret:          org.Settings.KeepEnrollmentSecret,
	})
	if err != nil {
		return Artifact{}, fmt.Errorf("installers: config: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Artifact{}, err
	}
	name := t.FileName(b.Version)
	final := filepath.Join(outDir, name)
	tmp := final + ".partial"
	defer os.Remove(tmp)
	signed := false
	switch t.Platform {
	case LinuxDeb, LinuxRPM:
		format := linux.Deb
		if t.Platform == LinuxRPM {
			format = linux.RPM
		}
		err = writeFile(tmp, func(w io.Writer) error {
			return linux.Build(w, linux.Input{Format: format, Arch: t.Arch, Version: b.Version,
				BinaryPath: binaries[0], Config: cfg, Mtime: builtAt}, scratch)
		})
	case WindowsMSI:
		signed = b.Authenticode != nil
		err = msi.Build(ctx, msi.Input{Arch: t.Arch, Version: b.Version, ExePath: binaries[0], Config: cfg,
			Sign: b.Authenticode, Tools: b.MSITools}, scratch, tmp)
	case MacOSPkg:
		var bin []byte
		var machoArchs []string
		if t.Arch == Universal {
			bin, err = pkg.Universal(binaries...)
			machoArchs = []string{"arm64", "x86_64"}
		} else {
			bin, err = os.ReadFile(binaries[0])
			machoArchs = []string{map[string]string{"arm64": "arm64", "amd64": "x86_64"}[t.Arch]}
		}
		if err == nil {
			err = writeFile(tmp, func(w io.Writer) error {
				var buf bytes.Buffer
				if err := pkg.Build(&buf, pkg.Input{Version: b.Version, Archs: machoArchs, Binary: bin, Config: cfg, Mtime: builtAt}); err != nil {
					return err
				}
				out := buf.Bytes()
				if b.PkgSigning != nil {
					if out, err = pkg.Sign(ctx, out, *b.PkgSigning); err != nil {
						return err
					}
					signed = true
				}
				_, err := w.Write(out)
				return err
			})
		}
	}
	if err != nil {
		return Artifact{}, fmt.Errorf("installers: build %s/%s: %w (enrollment secret %s was minted and is unused; revoke it)", t.Platform, t.Arch, err, sec.ID)
	}
	sum, size, err := fileSHA256(tmp)
	if err != nil {
		return Artifact{}, err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return Artifact{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return Artifact{}, err
	}
	sumPath := final + ".sha256"
	if err := os.WriteFile(sumPath, []byte(sum+"  "+name+"\n"), 0o644); err != nil {
		return Artifact{}, err
	}
	a := Artifact{Target: t, Version: b.Version, FileName: name, Path: final, SHA256: sum, SHA256Path: sumPath,
		Size: size, SecretID: sec.ID, Signed: signed, BuiltAt: builtAt}
	b.logger().InfoContext(ctx, "installer built", "component", "installers", "org_id", org.ID,
		"platform", t.Platform, "arch", t.Arch, "version", b.Version, "secret_id", sec.ID, "sha256", sum, "size", size)
	return a, nil
}

// binaries returns the agent executables the target needs (two for a
// universal macOS package: arm64 then amd64).
func (b *Builder) binaries(ctx context.Context, t Target, scratch string) ([]string, error) {
	goarchs := []string{t.Arch}
	if t.Arch == Universal {
		goarchs = []string{"arm64", "amd64"}
	}
	var out []string
	for _, a := range goarchs {
		p, err := b.Agents.AgentBinary(ctx, t.GOOS(), a)
		if err != nil {
			return nil, fmt.Errorf("installers: %w for %s/%s: %w", ErrNoAgentBinary, t.GOOS(), a, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
