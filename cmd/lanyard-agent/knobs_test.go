package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/internal/e2etest"
)

type hardware struct {
	SerialNumber string `json:"serial_number"`
	SerialSource string `json:"serial_source"`
	HardwareUUID string `json:"hardware_uuid"`
}

func inventoryHW(t *testing.T, bin string, env ...string) hardware {
	t.Helper()
	cmd := exec.Command(bin, "inventory", "--json")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s inventory --json: %v", filepath.Base(bin), err)
	}
	var inv struct {
		Hardware hardware `json:"hardware"`
	}
	if err := json.Unmarshal(out, &inv); err != nil {
		t.Fatalf("inventory: %v\n%s", err, out)
	}
	return inv.Hardware
}

// firmwareUUID is what the firmware says (root only; "" without DMI).
func firmwareUUID() string {
	b, err := os.ReadFile("/sys/class/dmi/id/product_uuid")
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(string(b)))
}

// TestReleaseBuildIgnoresTestKnobs builds the agent as `make build` ships it
// and proves that nothing a local admin can set on the device turns on the
// test knobs: `run --dry-run` is an unknown flag (one line, exit 1), the test
// variables are not even in the binary, and the inventory reports the
// firmware's serial and hardware UUID whatever LANYARD_AGENT_TEST_SERIAL
// says. The test build from the same source does honour them, so the
// assertions are not vacuous.
func TestReleaseBuildIgnoresTestKnobs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent twice; skipped in -short mode")
	}
	dir := t.TempDir()
	release, test := filepath.Join(dir, "lanyard-agent"), filepath.Join(dir, "lanyard-agent-test")
	e2etest.BuildReleaseAgent(t, release, "-trimpath")
	e2etest.BuildTestAgent(t, test, "-trimpath")

	// 1. run --dry-run: unknown flag, one line, non-zero exit, nothing started.
	state := filepath.Join(dir, "state")
	cmd := exec.Command(release, "run", "--dry-run", "--config", filepath.Join(dir, "none.json"), "--state-dir", state)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("release run --dry-run: %v", err)
	}
	if msg := strings.TrimSpace(stderr.String()); strings.Count(msg, "\n") != 0 ||
		!strings.Contains(msg, "flag provided but not defined: -dry-run") {
		t.Fatalf("release run --dry-run printed %q", msg)
	}
	if _, err := os.Stat(filepath.Join(state, "status.json")); err == nil {
		t.Fatal("release run --dry-run started the agent")
	}

	// 2. The variables are not read: their names are not in the binary.
	bin, err := os.ReadFile(release)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"LANYARD_AGENT_TEST_SERIAL", "LANYARD_AGENT_DRY_RUN"} {
		if bytes.Contains(bin, []byte(v)) {
			t.Errorf("the release binary contains %s", v)
		}
	}
	if tb, _ := os.ReadFile(test); !bytes.Contains(tb, []byte("LANYARD_AGENT_TEST_SERIAL")) {
		t.Fatal("the test build lacks the knob: the check above proves nothing")
	}
	// The end-to-end suite's planner injection (other sysfs/proc roots, a
	// harmless power-off) is not reachable from either agent: the linker
	// left its constructor out, while the planner the agent uses is in.
	for _, b := range []string{release, test} {
		bs, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bs, []byte("actions.NewLinuxPlannerAt")) || !bytes.Contains(bs, []byte("actions.NewPlanner")) {
			t.Errorf("%s: actions.NewLinuxPlannerAt linked in, or actions.NewPlanner missing", filepath.Base(b))
		}
	}

	// 3. The inventory reports the firmware's identity, not the override.
	plain := inventoryHW(t, release)
	faked := inventoryHW(t, release, "LANYARD_AGENT_TEST_SERIAL=FAKE", "LANYARD_AGENT_DRY_RUN=1")
	if faked.SerialNumber == "FAKE" || strings.HasPrefix(faked.SerialSource, "override") || faked != plain {
		t.Fatalf("release build with LANYARD_AGENT_TEST_SERIAL=FAKE reports %+v (without it %+v)", faked, plain)
	}
	if want := firmwareUUID(); faked.HardwareUUID != want {
		t.Fatalf("hardware uuid %q, firmware says %q", faked.HardwareUUID, want)
	}
	if got := inventoryHW(t, test, "LANYARD_AGENT_TEST_SERIAL=FAKE"); got.SerialNumber != "FAKE" || got.SerialSource != "override:test" {
		t.Fatalf("test build ignores the override: %+v", got)
	}

	// 4. version says which build it is.
	for bin, want := range map[string]bool{release: false, test: true} {
		out, err := exec.Command(bin, "version").Output()
		if err != nil || strings.Contains(string(out), "test build") != want {
			t.Fatalf("%s version: %q %v", filepath.Base(bin), out, err)
		}
	}
}

// TestShippedBuildsHaveNoTestTag: what `make build`, `make build-agents`,
// `make packages` and the installer API ship (bin/lanyard-agent-* from make
// build) is built without the lanyardtest tag.
func TestShippedBuildsHaveNoTestTag(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-n", "build", "build-agents", "packages")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "./cmd/lanyard-agent") {
		t.Fatalf("make -n builds no agent:\n%s", out)
	}
	if strings.Contains(string(out), e2etest.TestTag) {
		t.Fatalf("a shipped build uses the %s tag:\n%s", e2etest.TestTag, out)
	}
	for _, f := range []string{"scripts/packages.sh", "Makefile"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(e2etest.TestTag)) {
			t.Errorf("%s mentions the %s tag", f, e2etest.TestTag)
		}
	}
}
