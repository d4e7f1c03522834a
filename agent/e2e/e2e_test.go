package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/internal/e2etest"
)

// The end-to-end test builds the server and a test build of the agent
// (-tags lanyardtest, the only build with test knobs), starts `lanyard serve
// --demo` (SQLite, fake Justworks with employees) and a real `lanyard-agent
// run --dry-run`, then walks issue 5's and issue 12's "Done when": enroll
// with a secret, the inventory arrives with the serial, the device links to
// its employee and is flagged for review as a dry-run agent, a lock ends
// simulated (never done), revocation cuts the stream. A server that does not
// answer fails the test.
//
// The container has no firmware serial, so the test agent takes one from
// LANYARD_AGENT_TEST_SERIAL; the release agent (releaseagent_test.go) gets a
// firmware serial from a fake DMI table in its own mount namespace.

const testSerial = "E2E-SERIAL-0001"

type env struct {
	t     *testing.T
	bin   string
	dir   string
	token string
	serve *e2etest.Serve
}

var tokenLine = regexp.MustCompile(`(?m)^\s+(lyt_\S+|\S{30,})\s*$`)

func setup(t *testing.T) *env { return setupWith(t) }

// setupWith is setup with more `lanyard serve` flags (--database-url).
func setupWith(t *testing.T, serveFlags ...string) *env {
	return serveWith(t, buildBinaries(t, true), serveFlags...)
}

// buildBinaries builds `lanyard` (and a test agent when withAgent) into a
// directory of the test and returns it, so subtests can share one build.
func buildBinaries(t *testing.T, withAgent bool) string {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "bin")
	e2etest.GoBuild(t, filepath.Join(bin, "lanyard"), "./cmd/lanyard")
	if withAgent {
		e2etest.BuildTestAgent(t, filepath.Join(bin, "lanyard-agent"))
	}
	return bin
}

// serveWith starts `lanyard serve --demo` from the binaries in bin and
// waits for its owner token and agent listeners.
func serveWith(t *testing.T, bin string, serveFlags ...string) *env {
	e := &env{t: t, dir: t.TempDir(), bin: bin}
	e.serve = e2etest.StartServe(t, filepath.Join(e.bin, "lanyard"), filepath.Join(e.dir, "server"), append([]string{"--demo"}, serveFlags...)...)
	e.serve.WaitFor(t, "the server's owner token", 90*time.Second, func() bool {
		out := e.serve.Output()
		i := strings.Index(out, "Owner token")
		if i < 0 {
			return false
		}
		if m := tokenLine.FindStringSubmatch(out[i:]); m != nil {
			e.token = m[1]
			return true
		}
		return false
	})
	// The agent API listens next to the admin API.
	e.serve.MustListen(t, "agent enrollment", e.serve.EnrollAddr, 300)
	e.serve.MustListen(t, "agents", e.serve.GRPCAddr, 300)
	return e
}

// api calls the admin API and decodes the JSON answer into out (may be nil).
func (e *env) api(method, path string, body, out any) int {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.serve.HTTPURL+path, r)
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		e.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
		return resp.StatusCode
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func (e *env) mustAPI(method, path string, body, out any) {
	e.t.Helper()
	if code := e.api(method, path, body, out); code >= 300 {
		e.t.Fatalf("%s %s: HTTP %d", method, path, code)
	}
}

type device struct {
	ID                 string         `json:"id"`
	SerialNumber       string         `json:"serial_number"`
	State              string         `json:"state"`
	AssignedEmployeeID string         `json:"assigned_employee_id"`
	Details            map[string]any `json:"details"`
}

type command struct {
	ID       string          `json:"id"`
	State    string          `json:"state"`
	Error    string          `json:"error"`
	Result   json.RawMessage `json:"result"`
	Evidence *struct {
		Verified bool `json:"verified"`
		Mode     struct {
			DryRun bool `json:"dry_run"`
		} `json:"mode"`
	} `json:"evidence"`
}

func terminal(state string) bool {
	switch state {
	case "done", "failed", "simulated", "expired", "canceled":
		return true
	}
	return false
}

// tracking is the agent channel's view of a device (GET /devices/{id}/tracking).
type tracking struct {
	NeedsReview  bool   `json:"needs_review"`
	ReviewReason string `json:"review_reason"`
	AgentMode    *struct {
		DryRun           bool `json:"dry_run"`
		SerialOverridden bool `json:"serial_overridden"`
	} `json:"agent_mode"`
	Inventory json.RawMessage `json:"inventory"`
	// LockedByCommandID is the lock the agent said it holds in its last Hello.
	LockedByCommandID string `json:"locked_by_command_id"`
}

// agentSetup creates an enrollment secret and a device assigned to an
// employee, writes the agent config and returns its paths.
func (e *env) agentSetup() (cfgPath, stateDir, deviceID, employeeID string) {
	return e.agentSetupFor(testSerial, "agent")
}

// agentSetupFor is agentSetup for a device with serial, the agent's files
// under e.dir/name.
func (e *env) agentSetupFor(serial, name string) (cfgPath, stateDir, deviceID, employeeID string) {
	employeeID = e.activeEmployees(1)[0]
	cfgPath, stateDir, deviceID = e.deviceWithAgent(serial, name, employeeID)
	return cfgPath, stateDir, deviceID, employeeID
}

// activeEmployees waits for the demo HR import and returns the ids of n
// active employees.
func (e *env) activeEmployees(n int) []string {
	var employees struct {
		Items []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"items"`
	}
	// The demo fleet hands laptops without a real agent to most of its people; an
	// offboarding would wait on such a laptop, so only people holding nothing are picked.
	var devices struct {
		Items []struct {
			AssignedEmployeeID string `json:"assigned_employee_id"`
		} `json:"items"`
	}
	var ids []string
	e.serve.WaitFor(e.t, "employees imported from the demo HR", 60*time.Second, func() bool {
		e.mustAPI("GET", "/api/v1/employees?status=active&limit=200", nil, &employees)
		e.mustAPI("GET", "/api/v1/devices?limit=200", nil, &devices)
		held := map[string]bool{}
		for _, d := range devices.Items {
			held[d.AssignedEmployeeID] = true
		}
		ids = ids[:0]
		for _, it := range employees.Items {
			if !held[it.ID] && len(ids) < n {
				ids = append(ids, it.ID)
			}
		}
		return len(ids) >= n
	})
	return ids
}

// deviceWithAgent creates a Linux laptop with serial (assigned to
// employeeID unless empty) and an enrollment secret, and writes the config
// of the agent that will enroll for it under e.dir/name.
func (e *env) deviceWithAgent(serial, name, employeeID string) (cfgPath, stateDir, deviceID string) {
	var dev device
	e.mustAPI("POST", "/api/v1/devices", map[string]any{"serial_number": serial, "vendor": "Lenovo",
		"model": "ThinkPad T14", "platform": "linux", "equipment_type": "laptop"}, &dev)
	deviceID = dev.ID
	if employeeID != "" {
		e.mustAPI("POST", "/api/v1/devices/"+deviceID+"/assign", map[string]string{"employee_id": employeeID}, &dev)
	}

	var secret struct {
		Plaintext     string `json:"plaintext"`
		CAFingerprint string `json:"ca_fingerprint_sha256"`
	}
	e.mustAPI("POST", "/api/v1/enrollment-secrets", map[string]any{"name": "e2e-" + name}, &secret)
	if secret.Plaintext == "" || secret.CAFingerprint == "" {
		e.t.Fatalf("enrollment secret response %+v", secret)
	}
	cfgPath = filepath.Join(e.dir, name, "agent.json")
	stateDir = filepath.Join(e.dir, name, "state")
	if err := config.Write(cfgPath, config.Config{
		ControlPlaneURL: e.serve.HTTPURL, GRPCAddress: e.serve.GRPCAddr, EnrollmentAddress: e.serve.EnrollAddr,
		CAFingerprintSHA256: secret.CAFingerprint, EnrollmentSecret: secret.Plaintext, StateDir: stateDir,
	}); err != nil {
		e.t.Fatal(err)
	}
	return cfgPath, stateDir, deviceID
}

func (e *env) startAgent(cfgPath string, extra ...string) *e2etest.Proc {
	args := append([]string{"run", "--config", cfgPath, "--dry-run", "--heartbeat-interval", "1s",
		"--inventory-interval", "2s", "--backoff-max", "2s", "--log-level", "debug"}, extra...)
	return e2etest.Start(e.t, filepath.Join(e.bin, "lanyard-agent"), []string{"LANYARD_AGENT_TEST_SERIAL=" + testSerial}, args...)
}

func (e *env) tracking(deviceID string) tracking {
	e.t.Helper()
	var tr tracking
	e.mustAPI("GET", "/api/v1/devices/"+deviceID+"/tracking", nil, &tr)
	return tr
}

func (e *env) agentStatus(cfgPath string) map[string]any {
	out, _ := exec.Command(filepath.Join(e.bin, "lanyard-agent"), "status", "--json", "--config", cfgPath).Output()
	var st map[string]any
	_ = json.Unmarshal(out, &st)
	return st
}

func statusField(st map[string]any, k string) any {
	s, _ := st["status"].(map[string]any)
	return s[k]
}

func TestAgentEndToEnd(t *testing.T) {
	e := setup(t)
	cfgPath, stateDir, deviceID, employeeID := e.agentSetup()
	agent := e.startAgent(cfgPath)

	// 1. Enrolled with the secret: identity stored 0600, secret removed from the config.
	e.serve.WaitFor(t, "the agent to enroll and connect", 60*time.Second, func() bool {
		return statusField(e.agentStatus(cfgPath), "connected") == true
	})
	if st, err := os.Stat(filepath.Join(stateDir, "identity.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity.pem: %v %v", st, err)
	}
	if cfg, _ := config.Load(cfgPath); cfg.EnrollmentSecret != "" {
		t.Fatal("enrollment secret still in the config after enrolling")
	}

	// 2+3. The inventory arrives with the serial and the device links to its employee (in use).
	var dev device
	e.serve.WaitFor(t, "the device to be in use with agent tracking", 30*time.Second, func() bool {
		e.mustAPI("GET", "/api/v1/devices/"+deviceID, nil, &dev)
		return dev.State == "in_use" && dev.Details["tracking"] != nil
	})
	if dev.AssignedEmployeeID != employeeID || dev.SerialNumber != testSerial {
		t.Fatalf("device %+v, want employee %s serial %s", dev, employeeID, testSerial)
	}
	tracking, _ := json.Marshal(dev.Details["tracking"])
	if !strings.Contains(string(tracking), testSerial) {
		t.Fatalf("tracking view lacks the reported serial: %s", tracking)
	}
	if id, _ := statusField(e.agentStatus(cfgPath), "device_id").(string); id != deviceID {
		t.Fatalf("agent reports device %q, want %q", id, deviceID)
	}

	// 4. The dry-run agent is announced: tracking shows the mode and asks for review.
	e.serve.WaitFor(t, "the dry-run mode on the device's tracking", 30*time.Second, func() bool {
		tr := e.tracking(deviceID)
		return tr.AgentMode != nil && tr.AgentMode.DryRun
	})
	if tr := e.tracking(deviceID); !tr.AgentMode.SerialOverridden || !tr.NeedsReview || tr.ReviewReason == "" {
		t.Fatalf("tracking of a dry-run, serial-overridden agent: %+v", tr)
	}
	if statusField(e.agentStatus(cfgPath), "dry_run") != true {
		t.Fatal("lanyard-agent status does not show the dry run")
	}

	// 5. A lock ends simulated within seconds, never done: the agent recorded
	// the plan and ran nothing.
	var cmd command
	e.mustAPI("POST", "/api/v1/devices/"+deviceID+"/actions", map[string]any{"type": "lock",
		"params": map[string]string{"message": "Locked by the e2e test"}, "idempotency_key": "e2e-lock-1"}, &cmd)
	e.serve.WaitFor(t, "the lock to end", 20*time.Second, func() bool {
		e.mustAPI("GET", "/api/v1/device-actions/"+cmd.ID, nil, &cmd)
		return terminal(cmd.State)
	})
	if cmd.State != "simulated" || cmd.Error == "" {
		t.Fatalf("lock through a dry-run agent: %+v", cmd)
	}
	if cmd.Evidence == nil || !cmd.Evidence.Mode.DryRun {
		t.Fatalf("lock evidence does not say dry run: %+v", cmd.Evidence)
	}
	if !strings.Contains(string(cmd.Result), "STEP_STATUS_DRY_RUN") || !strings.Contains(string(cmd.Result), "nologin") {
		t.Fatalf("lock result is not the dry-run plan: %s", cmd.Result)
	}
	if !strings.Contains(agent.Output(), "dry-run executor") {
		t.Fatal("agent did not run with the dry-run executor")
	}

	// 5b. A wipe through a dry-run agent is simulated too, whatever its plan
	// found (on a machine without disk encryption the plan refuses before
	// anything; the server still records no dry-run result as done or failed).
	var wipe command
	e.mustAPI("POST", "/api/v1/devices/"+deviceID+"/actions", map[string]any{"type": "wipe", "confirm": testSerial,
		"idempotency_key": "e2e-wipe-1"}, &wipe)
	if wipe.State == "awaiting_approval" {
		t.Log("wipe waits for a second admin in this org; confirmation path not exercised")
	} else {
		e.serve.WaitFor(t, "the wipe to end", 20*time.Second, func() bool {
			e.mustAPI("GET", "/api/v1/device-actions/"+wipe.ID, nil, &wipe)
			return terminal(wipe.State)
		})
		if wipe.State != "simulated" {
			t.Fatalf("wipe command %+v %s", wipe, wipe.Result)
		}
	}

	// 6. Revocation cuts the open stream; the agent cannot come back.
	e.mustAPI("POST", "/api/v1/devices/"+deviceID+"/revoke-agents", map[string]any{"reason": "e2e"}, nil)
	e.serve.WaitFor(t, "the stream to be cut", 30*time.Second, func() bool {
		st := e.agentStatus(cfgPath)
		errText, _ := statusField(st, "last_error").(string)
		return statusField(st, "connected") == false && strings.Contains(errText, "Unauthenticated")
	})
	time.Sleep(3 * time.Second) // longer than the agent's backoff cap
	if statusField(e.agentStatus(cfgPath), "connected") == true {
		t.Fatal("the revoked agent reconnected")
	}

	// 7. `lanyard-agent enroll --url --secret` on a second machine writes its
	// config without the secret and an owner-only identity.
	var secret struct {
		Plaintext     string `json:"plaintext"`
		CAFingerprint string `json:"ca_fingerprint_sha256"`
	}
	e.mustAPI("POST", "/api/v1/enrollment-secrets", map[string]any{"name": "e2e-cli"}, &secret)
	cfg2 := filepath.Join(e.dir, "agent2", "agent.json")
	state2 := filepath.Join(e.dir, "agent2", "state")
	enroll := exec.Command(filepath.Join(e.bin, "lanyard-agent"), "enroll", "--url", e.serve.HTTPURL, "--secret", secret.Plaintext,
		"--grpc-address", e.serve.GRPCAddr, "--enroll-address", e.serve.EnrollAddr,
		"--ca-fingerprint", secret.CAFingerprint, "--config", cfg2, "--state-dir", state2)
	enroll.Env = append(os.Environ(), "LANYARD_AGENT_TEST_SERIAL=E2E-SERIAL-0002")
	if out, err := enroll.CombinedOutput(); err != nil || !strings.Contains(string(out), "enrolled: agent") {
		t.Fatalf("lanyard-agent enroll: %v\n%s", err, out)
	}
	c2, err := config.Load(cfg2)
	if err != nil || c2.EnrollmentSecret != "" || c2.GRPCAddress != e.serve.GRPCAddr || c2.StateDir != state2 {
		t.Fatalf("config written by enroll: %+v %v", c2, err)
	}
	if st := e.agentStatus(cfg2); st["enrolled"] != true {
		t.Fatalf("status after enroll: %v", st)
	}
	// The same secret cannot be replayed with a wrong pin.
	bad := exec.Command(filepath.Join(e.bin, "lanyard-agent"), "enroll", "--url", e.serve.HTTPURL, "--secret", secret.Plaintext,
		"--grpc-address", e.serve.GRPCAddr, "--enroll-address", e.serve.EnrollAddr,
		"--ca-fingerprint", strings.Repeat("0", 64), "--config", filepath.Join(e.dir, "agent3", "agent.json"),
		"--state-dir", filepath.Join(e.dir, "agent3", "state"))
	bad.Env = append(os.Environ(), "LANYARD_AGENT_TEST_SERIAL=E2E-SERIAL-0003")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "ca_fingerprint_sha256") {
		t.Fatalf("enroll with a wrong pin: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "agent3", "state", "identity.pem")); err == nil {
		t.Fatal("identity stored despite a pin mismatch")
	}
}
