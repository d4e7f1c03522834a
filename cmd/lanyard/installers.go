package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/installers"
	"github.com/lanyardhq/lanyard/installers/msi"
	"github.com/lanyardhq/lanyard/installers/pkg"
	"github.com/lanyardhq/lanyard/pki"
)

// installersCmd is `lanyard installers build`: agent packages for one org with the
// enrollment configuration baked in (see installers/).
func installersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "installers", Short: "Build agent installers (.deb, .rpm, .msi, .pkg) for an organization"}
	var (
		org, platform, arch, out, version, agentBin, source string
		signCert, signKey, tsURL, controlURL, agentURL      string
		enrollAddr, pkgCert, pkgKey                         string
		expiresIn                                           time.Duration
		maxUses                                             int
	)
	build := &cobra.Command{
		Use:   "build",
		Short: "Build one installer with a fresh enrollment secret baked in",
		Long: `Build one agent installer for an organization. Each build mints its own enrollment
secret (listed in the API, revocable, optionally expiring and use-limited) and bakes it,
with the control-plane URL and the CA fingerprint, into a root/SYSTEM-only config file.

Platforms and architectures: ` + validTargets() + `

The package and a .sha256 file beside it are written to --out; the name carries the
version, platform and arch. macos-pkg: built and structurally verified on Linux, not yet
verified on macOS.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tg, err := installers.ParseTarget(platform, arch)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			// The flags override the config the address derivation reads, so the package
			// carries what the installers API would bake for that config.
			if controlURL != "" {
				cfg.PublicURL = controlURL
			}
			if agentURL != "" {
				cfg.AgentURL, cfg.AgentURLs = agentURL, agentURL
			}
			if version == "" {
				version = server.Version
			}
			version = installers.PackageVersion(version)
			var bins installers.AgentBinaries
			switch {
			case agentBin != "":
				bins = installers.Prebuilt{Dir: agentBin}
			default:
				gb := &installers.GoBuild{ModuleDir: source, Version: version}
				defer gb.Cleanup()
				bins = gb
			}
			ctx := domain.WithActor(cmd.Context(), domain.Actor{ID: "system:installers-cli"})
			return withDB(cmd, func(db *store.DB) error {
				o, err := findOrg(cmd, db, org)
				if err != nil {
					return err
				}
				kr, err := secrets.LoadOrCreate(cfg.KeyFile)
				if err != nil {
					return err
				}
				ca, err := pki.Open(ctx, db, kr, pki.Config{})
				if err != nil {
					return fmt.Errorf("open the agent CA: %w", err)
				}
				defer ca.Shutdown()
				b := server.NewInstallerBuilder(cfg, db, ca.RootFingerprint, bins, server.NewLogger(cfg))
				b.Version = version
				if enrollAddr != "" {
					b.EnrollmentAddress = enrollAddr
				}
				if signCert != "" || signKey != "" {
					if signCert == "" || signKey == "" {
						return errors.New("--sign-cert and --sign-key go together")
					}
					b.Authenticode = &msi.Authenticode{CertFile: signCert, KeyFile: signKey, TimestampURL: tsURL}
				}
				if pkgCert != "" || pkgKey != "" {
					if pkgCert == "" || pkgKey == "" {
						return errors.New("--pkg-sign-cert and --pkg-sign-key go together")
					}
					b.PkgSigning = &pkg.Signing{CertFile: pkgCert, KeyFile: pkgKey}
				}
				req := installers.Request{OrgID: o.ID, Target: tg, SecretMaxUses: maxUses}
				if expiresIn > 0 {
					t := domain.Now().Add(expiresIn)
					req.SecretExpiresAt = &t
				}
				a, err := b.Build(ctx, req, out)
				if err != nil {
					return err
				}
				rec := store.InstallerBuild{OrgID: o.ID, Platform: string(tg.Platform), Arch: tg.Arch, Version: a.Version,
					FileName: a.FileName, SHA256: a.SHA256, Size: a.Size, SecretID: a.SecretID, Signed: a.Signed, CreatedAt: a.BuiltAt}
				if err := db.CreateInstallerBuild(ctx, &rec); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%s\n  sha256   %s (%s)\n  org      %s (%s)\n  secret   %s (revoke it to retire this package)\n",
					a.Path, a.SHA256, filepath.Base(a.SHA256Path), o.Name, o.ID, a.SecretID)
				if tg.Platform == installers.MacOSPkg {
					fmt.Fprintln(w, "  note     built and structurally verified on Linux, not yet verified on macOS")
				}
				return nil
			})
		},
	}
	f := build.Flags()
	f.StringVar(&org, "org", "", "organization id or name (required)")
	f.StringVar(&platform, "platform", "", "linux-deb, linux-rpm, windows-msi or macos-pkg (required)")
	f.StringVar(&arch, "arch", "", "amd64, arm64, or universal for macos-pkg (default amd64; universal for macos-pkg)")
	f.StringVar(&out, "out", "dist/packages", "output directory")
	f.StringVar(&version, "version", "", "agent version in the package and file name (default: this lanyard's version)")
	f.StringVar(&agentBin, "agent-bin", "", "directory of prebuilt agents (lanyard-agent-<goos>-<goarch>[.exe], as make build-agents writes); default: go build ./cmd/lanyard-agent from --source")
	f.StringVar(&source, "source", ".", "module root to build the agent from when --agent-bin is not set")
	f.StringVar(&signCert, "sign-cert", "", "Authenticode certificate chain (PEM) to sign the .exe and .msi with osslsigncode")
	f.StringVar(&signKey, "sign-key", "", "private key (PEM) for --sign-cert")
	f.StringVar(&pkgCert, "pkg-sign-cert", "", "certificate chain (PEM, e.g. Developer ID Installer) to sign the macOS .pkg with relic")
	f.StringVar(&pkgKey, "pkg-sign-key", "", "private key (PEM) for --pkg-sign-cert")
	f.StringVar(&tsURL, "timestamp-url", "", "RFC 3161 timestamp server for Authenticode (release builds)")
	f.StringVar(&controlURL, "control-plane-url", "", "URL baked into the agent config (default: public-url)")
	f.StringVar(&agentURL, "agent-address", "", "agent gRPC host:port baked into the config, or a comma-separated list of every replica's (default: agent-urls, else agent-url)")
	f.StringVar(&enrollAddr, "enrollment-address", "", "enrollment host:port baked into the config (default: the agent address's host, its port + 1, where lanyard serve listens)")
	f.DurationVar(&expiresIn, "secret-expires-in", 0, "expire the package's enrollment secret after this long (e.g. 720h); 0: never")
	f.IntVar(&maxUses, "secret-max-uses", 0, "enroll at most this many devices with the package; 0: unlimited")
	_ = build.MarkFlagRequired("org")
	_ = build.MarkFlagRequired("platform")
	cmd.AddCommand(build)
	return cmd
}

func validTargets() string {
	var parts []string
	for _, p := range installers.Platforms() {
		parts = append(parts, string(p)+" ("+strings.Join(installers.Archs(p), ", ")+")")
	}
	return strings.Join(parts, "; ")
}

// findOrg accepts an org id or a (case-insensitive) name.
func findOrg(cmd *cobra.Command, db *store.DB, ref string) (domain.Org, error) {
	if o, err := db.GetOrg(cmd.Context(), ref); err == nil {
		return o, nil
	}
	orgs, err := db.ListOrgs(cmd.Context())
	if err != nil {
		return domain.Org{}, err
	}
	var names []string
	for _, o := range orgs {
		if strings.EqualFold(o.Name, ref) {
			return o, nil
		}
		names = append(names, fmt.Sprintf("%q (%s)", o.Name, o.ID))
	}
	if len(names) == 0 {
		return domain.Org{}, fmt.Errorf("no organization %q (the database has none; create one with lanyard admin create-org)", ref)
	}
	return domain.Org{}, fmt.Errorf("no organization %q; known: %s", ref, strings.Join(names, ", "))
}
