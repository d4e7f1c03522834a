//go:build lanyardtest

package cli

import (
	"strings"
	"testing"
)

// TestTestBuildKnobs: a test build honours the serial override, says so in
// the inventory (serial_source) and logs it.
func TestTestBuildKnobs(t *testing.T) {
	t.Setenv(EnvTestSerial, "CLI-SERIAL")
	inv, stderr := inventoryJSON(t)
	if inv.Hardware.SerialNumber != "CLI-SERIAL" || inv.Hardware.SerialSource != "override:test" {
		t.Fatalf("inventory %+v", inv)
	}
	if !strings.Contains(stderr, "TEST BUILD") {
		t.Fatalf("no warning about the serial override: %q", stderr)
	}
}
