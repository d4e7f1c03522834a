// Package linux builds the agent's .deb and .rpm with nfpm (v2.45.2, used
// as a library): the binary, a systemd unit, the baked configuration file
// (0600 root) and the state directory (0700), with maintainer scripts that
// enable and start the service on install, stop it on removal, keep the
// device identity across upgrades and delete it on purge (.deb) or erase
// (.rpm, which has no purge).
//
// The scripts tolerate a host without a running systemd (containers,
// chroots): the package installs, and the service is enabled for the next
// boot where systemctl can do that offline.
package linux

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"text/template"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Install locations. ConfigPath and StateDir match agent/config's linux
// DefaultPath and DefaultStateDir.
const (
	Name       = "lanyard-agent"
	Unit       = Name + ".service"
	BinaryPath = "/usr/bin/lanyard-agent"
	UnitPath   = "/usr/lib/systemd/system/" + Unit
	ConfigDir  = "/etc/lanyard"
	ConfigPath = ConfigDir + "/agent.json"
	StateDir   = "/var/lib/lanyard"
)

// Formats this package builds.
const (
	Deb = "deb"
	RPM = "rpm"
)

//go:embed scripts
var scripts embed.FS

var tmpl = template.Must(template.New("").Option("missingkey=error").ParseFS(scripts, "scripts/*"))

// Input is what one package contains.
type Input struct {
	Format     string // Deb or RPM
	Arch       string // Go arch: amd64, arm64
	Version    string // e.g. 1.4.0 or 1.4.0-rc.1
	BinaryPath string // linux agent executable on disk
	Config     []byte // agent.json (agent/config format)
	Maintainer string
	Vendor     string
	Homepage   string
	Mtime      time.Time // fixed for reproducible output
}

// Build writes the package to w. scratch is a directory for the
// generated unit, scripts and config (nfpm takes paths); it is not removed.
func Build(w io.Writer, in Input, scratch string) error {
	if in.Format != Deb && in.Format != RPM {
		return fmt.Errorf("linux: unknown format %q (valid: deb, rpm)", in.Format)
	}
	if in.Arch != "amd64" && in.Arch != "arm64" {
		return fmt.Errorf("linux: unknown arch %q (valid: amd64, arm64)", in.Arch)
	}
	if len(in.Config) == 0 || in.BinaryPath == "" || in.Version == "" {
		return fmt.Errorf("linux: binary, config and version are required")
	}
	if in.Maintainer == "" {
		in.Maintainer = "Lanyard <support@lanyard.dev>"
	}
	if in.Vendor == "" {
		in.Vendor = "Lanyard"
	}
	vars := map[string]string{
		"Name": Name, "Unit": Unit, "BinaryPath": BinaryPath, "ConfigPath": ConfigPath,
		"ConfigDir": ConfigDir, "StateDir": StateDir, "StateDirName": path.Base(StateDir),
	}
	write := func(tmplName, file string, mode os.FileMode) (string, error) {
		var b bytes.Buffer
		if err := tmpl.ExecuteTemplate(&b, tmplName, vars); err != nil {
			return "", fmt.Errorf("linux: render %s: %w", tmplName, err)
		}
		p := filepath.Join(scratch, file)
		if err := os.WriteFile(p, b.Bytes(), mode); err != nil {
			return "", fmt.Errorf("linux: write %s: %w", file, err)
		}
		return p, nil
	}
	unit, err := write("lanyard-agent.service", Unit, 0o644)
	if err != nil {
		return err
	}
	cfg := filepath.Join(scratch, "agent.json")
	if err := os.WriteFile(cfg, in.Config, 0o600); err != nil {
		return fmt.Errorf("linux: write config: %w", err)
	}
	var sc nfpm.Scripts
	if in.Format == Deb {
		if sc.PostInstall, err = write("deb-postinst", "postinst", 0o755); err != nil {
			return err
		}
		if sc.PreRemove, err = write("deb-prerm", "prerm", 0o755); err != nil {
			return err
		}
		if sc.PostRemove, err = write("deb-postrm", "postrm", 0o755); err != nil {
			return err
		}
	} else {
		if sc.PostInstall, err = write("rpm-post", "post", 0o755); err != nil {
			return err
		}
		if sc.PreRemove, err = write("rpm-preun", "preun", 0o755); err != nil {
			return err
		}
		if sc.PostRemove, err = write("rpm-postun", "postun", 0o755); err != nil {
			return err
		}
	}
	mtime := in.Mtime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	root := func(mode os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root", MTime: mtime}
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:        Name,
		Arch:        in.Arch,
		Platform:    "linux",
		Version:     in.Version,
		Release:     "1",
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  in.Maintainer,
		Vendor:      in.Vendor,
		Homepage:    in.Homepage,
		License:     "Proprietary",
		Description: "Lanyard device agent: enrolls this computer with the organization's Lanyard control plane and reports inventory and security posture.",
		MTime:       mtime,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: in.BinaryPath, Destination: BinaryPath, FileInfo: root(0o755)},
				{Source: unit, Destination: UnitPath, FileInfo: root(0o644)},
				{Destination: ConfigDir, Type: files.TypeDir, FileInfo: root(0o755)},
				// A plain file, not a conffile: each build carries its own
				// secret, and a conffile would make dpkg prompt or keep the
				// old one on upgrade.
				{Source: cfg, Destination: ConfigPath, FileInfo: root(0o600)},
				{Destination: StateDir, Type: files.TypeDir, FileInfo: root(0o700)},
			},
			Scripts: sc,
			RPM:     nfpm.RPM{BuildHost: "lanyard-build", Group: "System Environment/Daemons", Summary: "Lanyard device agent"},
		},
	})
	if err := nfpm.PrepareForPackager(info, in.Format); err != nil {
		return fmt.Errorf("linux: prepare %s: %w", in.Format, err)
	}
	p, err := nfpm.Get(in.Format)
	if err != nil {
		return fmt.Errorf("linux: %w", err)
	}
	if err := p.Package(info, w); err != nil {
		return fmt.Errorf("linux: build %s: %w", in.Format, err)
	}
	return nil
}
