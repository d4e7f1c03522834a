package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// RestoreOptions for Restore.
type RestoreOptions struct {
	In string
	// DataDir is the new data directory: absent or empty.
	DataDir string
	// KeyFile is the keyring to install when the archive holds none (it is copied to
	// <data-dir>/keyring.json); it must hold every key the manifest needs.
	KeyFile string
}

// Restore unpacks an archive into an empty data directory, verifying every member's
// checksum, the keyring against the keys the manifest needs and the row counts of the
// restored database. On failure the new data directory is removed again.
func Restore(ctx context.Context, o RestoreOptions) (m Manifest, err error) {
	if err := ensureEmptyDir(o.DataDir); err != nil {
		return Manifest{}, err
	}
	defer func() {
		if err != nil {
			clearDir(o.DataDir)
		}
	}()
	f, err := os.Open(o.In)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	tr, m, err := openArchive(f, o.In)
	if err != nil {
		return Manifest{}, err
	}
	want := map[string]Member{}
	for _, mem := range m.Members {
		want[mem.Name] = mem
	}
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("read archive: %w", err)
		}
		mem, ok := want[hdr.Name]
		if !ok || seen[hdr.Name] {
			return Manifest{}, fmt.Errorf("archive member %q is not in the manifest", hdr.Name)
		}
		seen[hdr.Name] = true
		dst, err := memberPath(o.DataDir, hdr.Name)
		if err != nil {
			return Manifest{}, err
		}
		if err := extract(tr, dst, mem); err != nil {
			return Manifest{}, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !seen[name] {
			return Manifest{}, fmt.Errorf("archive lacks %s, which the manifest lists", name)
		}
	}
	if err := installKeyring(o, m); err != nil {
		return Manifest{}, err
	}
	if err := verifyDB(ctx, filepath.Join(o.DataDir, DBFile), m); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// ReadManifest returns an archive's manifest without extracting anything.
func ReadManifest(archive string) (Manifest, error) {
	f, err := os.Open(archive)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	_, m, err := openArchive(f, archive)
	return m, err
}

// openArchive reads the manifest, which must be the first member, and returns the
// reader positioned after it.
func openArchive(r io.Reader, name string) (*tar.Reader, Manifest, error) {
	var m Manifest
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, m, fmt.Errorf("%s is not a Lanyard backup: %w", name, err)
	}
	tr := tar.NewReader(gz)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != ManifestName {
		return nil, m, fmt.Errorf("%s is not a Lanyard backup: its first member is not %s", name, ManifestName)
	}
	if err := json.NewDecoder(io.LimitReader(tr, 16<<20)).Decode(&m); err != nil {
		return nil, m, fmt.Errorf("read manifest: %w", err)
	}
	if m.Format != FormatVersion || m.Dialect != "sqlite" {
		return nil, m, fmt.Errorf("backup format %d (%s) is not one this version restores (format %d, sqlite)", m.Format, m.Dialect, FormatVersion)
	}
	return tr, m, nil
}

// memberPath maps an archive name to a path in dataDir, refusing names that would
// escape it.
func memberPath(dataDir, name string) (string, error) {
	clean := path.Clean(name)
	if clean != name || path.IsAbs(name) || strings.HasPrefix(clean, "../") || clean == ".." {
		return "", fmt.Errorf("archive member %q: unsafe name", name)
	}
	switch {
	case name == DBFile || name == KeyringFile:
		return filepath.Join(dataDir, name), nil
	case strings.HasPrefix(name, "data/"):
		return filepath.Join(dataDir, filepath.FromSlash(strings.TrimPrefix(name, "data/"))), nil
	}
	return "", fmt.Errorf("archive member %q: unknown name", name)
}

func extract(r io.Reader, dst string, mem Member) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", mem.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != mem.Size || got != mem.SHA256 {
		return fmt.Errorf("%s is corrupt: sha256 %s (%d bytes), the manifest says %s (%d bytes)", mem.Name, got, n, mem.SHA256, mem.Size)
	}
	return nil
}

func installKeyring(o RestoreOptions, m Manifest) error {
	dst := filepath.Join(o.DataDir, KeyringFile)
	if !m.Keyring.Included {
		if o.KeyFile == "" && len(m.Keyring.Needed) == 0 {
			return nil // nothing is sealed yet: `serve` creates a keyring at its first start
		}
		if o.KeyFile == "" {
			return fmt.Errorf("the backup holds no keyring: pass --keyring with the keyring holding keys %v (it was %s)", m.Keyring.Needed, m.Keyring.Source)
		}
		b, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return fmt.Errorf("read keyring: %w", err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			return fmt.Errorf("install keyring: %w", err)
		}
	}
	kr, err := loadKeyring(dst)
	if err != nil {
		return err
	}
	if missing := missingKeys(kr, m.Keyring.Needed); len(missing) > 0 {
		return fmt.Errorf("the keyring lacks keys %v that sealed values in the backup", missing)
	}
	return nil
}

func verifyDB(ctx context.Context, dbPath string, m Manifest) error {
	db, err := openSQLite(dbPath, true)
	if err != nil {
		return err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		return fmt.Errorf("restored database fails its integrity check: %s %v", ok, err)
	}
	counts, err := CountRows(ctx, db)
	if err != nil {
		return err
	}
	if !maps.Equal(counts, m.Tables) {
		return fmt.Errorf("restored row counts %v differ from the manifest's %v", counts, m.Tables)
	}
	return nil
}

// ensureEmptyDir creates dir (0700) or accepts an existing empty one.
func ensureEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s holds %d entries; restore into a new or empty directory", ErrNotEmpty, dir, len(entries))
	}
	return os.Chmod(dir, 0o700)
}

// clearDir empties a directory Restore filled (it was empty before).
func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
