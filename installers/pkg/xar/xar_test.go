package xar

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample(t *testing.T) []byte {
	t.Helper()
	mt := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	err := Write(&buf, []File{
		{Path: "Distribution", Data: []byte("<installer-gui-script/>"), Mtime: mt},
		{Path: "base.pkg/PackageInfo", Data: []byte("<pkg-info/>"), Mtime: mt},
		{Path: "base.pkg/Payload", Data: bytes.Repeat([]byte{1, 2, 3}, 1000), Mtime: mt},
		{Path: "base.pkg", Dir: true, Mode: 0o755, Mtime: mt},
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := sample(t)
	if !bytes.Equal(b, sample(t)) {
		t.Error("two writes of the same input differ")
	}
	es, toc, err := Read(b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Entry{}
	for _, e := range es {
		got[e.Path] = e
	}
	if !got["base.pkg"].Dir || string(got["base.pkg/PackageInfo"].Data) != "<pkg-info/>" || len(got["base.pkg/Payload"].Data) != 3000 {
		t.Errorf("entries = %+v", es)
	}
	if !strings.Contains(toc, `<checksum style="sha1">`) || !strings.Contains(toc, `<encoding style="application/octet-stream">`) {
		t.Errorf("toc lacks checksum or encoding:\n%s", toc)
	}
	// Tampering with a member is detected.
	bad := append([]byte(nil), b...)
	bad[len(bad)-1] ^= 0xff
	if _, _, err := Read(bad); err == nil {
		t.Error("tampered payload accepted")
	}
}

func TestErrors(t *testing.T) {
	for name, files := range map[string][]File{
		"dup":          {{Path: "a"}, {Path: "a"}},
		"file and dir": {{Path: "a"}, {Path: "a/b"}},
		"escape":       {{Path: "../x"}},
	} {
		if err := Write(&bytes.Buffer{}, files); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBsdtarReadsIt(t *testing.T) {
	if _, err := exec.LookPath("bsdtar"); err != nil {
		t.Skip("bsdtar not installed (apt-get install libarchive-tools)")
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "a.pkg")
	if err := os.WriteFile(f, sample(t), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bsdtar", "-tvf", f).CombinedOutput()
	if err != nil {
		t.Fatalf("bsdtar -tvf: %v\n%s", err, out)
	}
	for _, want := range []string{"Distribution", "base.pkg/PackageInfo", "base.pkg/Payload", "root", "wheel"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	x := filepath.Join(dir, "x")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bsdtar", "-xf", f, "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("bsdtar -xf: %v\n%s", err, out)
	}
	payload, err := os.ReadFile(filepath.Join(x, "base.pkg", "Payload"))
	if err != nil || !bytes.Equal(payload, bytes.Repeat([]byte{1, 2, 3}, 1000)) {
		t.Errorf("extracted Payload wrong (err %v, %d bytes)", err, len(payload))
	}
}
