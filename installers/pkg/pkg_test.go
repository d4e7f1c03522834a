package pkg

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/installers/pkg/bom"
	"github.com/lanyardhq/lanyard/installers/pkg/cpio"
	"github.com/lanyardhq/lanyard/installers/pkg/xar"
)

func build(t *testing.T, in Input) map[string][]byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Build(&buf, in); err != nil {
		t.Fatal(err)
	}
	es, _, err := xar.Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range es {
		if !e.Dir {
			out[e.Path] = e.Data
		}
	}
	return out
}

func gunzipCpio(t *testing.T, b []byte) map[string]cpio.Entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	es, err := cpio.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]cpio.Entry{}
	for _, e := range es {
		m[e.Name] = e
	}
	return m
}

func TestBuild(t *testing.T) {
	in := Input{Version: "1.2.3", Archs: []string{"arm64", "x86_64"}, Binary: []byte("\xcf\xfa\xed\xfebinary"),
		Config: []byte(`{"enrollment_secret":"s3cret"}`), Mtime: time.Unix(1764000000, 0)}
	files := build(t, in)
	for _, want := range []string{"Distribution", "base.pkg/PackageInfo", "base.pkg/Bom", "base.pkg/Payload", "base.pkg/Scripts"} {
		if _, ok := files[want]; !ok {
			t.Fatalf("%s missing from the xar", want)
		}
	}
	payload := gunzipCpio(t, files["base.pkg/Payload"])
	checks := map[string]int64{
		"./usr/local/bin/lanyard-agent":                    cpio.TypeRegular | 0o755,
		"./Library/LaunchDaemons/com.lanyard.agent.plist":  cpio.TypeRegular | 0o644,
		"./Library/Application Support/Lanyard/agent.json": cpio.TypeRegular | 0o600,
		"./Library/Application Support/Lanyard/state":      cpio.TypeDir | 0o700,
		"./Library/Application Support":                    cpio.TypeDir | 0o755,
		".":                                                cpio.TypeDir | 0o755,
	}
	for p, mode := range checks {
		e, ok := payload[p]
		if !ok {
			t.Errorf("payload lacks %s", p)
			continue
		}
		if e.Mode != mode || e.UID != 0 || e.GID != 80 {
			t.Errorf("%s: mode %o owner %d:%d, want %o 0:80", p, e.Mode, e.UID, e.GID, mode)
		}
	}
	if got := string(payload["./Library/Application Support/Lanyard/agent.json"].Data); got != string(in.Config) {
		t.Errorf("config = %q", got)
	}
	// The BOM lists exactly the payload with sizes and cksums.
	boms, err := bom.Read(files["base.pkg/Bom"])
	if err != nil {
		t.Fatal(err)
	}
	if len(boms) != len(payload) {
		t.Errorf("BOM has %d paths, payload %d", len(boms), len(payload))
	}
	for _, b := range boms {
		p, ok := payload[b.Path]
		if !ok {
			t.Errorf("BOM path %s not in payload", b.Path)
			continue
		}
		if int64(b.Mode) != p.Mode || b.GID != 80 || b.Size != uint32(len(p.Data)) || (len(p.Data) > 0 && b.Checksum != bom.Cksum(p.Data)) {
			t.Errorf("BOM %s = %+v, payload mode %o size %d", b.Path, b, p.Mode, len(p.Data))
		}
	}
	scripts := gunzipCpio(t, files["base.pkg/Scripts"])
	post := string(scripts["./postinstall"].Data)
	if scripts["./postinstall"].Mode != cpio.TypeRegular|0o755 || !strings.Contains(post, `launchctl bootstrap system "$PLIST"`) {
		t.Errorf("postinstall mode %o:\n%s", scripts["./postinstall"].Mode, post)
	}
	dist := string(files["Distribution"])
	if !strings.Contains(dist, `hostArchitectures="arm64,x86_64"`) || !strings.Contains(dist, `#base.pkg`) {
		t.Errorf("Distribution:\n%s", dist)
	}
	info := string(files["base.pkg/PackageInfo"])
	if !strings.Contains(info, `identifier="com.lanyard.agent"`) || !strings.Contains(info, `version="1.2.3"`) ||
		!strings.Contains(info, `numberOfFiles="`) {
		t.Errorf("PackageInfo:\n%s", info)
	}
}

func TestBuildRejects(t *testing.T) {
	ok := Input{Version: "1.0.0", Archs: []string{"arm64"}, Binary: []byte("b"), Config: []byte("{}")}
	for name, mut := range map[string]func(*Input){
		"bad version": func(in *Input) { in.Version = `1"><x` },
		"bad arch":    func(in *Input) { in.Archs = []string{"ppc"} },
		"no arch":     func(in *Input) { in.Archs = nil },
		"no config":   func(in *Input) { in.Config = nil },
		"bad title":   func(in *Input) { in.Title = "<x>" },
	} {
		in := ok
		mut(&in)
		if err := Build(io.Discard, in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := Build(io.Discard, ok); err != nil {
		t.Errorf("valid input rejected: %v", err)
	}
}
