package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sample(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	entries := []struct {
		h    Header
		data string
	}{
		{Header{Name: ".", Mode: TypeDir | 0o755, UID: 0, GID: 80, Mtime: 1700000000}, ""},
		{Header{Name: "./Library", Mode: TypeDir | 0o755, GID: 80, Mtime: 1700000000}, ""},
		{Header{Name: "./Library/agent.json", Mode: TypeRegular | 0o600, GID: 80, Mtime: 1700000000, Size: 13}, `{"a":"b"}` + "\n\n\n\n"},
		{Header{Name: "./Library/link", Mode: TypeSymlink | 0o777, GID: 80, Mtime: 1700000000, Linkname: "agent.json"}, ""},
	}
	for _, e := range entries {
		if err := w.WriteHeader(e.h); err != nil {
			t.Fatal(err)
		}
		if e.data != "" {
			if _, err := w.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	got, err := Read(bytes.NewReader(sample(t)))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		mode int64
		data string
	}{
		{".", TypeDir | 0o755, ""},
		{"./Library", TypeDir | 0o755, ""},
		{"./Library/agent.json", TypeRegular | 0o600, `{"a":"b"}` + "\n\n\n\n"},
		{"./Library/link", TypeSymlink | 0o777, "agent.json"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Mode != w.mode || string(got[i].Data) != w.data || got[i].GID != 80 {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], w)
		}
	}
}

func TestErrors(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	if err := w.WriteHeader(Header{Name: "a", Mode: TypeRegular | 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); err == nil {
		t.Error("overlong write accepted")
	}
	if err := w.WriteHeader(Header{Name: "b", Mode: TypeRegular}); err == nil {
		t.Error("header accepted while previous entry is short")
	}
	w2 := NewWriter(&bytes.Buffer{})
	if err := w2.WriteHeader(Header{Name: "big", Mode: TypeRegular, UID: 1 << 20}); err == nil {
		t.Error("uid overflowing 6 octal digits accepted")
	}
}

// TestSystemCpio checks the archive with GNU cpio, the tool that reads
// macOS payloads on Linux.
func TestSystemCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed (apt-get install cpio)")
	}
	dir := t.TempDir()
	arc := filepath.Join(dir, "a.cpio")
	if err := os.WriteFile(arc, sample(t), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cpio", "-itv", "--numeric-uid-gid", "-F", arc).CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"-rw-------   1 0        80", "./Library/agent.json", "lrwxrwxrwx", "./Library/link -> agent.json", "drwxr-xr-x"} {
		if !strings.Contains(s, want) {
			t.Errorf("cpio -itv output lacks %q:\n%s", want, s)
		}
	}
}
