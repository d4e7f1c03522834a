// Package pkg builds a macOS flat installer package (.pkg) for the agent on
// any OS: a xar archive holding Distribution and base.pkg/{PackageInfo,
// Bom, Payload, Scripts}, where Payload and Scripts are gzipped cpio "odc"
// archives owned 0:80 and Bom lists every payload path (see the cpio, bom
// and xar subpackages). The postinstall script bootstraps a LaunchDaemon.
//
// Status: built and structurally verified on Linux, not yet verified on
// macOS (no Linux tool runs Installer or reads a BOM the way it does).
package pkg

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/lanyardhq/lanyard/installers/pkg/bom"
	"github.com/lanyardhq/lanyard/installers/pkg/cpio"
	"github.com/lanyardhq/lanyard/installers/pkg/xar"
)

// Install locations on macOS. ConfigPath and StateDir match agent/config's
// darwin DefaultPath and DefaultStateDir.
const (
	Label      = "com.lanyard.agent"
	BinaryPath = "/usr/local/bin/lanyard-agent"
	ConfigPath = "/Library/Application Support/Lanyard/agent.json"
	StateDir   = "/Library/Application Support/Lanyard/state"
	LogDir     = "/Library/Logs/Lanyard"
	PlistPath  = "/Library/LaunchDaemons/" + Label + ".plist"

	// Payload owner: root and group admin (80), as Apple's packages ship.
	ownerUID = 0
	ownerGID = 80
)

//go:embed templates
var templates embed.FS

var tmpl = template.Must(template.New("").Option("missingkey=error").ParseFS(templates, "templates/*"))

// Input is what one package contains.
type Input struct {
	Identifier string // package id; default Label
	Title      string // shown by Installer; default "Lanyard Agent"
	Version    string // e.g. 1.4.0
	// Archs are the Mach-O architectures the binary holds: "arm64",
	// "x86_64" or both for a universal binary.
	Archs        []string
	Binary       []byte // darwin agent executable
	Config       []byte // agent.json (agent/config format)
	Mtime        time.Time
	MinOSVersion string // default 12.0
}

var (
	identRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
	versionRe = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~-]*$`)
)

type payloadFile struct {
	path string // absolute install path
	mode int64  // cpio mode with type bits
	data []byte
}

// Build writes the .pkg to w.
func Build(w io.Writer, in Input) error {
	if in.Identifier == "" {
		in.Identifier = Label
	}
	if in.Title == "" {
		in.Title = "Lanyard Agent"
	}
	if in.MinOSVersion == "" {
		in.MinOSVersion = "12.0"
	}
	if !identRe.MatchString(in.Identifier) || !versionRe.MatchString(in.Version) || !versionRe.MatchString(in.MinOSVersion) {
		return fmt.Errorf("pkg: invalid identifier %q or version %q", in.Identifier, in.Version)
	}
	if strings.ContainsAny(in.Title, "<>&\"'") {
		return fmt.Errorf("pkg: title %q must not contain XML special characters", in.Title)
	}
	if len(in.Binary) == 0 || len(in.Config) == 0 {
		return fmt.Errorf("pkg: binary and config are required")
	}
	for _, a := range in.Archs {
		if a != "arm64" && a != "x86_64" {
			return fmt.Errorf("pkg: unknown architecture %q (valid: arm64, x86_64)", a)
		}
	}
	if len(in.Archs) == 0 {
		return fmt.Errorf("pkg: at least one architecture is required")
	}
	mtime := in.Mtime.UTC().Truncate(time.Second)
	if mtime.Unix() <= 0 {
		mtime = time.Unix(0, 0)
	}
	vars := map[string]any{
		"Label": Label, "BinaryPath": BinaryPath, "ConfigPath": ConfigPath, "StateDir": StateDir,
		"LogDir": LogDir, "Identifier": in.Identifier, "Version": in.Version, "Title": in.Title,
		"HostArchitectures": strings.Join(in.Archs, ","), "MinOSVersion": in.MinOSVersion,
	}
	render := func(name string) ([]byte, error) {
		var b bytes.Buffer
		if err := tmpl.ExecuteTemplate(&b, name, vars); err != nil {
			return nil, fmt.Errorf("pkg: render %s: %w", name, err)
		}
		return b.Bytes(), nil
	}
	plist, err := render("launchd.plist")
	if err != nil {
		return err
	}
	files := []payloadFile{
		{BinaryPath, cpio.TypeRegular | 0o755, in.Binary},
		{PlistPath, cpio.TypeRegular | 0o644, plist},
		{ConfigPath, cpio.TypeRegular | 0o600, in.Config},
		{StateDir, cpio.TypeDir | 0o700, nil},
		{LogDir, cpio.TypeDir | 0o755, nil},
	}
	payload, boms, installBytes, err := payloadArchive(files, mtime)
	if err != nil {
		return err
	}
	var bomBuf bytes.Buffer
	if err := bom.Write(&bomBuf, boms); err != nil {
		return err
	}
	var scriptFiles []payloadFile
	for _, s := range []string{"preinstall", "postinstall"} {
		b, err := render(s)
		if err != nil {
			return err
		}
		scriptFiles = append(scriptFiles, payloadFile{"/" + s, cpio.TypeRegular | 0o755, b})
	}
	scripts, _, _, err := payloadArchive(scriptFiles, mtime)
	if err != nil {
		return err
	}
	vars["NumberOfFiles"] = len(boms)
	vars["InstallKBytes"] = (installBytes + 1023) / 1024
	pkgInfo, err := render("PackageInfo")
	if err != nil {
		return err
	}
	dist, err := render("Distribution")
	if err != nil {
		return err
	}
	return xar.Write(w, []xar.File{
		{Path: "Distribution", Data: dist, Mtime: mtime},
		{Path: "base.pkg", Dir: true, Mode: 0o755, Mtime: mtime},
		{Path: "base.pkg/PackageInfo", Data: pkgInfo, Mtime: mtime},
		{Path: "base.pkg/Bom", Data: bomBuf.Bytes(), Mtime: mtime},
		{Path: "base.pkg/Payload", Data: payload, Mtime: mtime},
		{Path: "base.pkg/Scripts", Data: scripts, Mtime: mtime},
	})
}

// payloadArchive returns the gzipped odc cpio of files (with every parent
// directory, owned 0:80), the matching BOM entries and the installed size.
func payloadArchive(files []payloadFile, mtime time.Time) ([]byte, []bom.Entry, int64, error) {
	entries := map[string]payloadFile{".": {".", cpio.TypeDir | 0o755, nil}}
	for _, f := range files {
		rel := "." + f.path
		entries[rel] = payloadFile{rel, f.mode, f.data}
		for d := path.Dir(f.path); d != "/"; d = path.Dir(d) {
			if _, ok := entries["."+d]; !ok {
				entries["."+d] = payloadFile{"." + d, cpio.TypeDir | 0o755, nil}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for k := range entries {
		names = append(names, k)
	}
	sort.Strings(names)
	var raw bytes.Buffer
	cw := cpio.NewWriter(&raw)
	var boms []bom.Entry
	var total int64
	for _, n := range names {
		e := entries[n]
		if err := cw.WriteHeader(cpio.Header{Name: n, Mode: e.mode, UID: ownerUID, GID: ownerGID,
			Mtime: mtime.Unix(), Size: int64(len(e.data))}); err != nil {
			return nil, nil, 0, err
		}
		if _, err := cw.Write(e.data); err != nil {
			return nil, nil, 0, err
		}
		be := bom.Entry{Path: n, Mode: uint16(e.mode), UID: ownerUID, GID: ownerGID, Mtime: uint32(mtime.Unix())}
		if e.mode&0o170000 == cpio.TypeRegular {
			be.Size = uint32(len(e.data))
			be.Checksum = bom.Cksum(e.data)
		}
		total += int64(len(e.data))
		boms = append(boms, be)
	}
	if err := cw.Close(); err != nil {
		return nil, nil, 0, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.ModTime = time.Time{}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, 0, err
	}
	return gz.Bytes(), boms, total, nil
}
