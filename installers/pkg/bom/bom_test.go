package bom

import (
	"bytes"
	"fmt"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestCksumMatchesPOSIX(t *testing.T) {
	for _, in := range []string{"", "a", "hello world\n", strings.Repeat("lanyard", 1000)} {
		got := Cksum([]byte(in))
		if _, err := exec.LookPath("cksum"); err != nil {
			t.Skip("cksum not installed")
		}
		cmd := exec.Command("cksum")
		cmd.Stdin = strings.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := strconv.ParseUint(strings.Fields(string(out))[0], 10, 32)
		if uint64(got) != want {
			t.Errorf("Cksum(%.10q) = %d, cksum(1) says %d", in, got, want)
		}
	}
}

func sampleEntries(extra int) []Entry {
	es := []Entry{
		{Path: ".", Mode: ModeDir | 0o755, GID: 80, Mtime: 1700000000},
		{Path: "./Library", Mode: ModeDir | 0o755, GID: 80, Mtime: 1700000000},
		{Path: "./Library/LaunchDaemons", Mode: ModeDir | 0o755, GID: 80, Mtime: 1700000000},
		{Path: "./Library/LaunchDaemons/com.lanyard.agent.plist", Mode: ModeRegular | 0o644, GID: 80, Mtime: 1700000000, Size: 512, Checksum: 12345},
		{Path: "./usr", Mode: ModeDir | 0o755, GID: 80, Mtime: 1700000000},
		{Path: "./usr/local", Mode: ModeDir | 0o755, GID: 80, Mtime: 1700000000},
		{Path: "./usr/local/bin", Mode: ModeDir | 0o755, GID: 80, Mtime: 1700000000},
		{Path: "./usr/local/bin/lanyard-agent", Mode: ModeRegular | 0o755, GID: 80, Mtime: 1700000000, Size: 9 << 20, Checksum: 0xdeadbeef},
		{Path: "./usr/local/bin/agent", Mode: ModeSymlink | 0o755, GID: 80, Mtime: 1700000000, Size: 13, Checksum: Cksum([]byte("lanyard-agent")), Linkname: "lanyard-agent"},
	}
	for i := range extra {
		es = append(es, Entry{Path: fmt.Sprintf("./Library/f%04d", i), Mode: ModeRegular | 0o600, GID: 80, Size: uint32(i), Checksum: uint32(i * 7)})
	}
	return es
}

func TestRoundTrip(t *testing.T) {
	for _, extra := range []int{0, 700} { // 700 spills over several leaves and a branch node
		t.Run(fmt.Sprint(len(sampleEntries(extra)), " paths"), func(t *testing.T) {
			in := sampleEntries(extra)
			var buf bytes.Buffer
			if err := Write(&buf, in); err != nil {
				t.Fatal(err)
			}
			got, err := Read(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(in) {
				t.Fatalf("read %d entries, wrote %d", len(got), len(in))
			}
			byPath := map[string]Entry{}
			for _, e := range got {
				byPath[e.Path] = e
			}
			for _, e := range in {
				if !reflect.DeepEqual(byPath[e.Path], e) {
					t.Errorf("%s: read %+v, wrote %+v", e.Path, byPath[e.Path], e)
				}
			}
			if got[0].Path != "." || !strings.HasPrefix(got[1].Path, "./") {
				t.Errorf("unexpected order: %q, %q", got[0].Path, got[1].Path)
			}
			// ids are breadth first with sorted siblings: "./Library" before "./usr".
			if got[1].Path != "./Library" || got[2].Path != "./usr" {
				t.Errorf("ids not breadth-first sorted: %q, %q", got[1].Path, got[2].Path)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleEntries(0)); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if string(b[:8]) != "BOMStore" {
		t.Fatalf("magic %q", b[:8])
	}
	for _, v := range []string{"BomInfo", "Paths", "HLIndex", "VIndex", "Size64"} {
		if !bytes.Contains(b, []byte(v)) {
			t.Errorf("variable %s missing", v)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	cases := map[string][]Entry{
		"no root":          {{Path: "./a", Mode: ModeRegular | 0o644}},
		"missing parent":   {{Path: ".", Mode: ModeDir | 0o755}, {Path: "./a/b", Mode: ModeRegular | 0o644}},
		"parent is file":   {{Path: ".", Mode: ModeDir | 0o755}, {Path: "./a", Mode: ModeRegular}, {Path: "./a/b", Mode: ModeRegular}},
		"duplicate":        {{Path: ".", Mode: ModeDir | 0o755}, {Path: "./a", Mode: ModeRegular}, {Path: "a", Mode: ModeRegular}},
		"unsupported type": {{Path: ".", Mode: ModeDir | 0o755}, {Path: "./fifo", Mode: 0o010644}},
	}
	for name, es := range cases {
		if err := Write(&bytes.Buffer{}, es); err == nil {
			t.Errorf("%s: Write accepted it", name)
		}
	}
}

func TestReadRejectsCorrupt(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleEntries(0)); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for name, mutate := range map[string]func([]byte) []byte{
		"magic":     func(b []byte) []byte { b[0] = 'X'; return b },
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"index off": func(b []byte) []byte { b[16], b[17] = 0x7f, 0xff; return b },
	} {
		b := mutate(append([]byte(nil), good...))
		if _, err := Read(b); err == nil {
			t.Errorf("%s: Read accepted a corrupt BOM", name)
		}
	}
}

// TestAppleLayout pins the byte layout Apple's own mkbom produces (31-byte
// directory and 35-byte file metadata, flags 0x000f, 4096-byte Paths,
// HLIndex and Size64 nodes, a 128-byte VIndex node).
func TestAppleLayout(t *testing.T) {
	var buf bytes.Buffer
	es := []Entry{
		{Path: ".", Mode: ModeDir | 0o755},
		{Path: "./Applications", Mode: ModeDir | 0o775, GID: 80},
		{Path: "./Applications/hello.txt", Mode: ModeRegular | 0o644, GID: 80, Size: 6, Checksum: Cksum([]byte("hello\n"))},
	}
	if err := Write(&buf, es); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	be := func(off int) int { return int(b[off])<<24 | int(b[off+1])<<16 | int(b[off+2])<<8 | int(b[off+3]) }
	indexOff := be(16)
	n := be(indexOff)
	lengths := map[int]int{}
	var metas [][]byte
	for i := 1; i < n; i++ {
		a, l := be(indexOff+4+8*i), be(indexOff+8+8*i)
		lengths[l]++
		if l == 31 || l == 35 {
			metas = append(metas, b[a:a+l])
		}
	}
	if lengths[4096] != 3 || lengths[128] != 1 || lengths[31] != 2 || lengths[35] != 1 {
		t.Errorf("block lengths %v: want three 4096-byte nodes, one 128, two 31-byte dirs, one 35-byte file", lengths)
	}
	for _, m := range metas {
		if m[1] != 1 || m[2] != 0 || m[3] != 0x0f || !bytes.Equal(m[len(m)-8:], make([]byte, 8)) {
			t.Errorf("metadata block % x", m)
		}
	}
	// BomInfo: version 1, 3 paths, one entry with the files' total size.
	got, err := Read(b)
	if err != nil || len(got) != 3 {
		t.Fatalf("read back: %v, %d entries", err, len(got))
	}
}
