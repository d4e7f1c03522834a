package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/internal/e2etest"
)

// workflowView is GET /api/v1/workflows/{id}.
type workflowView struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Steps []struct {
		ID        string          `json:"id"`
		Kind      string          `json:"kind"`
		State     string          `json:"state"`
		LastError string          `json:"last_error"`
		Output    json.RawMessage `json:"output"`
	} `json:"steps"`
	Tasks []struct {
		ID        string `json:"id"`
		Kind      string `json:"kind"`
		State     string `json:"state"`
		Title     string `json:"title"`
		Detail    string `json:"detail"`
		SubjectID string `json:"subject_id"`
	} `json:"tasks"`
}

// lockDevice is one device's result in the lock step's output.
type lockDevice struct {
	DeviceID   string `json:"device_id"`
	CommandID  string `json:"command_id"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	Outcome    string `json:"outcome"`
	ManualTask string `json:"manual_task"`
}

// lockStep is the workflow's lock_devices step state and its device results.
func (w workflowView) lockStep() (state string, devices []lockDevice) {
	for _, s := range w.Steps {
		if s.Kind == "lock_devices" {
			var out struct {
				Devices []lockDevice `json:"devices"`
			}
			_ = json.Unmarshal(s.Output, &out)
			return s.State, out.Devices
		}
	}
	return "", nil
}

// offboard starts an offboarding now, as `lanyardctl offboard EMPLOYEE --yes`
// does, and returns the workflow id.
func (e *env) offboard(employeeID string) string {
	e.t.Helper()
	var dr struct {
		Existing *struct {
			ID string `json:"id"`
		} `json:"existing"`
	}
	e.mustAPI("POST", "/api/v1/employees/"+employeeID+"/offboard", map[string]any{"confirm": employeeID}, &dr)
	if dr.Existing == nil || dr.Existing.ID == "" {
		e.t.Fatalf("offboarding of %s started no workflow", employeeID)
	}
	return dr.Existing.ID
}

// waitLockStep waits until the workflow's lock step is in one of states.
func (e *env) waitLockStep(wfID string, d time.Duration, states ...string) workflowView {
	e.t.Helper()
	var w workflowView
	e.serve.WaitFor(e.t, "the lock step of workflow "+wfID+" to be "+strings.Join(states, " or "), d, func() bool {
		e.mustAPI("GET", "/api/v1/workflows/"+wfID, nil, &w)
		st, _ := w.lockStep()
		for _, s := range states {
			if st == s {
				return true
			}
		}
		return false
	})
	return w
}

// requireBlockedWithTask: the lock step is blocked, the device's outcome is
// blocked with the command state, and an open manual_lock task for the
// device names why (detailWants).
func requireBlockedWithTask(t *testing.T, w workflowView, deviceID, cmdState string, detailWants ...string) lockDevice {
	t.Helper()
	st, devs := w.lockStep()
	if st != "blocked" || len(devs) != 1 || devs[0].DeviceID != deviceID || devs[0].Outcome != "blocked" ||
		devs[0].State != cmdState || devs[0].ManualTask == "" {
		t.Fatalf("lock step %s, devices %+v; want blocked with %s", st, devs, cmdState)
	}
	for _, tk := range w.Tasks {
		if tk.ID != devs[0].ManualTask {
			continue
		}
		if tk.Kind != "manual_lock" || tk.State != "open" || tk.SubjectID != deviceID {
			t.Fatalf("manual task %+v", tk)
		}
		for _, want := range detailWants {
			if !strings.Contains(tk.Detail, want) {
				t.Fatalf("manual task detail %q does not say %q", tk.Detail, want)
			}
		}
		t.Logf("manual task: %s — %s", tk.Title, tk.Detail)
		return devs[0]
	}
	t.Fatalf("no task %s in the workflow's tasks %+v", devs[0].ManualTask, w.Tasks)
	return lockDevice{}
}

// TestOffboardingWithRealAgent: offboardings run through the API against
// real agents on one `lanyard serve --demo`, one employee and laptop per
// scenario. An honest agent (a test build, not in dry-run, in a test
// machine) makes the lock step succeed with a proven lock; a dry-run agent
// leaves the step blocked with an open manual_lock task saying the lock was
// simulated; an agent whose lock fails a check after it received it (a
// session it cannot end) leaves it blocked with the failed check as the
// reason; an agent killed while it runs the lock (after RECEIVED) and
// restarted reports "agent restarted before the command finished": the
// step is blocked with a task and the device is never recorded locked.
func TestOffboardingWithRealAgent(t *testing.T) {
	needMachineTools(t)
	guardHost(t)
	e := setup(t)
	api := e.client()
	agentBin := filepath.Join(e.bin, "lanyard-agent")
	emps := e.activeEmployees(4)

	t.Run("honest agent", func(t *testing.T) {
		e.t = t
		start := time.Now()
		const serial = "E2E-OFF-HONEST"
		m := newMachine(t, serial, "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", false)
		cfgPath, _, deviceID := e.deviceWithAgent(serial, "off-honest", emps[0])
		m.startAgent(agentBin, agentRunArgs(cfgPath)...)
		e.waitLinked(cfgPath, deviceID, serial)
		m.expectPAM("before the offboarding", pamOpen)

		wf := e.offboard(emps[0])
		w := e.waitLockStep(wf, 60*time.Second, "succeeded", "blocked", "failed")
		st, devs := w.lockStep()
		if st != "succeeded" || len(devs) != 1 || devs[0].DeviceID != deviceID || devs[0].Outcome != "done" || devs[0].State != "done" {
			t.Fatalf("lock step %s, devices %+v", st, devs)
		}
		var lock action
		api.must(t, "GET", "/api/v1/device-actions/"+devs[0].CommandID, nil, &lock)
		requireProven(t, "the offboarding's lock", lock, "account-locked:alice", "pam-account-deny:/etc/pam.d/common-account", "sessions-ended:alice")
		m.expectPAM("after the offboarding's lock", pamLocked)
		t.Logf("honest agent: lock step succeeded; scenario took %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("dry-run agent", func(t *testing.T) {
		e.t = t
		start := time.Now()
		const serial = "E2E-OFF-DRYRUN"
		cfgPath, _, deviceID := e.deviceWithAgent(serial, "off-dryrun", emps[1])
		// A dry-run test agent runs nothing: it needs no test machine.
		e2etest.Start(t, agentBin, []string{"LANYARD_AGENT_TEST_SERIAL=" + serial}, append(agentRunArgs(cfgPath), "--dry-run")...)
		e.serve.WaitFor(t, "the dry-run agent to connect and report", 60*time.Second, func() bool {
			tr := e.tracking(deviceID)
			return tr.AgentMode != nil && tr.AgentMode.DryRun && strings.Contains(string(tr.Inventory), serial)
		})

		wf := e.offboard(emps[1])
		w := e.waitLockStep(wf, 60*time.Second, "succeeded", "blocked", "failed")
		d := requireBlockedWithTask(t, w, deviceID, "simulated", "simulated", "dry-run")
		var lock action
		api.must(t, "GET", "/api/v1/device-actions/"+d.CommandID, nil, &lock)
		if lock.State != "simulated" || lock.Evidence == nil || !lock.Evidence.Mode.DryRun {
			t.Fatalf("the dry-run agent's lock: %s %+v", lock.State, lock.Evidence)
		}
		t.Logf("dry-run agent: lock step blocked; scenario took %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("agent fails a check after receipt", func(t *testing.T) {
		e.t = t
		start := time.Now()
		const serial = "E2E-OFF-FAILED"
		// alice's process is this machine's init: no lock can end her
		// session, and the agent says so after receiving the lock.
		m := newMachine(t, serial, "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f", true)
		cfgPath, _, deviceID := e.deviceWithAgent(serial, "off-failed", emps[3])
		m.startAgent(agentBin, agentRunArgs(cfgPath)...)
		e.waitLinked(cfgPath, deviceID, serial)

		wf := e.offboard(emps[3])
		w := e.waitLockStep(wf, 60*time.Second, "succeeded", "blocked", "failed")
		d := requireBlockedWithTask(t, w, deviceID, "failed", "sessions-ended:alice")
		var lock action
		api.must(t, "GET", "/api/v1/device-actions/"+d.CommandID, nil, &lock)
		if lock.State != "failed" || lock.ReceivedAt == "" || lock.Evidence == nil || !strings.EqualFold(lock.Evidence.SerialNumber, serial) {
			t.Fatalf("the lock that failed on the device: %s %q %+v", lock.State, lock.Error, lock.Evidence)
		}
		failedCheck := false
		for _, c := range lock.Evidence.Checks {
			if c.Name == "sessions-ended:alice" && !c.OK && strings.Contains(c.Observed, "pid 1") {
				failedCheck = true
			}
		}
		if !failedCheck {
			t.Fatalf("the evidence does not show alice's session left: %+v", lock.Evidence.Checks)
		}
		if tr := e.tracking(deviceID); tr.LockedByCommandID != "" {
			t.Fatalf("the device is recorded locked by %s", tr.LockedByCommandID)
		}
		if st := e.agentStatus(cfgPath); statusField(st, "locked") == true {
			t.Fatalf("the agent holds a lock that failed: %v", st["status"])
		}
		t.Logf("failed after receipt: lock step blocked; scenario took %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("agent killed mid-lock and restarted", func(t *testing.T) {
		e.t = t
		start := time.Now()
		const serial = "E2E-OFF-KILLED"
		// alice's process is this machine's init: the lock cannot end her
		// session, so it stays running (up to 10 s) while the agent dies.
		m := newMachine(t, serial, "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", true)
		cfgPath, _, deviceID := e.deviceWithAgent(serial, "off-killed", emps[2])
		agent := m.startAgent(agentBin, agentRunArgs(cfgPath)...)
		e.waitLinked(cfgPath, deviceID, serial)

		wf := e.offboard(emps[2])
		var lockID, seenState string
		waitUntil(t, "the agent to report the lock received", 60*time.Second, 20*time.Millisecond, func() bool {
			var list struct {
				Items []action `json:"items"`
			}
			api.must(t, "GET", "/api/v1/devices/"+deviceID+"/actions", nil, &list)
			for _, a := range list.Items {
				if a.Type == "lock" && (a.State == "received" || a.State == "running") {
					lockID, seenState = a.ID, a.State
					return true
				}
				if a.Type == "lock" && terminal(a.State) {
					t.Fatalf("the lock ended %s %q before the agent could be killed", a.State, a.Error)
				}
			}
			return false
		})
		agent.kill()
		t.Logf("agent killed with the lock %s", seenState)
		var lock action
		api.must(t, "GET", "/api/v1/device-actions/"+lockID, nil, &lock)
		if terminal(lock.State) {
			t.Fatalf("the lock is %s although the agent died running it", lock.State)
		}
		if st, _ := e.waitLockStep(wf, 5*time.Second, "waiting", "running", "pending").lockStep(); st == "succeeded" {
			t.Fatal("the lock step succeeded without an answer")
		}

		m.startAgent(agentBin, agentRunArgs(cfgPath)...)
		lock = api.waitAction(t, lockID, 60*time.Second)
		if lock.State != "failed" || !strings.Contains(lock.Error, "agent restarted before the command finished") {
			t.Fatalf("the interrupted lock after the restart: %s %q", lock.State, lock.Error)
		}
		w := e.waitLockStep(wf, 60*time.Second, "succeeded", "blocked", "failed")
		requireBlockedWithTask(t, w, deviceID, "failed", "agent restarted before the command finished")
		// Never recorded locked: the restarted agent holds no lock, and no
		// lock of this device is done.
		e.serve.WaitFor(t, "the restarted agent's Hello", 30*time.Second, func() bool {
			return statusField(e.agentStatus(cfgPath), "connected") == true
		})
		if tr := e.tracking(deviceID); tr.LockedByCommandID != "" {
			t.Fatalf("the device is recorded locked by %s", tr.LockedByCommandID)
		}
		if st := e.agentStatus(cfgPath); statusField(st, "locked") == true {
			t.Fatalf("the agent says it holds a lock: %v", st["status"])
		}
		var list struct {
			Items []action `json:"items"`
		}
		api.must(t, "GET", "/api/v1/devices/"+deviceID+"/actions", nil, &list)
		for _, a := range list.Items {
			if a.State == "done" && (a.Type == "lock" || a.Type == "wipe") {
				t.Fatalf("device has a done %s: %+v", a.Type, a)
			}
		}
		t.Logf("killed agent: lock step blocked; scenario took %s", time.Since(start).Round(time.Millisecond))
	})
}
