//go:build !lanyardtest

package cli

import "flag"

// TestBuild is false in release builds: they have no test knobs at all.
// There is no --dry-run flag, and the test environment variables are not
// read, so nothing a local admin sets can make a lock or wipe look done or
// change the serial the agent reports.
const TestBuild = false

type runKnobs struct{}

func registerRunKnobs(*flag.FlagSet) runKnobs { return runKnobs{} }

func (runKnobs) dry() bool { return false }

func testSerial() string { return "" }
