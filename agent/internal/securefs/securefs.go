// Package securefs writes files and directories that only root (Unix) or
// SYSTEM and Administrators (Windows) can read. The agent keeps its private
// key, certificate, config and offline queue through it.
//
// Only packages under agent/ may import it.
package securefs

import (
	"fmt"
	"os"

	"github.com/lanyardhq/lanyard/agent/internal/atomicfile"
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
	return atomicfile.WriteWith(path, data, func(f *os.File) error { return restrictFile(f, f.Name()) })
}
