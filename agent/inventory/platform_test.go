package inventory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPlatformCache: the platform is loaded again exactly when a release file changes
// or appears, never while they are untouched, and a failed load is not remembered.
func TestPlatformCache(t *testing.T) {
	dir := t.TempDir()
	osRelease, lsb := filepath.Join(dir, "os-release"), filepath.Join(dir, "lsb-release")
	write := func(p, s string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write(osRelease, "VERSION_ID=12\n", t0)

	var loads int
	var failNext bool
	load := func(context.Context) (platform, error) {
		loads++
		if failNext {
			failNext = false
			return platform{}, errors.New("lsb_release: exit status 1")
		}
		b, _ := os.ReadFile(osRelease)
		return platform{name: "debian", version: string(b)}, nil
	}
	var c platformCache
	files := []string{osRelease, lsb}
	ctx := context.Background()

	steps := []struct {
		name      string
		change    func()
		wantLoads int
		wantErr   bool
		wantVer   string
	}{
		{"first collection loads", nil, 1, false, "VERSION_ID=12\n"},
		{"unchanged files: cached", nil, 1, false, "VERSION_ID=12\n"},
		{"still cached", nil, 1, false, "VERSION_ID=12\n"},
		{"upgrade rewrites os-release", func() { write(osRelease, "VERSION_ID=13\n", t0.Add(time.Hour)) }, 2, false, "VERSION_ID=13\n"},
		{"a release file appears", func() { write(lsb, "DISTRIB_ID=Debian\n", t0) }, 3, false, "VERSION_ID=13\n"},
		{"cached again", nil, 3, false, "VERSION_ID=13\n"},
		{"same mtime, new size", func() { write(osRelease, "VERSION_ID=13.1\n", t0.Add(time.Hour)) }, 4, false, "VERSION_ID=13.1\n"},
		{"failed load", func() { write(osRelease, "VERSION_ID=14\n", t0.Add(2*time.Hour)); failNext = true }, 5, true, ""},
		{"failure is not cached", nil, 6, false, "VERSION_ID=14\n"},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		p, err := c.get(ctx, files, load)
		if (err != nil) != s.wantErr || loads != s.wantLoads || p.version != s.wantVer {
			t.Fatalf("%s: loads = %d (want %d), err = %v, version = %q (want %q)", s.name, loads, s.wantLoads, err, p.version, s.wantVer)
		}
	}

	// No files to stamp (Windows): every collection loads.
	var w platformCache
	before := loads
	for i := 0; i < 3; i++ {
		if _, err := w.get(ctx, nil, load); err != nil {
			t.Fatal(err)
		}
	}
	if loads-before != 3 {
		t.Fatalf("without files: %d loads, want 3", loads-before)
	}
}
