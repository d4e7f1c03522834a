// Package securefs writes files and directories that only root (Unix) or
// SYSTEM and Administrators (Windows) can read. The agent keeps its private
// key, certificate, config and offline queue through it.
//
// Only packages under agent/ may import it.
package securefs

import (
	"fmt"
	"os"
	"path/filepath"
)

// MkdirAll creates dir (and parents) and restricts dir itself to its owner:
// mode 0700 on Unix, a protected DACL granting SYSTEM and Administrators
// only on Windows. Parents that already exist are left alone.
func MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("securefs: create %s: %w", dir, err)
	}
	return restrictDir(dir)
}

// WriteFile writes data to path atomically (temporary file in the same
// directory, fsync, rename) with owner-only permissions (0600 / protected
// DACL). The permissions are applied before any byte is written.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("securefs: create temp in %s: %w", dir, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := restrictFile(f, tmp); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("securefs: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("securefs: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("securefs: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("securefs: rename %s: %w", path, err)
	}
	ok = true
	return nil
}
