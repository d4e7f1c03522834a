// Package atomicfile replaces a file's content in one step: a temporary
// file in the same directory, written, synced and renamed over the target.
// A reader (libpam opening /etc/pam.d/common-account, a login reading
// /etc/nologin) sees the old content or the new, never a file cut short by
// a crash: an empty account stack would refuse every login, root's too.
//
// Only packages under agent/ may import it.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data and gives it mode. A symlink at path is
// replaced, not followed: callers resolve links first (within the root
// they manage) and pass the real file.
func Write(path string, data []byte, mode os.FileMode) error {
	return WriteWith(path, data, func(f *os.File) error {
		if err := f.Chmod(mode.Perm()); err != nil {
			return fmt.Errorf("atomicfile: chmod %s: %w", f.Name(), err)
		}
		return nil
	})
}

// WriteWith is Write with the temporary file's permissions set by restrict,
// which runs before the first byte is written (so a private file is never
// readable by others, not even half-written).
func WriteWith(path string, data []byte, restrict func(*os.File) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".lanyard-*")
	if err != nil {
		return fmt.Errorf("atomicfile: create temp in %s: %w", dir, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := restrict(f); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("atomicfile: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: rename over %s: %w", path, err)
	}
	ok = true
	// Make the rename itself durable (best effort: not every OS can sync a
	// directory).
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
