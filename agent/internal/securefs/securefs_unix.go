//go:build !windows

package securefs

import (
	"fmt"
	"os"
)

func restrictDir(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("securefs: chmod %s: %w", dir, err)
	}
	return nil
}

func restrictFile(f *os.File, name string) error {
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("securefs: chmod %s: %w", name, err)
	}
	return nil
}
