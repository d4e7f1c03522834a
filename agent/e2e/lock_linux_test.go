package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/pamlock"
)

// agentRunArgs are the flags of a real (not dry-run) agent in these tests.
func agentRunArgs(cfgPath string) []string {
	return []string{"run", "--config", cfgPath, "--heartbeat-interval", "1s", "--inventory-interval", "2s",
		"--backoff-max", "2s", "--log-level", "debug"}
}

// waitLinked waits until the agent for cfgPath is connected and its
// inventory made deviceID the device it tracks.
func (e *env) waitLinked(cfgPath, deviceID, serial string) {
	e.t.Helper()
	e.serve.WaitFor(e.t, "the agent to enroll and connect", 60*time.Second, func() bool {
		return statusField(e.agentStatus(cfgPath), "connected") == true
	})
	e.serve.WaitFor(e.t, "the agent's inventory on its device", 30*time.Second, func() bool {
		return strings.Contains(string(e.tracking(deviceID).Inventory), serial)
	})
	if tr := e.tracking(deviceID); tr.AgentMode == nil || tr.AgentMode.DryRun || tr.AgentMode.SerialOverridden {
		e.t.Fatalf("the agent is not a real one: agent_mode %+v", tr.AgentMode)
	}
}

// TestLockEndToEndInNamespace: a real `lanyard serve` and the real
// lanyard-agent (a test build, not in dry-run: it locks for real) in a test
// machine (a private mount and pid namespace, see machine). A lock sent
// through the admin API ends done with verified evidence (accounts locked,
// PAM account rule, sessions ended), and pamtester in the machine then
// refuses alice (local) and carol (directory) at acct_mgmt while root
// passes; an unlock ends done and both pass again. A second lock survives
// an agent stop, a simulated reboot (fresh /run, /etc/nologin removed) and
// a local admin unlocking alice: the restarted agent re-asserts it before
// it connects, its Hello shows the held lock on the device, and the unlock
// after that still restores everything. This machine's accounts are
// checked unchanged afterwards.
func TestLockEndToEndInNamespace(t *testing.T) {
	needMachineTools(t)
	guardHost(t)
	start := time.Now()
	e := setup(t)
	api := e.client()
	const serial = "E2E-LOCK-0001"
	m := newMachine(t, serial, "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", false)
	cfgPath, stateDir, deviceID := e.deviceWithAgent(serial, "lock-agent", "")
	agentBin := filepath.Join(e.bin, "lanyard-agent")
	agent := m.startAgent(agentBin, agentRunArgs(cfgPath)...)
	e.waitLinked(cfgPath, deviceID, serial)
	t.Logf("server, machine and agent ready after %s", time.Since(start).Round(time.Millisecond))

	m.expectPAM("before the lock", pamOpen)
	pamBefore := m.file("/etc/pam.d/common-account")
	shadowBefore := m.file("/etc/shadow")

	// Sessions: a process of alice, and one of carol known to logind.
	aliceUID := 0
	for _, l := range strings.Split(m.file("/etc/passwd"), "\n") {
		if f := strings.Split(l, ":"); len(f) > 3 && f[0] == "alice" {
			aliceUID = atoi(t, f[2])
		}
	}
	sessions := map[string]<-chan error{"alice": m.startAs(aliceUID), "carol": m.startAs(70001)}
	m.run("", "/bin/sh", "-c", "printf 'NAME=carol\\nSTATE=active\\n' > /run/systemd/users/70001")

	lockAt := time.Now()
	lock := api.sendAction(t, deviceID, map[string]any{"type": "lock", "params": map[string]string{"message": "Locked by the e2e test"}})
	lock = api.waitAction(t, lock.ID, 60*time.Second)
	requireProven(t, "lock", lock, "lock-record", "account-locked:alice", "pam-account-deny:/etc/pam.d/common-account",
		"sessions-ended:alice", "sessions-ended:carol")
	if lock.ReceivedAt == "" || lock.StartedAt == "" || lock.CompletedAt == "" {
		t.Fatalf("lock timestamps: %+v", lock)
	}
	t.Logf("lock done with %d checks in %s", len(lock.Evidence.Checks), time.Since(lockAt).Round(time.Millisecond))
	for who, done := range sessions {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s's process exited cleanly, want killed", who)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s's process still runs after the lock", who)
		}
	}
	m.expectPAM("after the lock", pamLocked)
	if st := e.agentStatus(cfgPath); statusField(st, "locked") != true || statusField(st, "locked_by_command_id") != lock.ID {
		t.Fatalf("agent status after the lock: %v", st["status"])
	}

	unlock := api.waitAction(t, api.sendAction(t, deviceID, map[string]any{"type": "unlock"}).ID, 60*time.Second)
	requireProven(t, "unlock", unlock, "account-restored:alice", "pam-account-deny-removed:/etc/pam.d/common-account",
		"file-removed:/etc/nologin", "file-removed:/run/nologin")
	m.expectPAM("after the unlock", pamOpen)
	if got := m.file("/etc/pam.d/common-account"); got != pamBefore {
		t.Fatalf("common-account after the unlock:\n%s\nwas:\n%s", got, pamBefore)
	}
	if got := m.file("/etc/shadow"); got != shadowBefore {
		t.Fatal("/etc/shadow after the unlock differs from before the lock")
	}

	// A held lock across a restart and a reboot.
	lock2 := api.waitAction(t, api.sendAction(t, deviceID, map[string]any{"type": "lock"}).ID, 60*time.Second)
	requireProven(t, "second lock", lock2, "account-locked:alice", "pam-account-deny:/etc/pam.d/common-account")
	agent.stop()
	m.reboot()
	if _, err := m.try("", "/usr/bin/test", "-e", "/etc/nologin"); err == nil {
		t.Fatal("/etc/nologin survived the simulated reboot")
	}
	// What a local admin might do while the agent is down: unlock alice.
	m.run("", "/usr/sbin/usermod", "--unlock", "--expiredate", "", "alice")
	m.expectPAM("after the reboot, agent stopped (the PAM rule alone holds)", pamLocked)
	restartAt := time.Now()
	agent = m.startAgent(agentBin, agentRunArgs(cfgPath)...)
	e.serve.WaitFor(t, "the restarted agent's Hello to show the held lock", 60*time.Second, func() bool {
		return e.tracking(deviceID).LockedByCommandID == lock2.ID
	})
	t.Logf("held lock shown on the device %s after the restart", time.Since(restartAt).Round(time.Millisecond))
	st := e.agentStatus(cfgPath)
	if statusField(st, "locked_by_command_id") != lock2.ID || statusField(st, "lock_reassert_state") != "done" {
		t.Fatalf("agent status after the restart: %v", st["status"])
	}
	if n := strings.Count(m.file("/etc/pam.d/common-account"), pamlock.Begin); n != 1 {
		t.Fatalf("common-account holds the lock rule %d times after the re-assert:\n%s", n, m.file("/etc/pam.d/common-account"))
	}
	for _, l := range strings.Split(m.file("/etc/shadow"), "\n") {
		if f := strings.Split(l, ":"); len(f) > 7 && f[0] == "alice" && (!strings.HasPrefix(f[1], "!") || f[7] != "1") {
			t.Fatalf("the re-assert did not lock and expire alice again: password locked %v, expiry %q",
				strings.HasPrefix(f[1], "!"), f[7])
		}
	}
	if _, err := m.try("", "/usr/bin/test", "-e", "/etc/nologin"); err != nil {
		t.Fatal("the re-assert did not write /etc/nologin again")
	}
	m.expectPAM("after the re-assert", pamLocked)
	if _, err := os.Stat(filepath.Join(stateDir, "held-lock.json")); err != nil {
		t.Fatalf("held-lock.json: %v", err)
	}

	unlock2 := api.waitAction(t, api.sendAction(t, deviceID, map[string]any{"type": "unlock"}).ID, 60*time.Second)
	requireProven(t, "unlock after the reboot", unlock2, "account-restored:alice", "pam-account-deny-removed:/etc/pam.d/common-account")
	m.expectPAM("after the second unlock", pamOpen)
	if got := m.file("/etc/pam.d/common-account"); got != pamBefore {
		t.Fatalf("common-account after the second unlock:\n%s\nwas:\n%s", got, pamBefore)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "held-lock.json")); !os.IsNotExist(err) {
		t.Fatalf("held-lock.json after the unlock: %v", err)
	}
	agent.stop()
	t.Logf("lock scenario took %s", time.Since(start).Round(time.Millisecond))
}
