//go:build !lanyardtest

package cli

import (
	"strings"
	"testing"
)

// TestReleaseBuildHasNoKnobs: in a release build `run --dry-run` is an
// unknown flag (one line of error, nothing started) and the test variables
// change nothing.
func TestReleaseBuildHasNoKnobs(t *testing.T) {
	dir := t.TempDir()
	_, stderr, err := run(t, "run", "--dry-run", "--config", dir+"/none.json", "--state-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -dry-run") {
		t.Fatalf("run --dry-run: err %v", err)
	}
	if stderr != "" {
		t.Fatalf("run --dry-run printed more than the error: %q", stderr)
	}
	plain, _ := inventoryJSON(t)
	t.Setenv("LANYARD_AGENT_TEST_SERIAL", "FAKE-SERIAL")
	t.Setenv("LANYARD_AGENT_DRY_RUN", "1")
	inv, stderr := inventoryJSON(t)
	if inv.Hardware.SerialNumber == "FAKE-SERIAL" || strings.HasPrefix(inv.Hardware.SerialSource, "override") ||
		inv.Hardware != plain.Hardware || strings.Contains(stderr, "TEST BUILD") {
		t.Fatalf("release build honoured LANYARD_AGENT_TEST_SERIAL: %+v (without it %+v), stderr %q", inv.Hardware, plain.Hardware, stderr)
	}
}
