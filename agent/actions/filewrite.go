package actions

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/lanyardhq/lanyard/agent/internal/atomicfile"
	"github.com/lanyardhq/lanyard/agent/internal/securefs"
)

// writeFile carries out a FileWrite step. Every write replaces the file in
// one rename: a PAM account file cut short by a crash would refuse every
// login, root's included. Private content goes through securefs (0600 and
// a 0700 directory; a protected DACL on Windows).
func writeFile(w FileWrite) error {
	dir := filepath.Dir(w.Path)
	if w.Private {
		if err := securefs.MkdirAll(dir); err != nil {
			return fmt.Errorf("actions: %w", err)
		}
		if err := securefs.WriteFile(w.Path, []byte(w.Content)); err != nil {
			return fmt.Errorf("actions: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("actions: %w", err)
	}
	mode := w.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err := atomicfile.Write(w.Path, []byte(w.Content), mode); err != nil {
		return fmt.Errorf("actions: %w", err)
	}
	return nil
}
