package e2e

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/internal/e2etest"
)

// The release agent's firmware identity, from a fake DMI table.
const (
	releaseSerial = "E2E-REL-0001"
	releaseUUID   = "5d1e6c0a-2b7f-4c1d-9a3e-0f6b8c2d4e71"
)

// namespaceScript runs in a private mount namespace: it gives the agent a
// fake DMI table (this container has none) and, because a release agent
// executes what it is sent for real, its own /etc copy, /run and /home, so
// nothing it could do reaches this machine's accounts. No command is sent
// to it: the assertion is what it announces.
const namespaceScript = `set -e
tmp=$1; shift
mount -t tmpfs lanyard-e2e /sys/class
mkdir -p /sys/class/dmi/id
printf '%s\n' "$LANYARD_E2E_SERIAL" > /sys/class/dmi/id/product_serial
printf '%s\n' "$LANYARD_E2E_UUID" > /sys/class/dmi/id/product_uuid
printf 'LENOVO\n' > /sys/class/dmi/id/sys_vendor
printf '20XW0026US\n' > /sys/class/dmi/id/product_name
cp -a /etc "$tmp/etc"
mount --bind "$tmp/etc" /etc
mount -t tmpfs lanyard-e2e /run
mount -t tmpfs lanyard-e2e /home
exec "$@"
`

// treeSum hashes the names, modes and contents of the files under root.
func treeSum(t *testing.T, roots ...string) string {
	t.Helper()
	h := sha256.New()
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			fmt.Fprintf(h, "%s %v\n", p, info.Mode())
			if info.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				h.Write(b)
			}
			return nil
		})
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestReleaseAgentIgnoresKnobs: the same scenario with a release build of the
// agent (no lanyardtest tag) started with LANYARD_AGENT_DRY_RUN=1 and
// LANYARD_AGENT_TEST_SERIAL set: the knobs are ignored. The device shows
// dry_run false and serial_overridden false, the serial it reports is the
// firmware's, and lanyard-agent status shows no knobs.
func TestReleaseAgentIgnoresKnobs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace (fake DMI, private /etc, /run, /home)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	e := setup(t)
	release := filepath.Join(e.bin, "lanyard-agent-release")
	e2etest.BuildReleaseAgent(t, release)
	hostBefore := treeSum(t, "/etc/shadow", "/etc/passwd", "/etc/pam.d", "/etc/security", "/home")

	cfgPath, _, deviceID, _ := e.agentSetupFor(releaseSerial, "release-agent")
	tmp := t.TempDir()
	agent := e2etest.Start(t, unshare, []string{"LANYARD_AGENT_DRY_RUN=1", "LANYARD_AGENT_TEST_SERIAL=FAKE-SERIAL",
		"LANYARD_E2E_SERIAL=" + releaseSerial, "LANYARD_E2E_UUID=" + releaseUUID},
		"--mount", "--propagation", "private", "/bin/sh", "-c", namespaceScript, "sh", tmp,
		release, "run", "--config", cfgPath, "--heartbeat-interval", "1s", "--inventory-interval", "2s",
		"--backoff-max", "2s", "--log-level", "debug")
	e.serve.WaitFor(t, "the release agent to enroll and connect", 60*time.Second, func() bool {
		return statusField(e.agentStatus(cfgPath), "connected") == true
	})
	st := e.agentStatus(cfgPath)
	if statusField(st, "dry_run") != false || statusField(st, "serial_overridden") != false ||
		statusField(st, "serial_number") != releaseSerial || statusField(st, "hardware_uuid") != releaseUUID {
		t.Fatalf("release agent status %v", st["status"])
	}
	if strings.Contains(agent.Output(), "TEST BUILD") || strings.Contains(agent.Output(), "FAKE-SERIAL") {
		t.Fatalf("the release agent honoured a test knob:\n%s", agent.Output())
	}

	// The device it reports for is the firmware's serial, announced as such.
	var tr tracking
	e.serve.WaitFor(t, "the release agent's inventory on its device", 30*time.Second, func() bool {
		tr = e.tracking(deviceID)
		return strings.Contains(string(tr.Inventory), releaseSerial)
	})
	if strings.Contains(string(tr.Inventory), "FAKE-SERIAL") || strings.Contains(string(tr.Inventory), "override:test") ||
		!strings.Contains(string(tr.Inventory), `"firmware"`) {
		t.Fatalf("tracked inventory %s", tr.Inventory)
	}
	if tr.AgentMode == nil || tr.AgentMode.DryRun || tr.AgentMode.SerialOverridden {
		t.Fatalf("tracking agent_mode of a release agent with LANYARD_AGENT_DRY_RUN=1: %+v", tr.AgentMode)
	}
	if strings.Contains(tr.ReviewReason, "dry") {
		t.Fatalf("release agent flagged as dry run: %q", tr.ReviewReason)
	}
	agent.Stop()
	if after := treeSum(t, "/etc/shadow", "/etc/passwd", "/etc/pam.d", "/etc/security", "/home"); after != hostBefore {
		t.Fatal("this machine's /etc or /home changed during the test")
	}
}
