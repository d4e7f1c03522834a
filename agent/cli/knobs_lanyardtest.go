//go:build lanyardtest

package cli

import (
	"flag"
	"os"
)

// TestBuild is true in agents built with -tags lanyardtest: the end-to-end
// suites' agents, never a shipped one (make build, make packages and the
// installer API build without the tag).
const TestBuild = true

// Environment variables only a test build reads.
const (
	// EnvTestSerial replaces the firmware serial number (containers have
	// none). The agent announces the override to the server.
	EnvTestSerial = "LANYARD_AGENT_TEST_SERIAL"
	// EnvDryRun=1 makes the agent record lock/wipe/message steps without
	// running them (same as run --dry-run); results are SIMULATED.
	EnvDryRun = "LANYARD_AGENT_DRY_RUN"
)

type runKnobs struct{ dryRun *bool }

func registerRunKnobs(fs *flag.FlagSet) runKnobs {
	return runKnobs{dryRun: fs.Bool("dry-run", os.Getenv(EnvDryRun) == "1",
		"TEST BUILD: record lock/unlock/wipe/message steps without running them (results are simulated)")}
}

func (k runKnobs) dry() bool { return *k.dryRun }

func testSerial() string { return os.Getenv(EnvTestSerial) }
