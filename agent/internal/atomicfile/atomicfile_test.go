//go:build !windows

package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesContentAndMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "common-account")
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"create", "account required pam_unix.so\n", 0o644},
		{"replace", "# BEGIN\naccount required pam_unix.so\n", 0o644},
		{"private", "{}", 0o600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := Write(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil || string(b) != tc.content {
				t.Fatalf("content %q, %v; want %q", b, err, tc.content)
			}
			st, _ := os.Stat(p)
			if st.Mode().Perm() != tc.mode {
				t.Fatalf("mode %o, want %o", st.Mode().Perm(), tc.mode)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("temporary files left: %v", entries)
			}
		})
	}
	// A missing directory is an error, and nothing is left behind.
	if err := Write(filepath.Join(dir, "nope", "f"), []byte("x"), 0o644); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestWriteReplacesSymlinkNotTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link")
	os.WriteFile(target, []byte("original"), 0o644)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "original" {
		t.Fatalf("symlink target changed: %q", b)
	}
	if st, _ := os.Lstat(link); st.Mode()&os.ModeSymlink != 0 {
		t.Fatal("link still a symlink")
	}
}
