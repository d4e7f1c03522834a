package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/internal/e2etest"
)

const (
	serial     = "PKG-E2E-SERIAL-01"
	agentBin   = "/usr/bin/lanyard-agent"
	configPath = "/etc/lanyard/agent.json"
	stateDir   = "/var/lib/lanyard"
	unitPath   = "/usr/lib/systemd/system/lanyard-agent.service"
	// wantsLink is what an offline `systemctl enable` creates; removal must drop it.
	wantsLink = "/etc/systemd/system/multi-user.target.wants/lanyard-agent.service"
)

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s)
}

type harness struct {
	t       *testing.T
	dir     string
	bin     string
	dataDir string
	token   string
	serve   *e2etest.Serve
}

func (h *harness) lanyard(args ...string) string {
	h.t.Helper()
	return run(h.t, filepath.Join(h.bin, "lanyard"), append(args, "--data-dir", h.dataDir, "--log-level", "warn")...)
}

// buildDeb runs `lanyard installers build` like an admin would.
func (h *harness) buildDeb(version string) (path, secretID string) {
	h.t.Helper()
	out := h.lanyard("installers", "build", "--org", "Package Test Co", "--platform", "linux-deb", "--arch", runtime.GOARCH,
		"--agent-bin", h.bin, "--version", version, "--out", filepath.Join(h.dir, "out"),
		"--control-plane-url", h.serve.HTTPURL, "--agent-address", h.serve.GRPCAddr, "--enrollment-address", h.serve.EnrollAddr)
	m := regexp.MustCompile(`(?m)^(\S+\.deb)$`).FindStringSubmatch(out)
	s := regexp.MustCompile(`secret\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || s == nil {
		h.t.Fatalf("unexpected build output:\n%s", out)
	}
	return m[1], s[1]
}

// download fetches a package from GET /api/v1/installers/{platform} into dir.
func (h *harness) download(platform, arch string) (path, secretID string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.serve.HTTPURL+"/api/v1/installers/"+platform+"?arch="+arch, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		h.t.Fatalf("GET /api/v1/installers/%s: %d %s", platform, resp.StatusCode, b)
	}
	if sum := sha256.Sum256(b); fmt.Sprintf("%x", sum) != resp.Header.Get("X-Checksum-Sha256") {
		h.t.Fatal("downloaded package does not match its X-Checksum-Sha256")
	}
	m := regexp.MustCompile(`filename="([^"]+)"`).FindStringSubmatch(resp.Header.Get("Content-Disposition"))
	if m == nil {
		h.t.Fatalf("Content-Disposition %q", resp.Header.Get("Content-Disposition"))
	}
	path = filepath.Join(h.dir, "download", m[1])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return path, resp.Header.Get("X-Lanyard-Enrollment-Secret-Id")
}

func (h *harness) api(path string, out any) int {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.serve.HTTPURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

func agentStatus() map[string]any {
	out, _ := exec.Command(agentBin, "status", "--json").Output()
	var st map[string]any
	_ = json.Unmarshal(out, &st)
	s, _ := st["status"].(map[string]any)
	return s
}

func (h *harness) startAgent() *e2etest.Proc {
	// What the systemd unit runs (ExecStart=/usr/bin/lanyard-agent run), with
	// short intervals and the dry-run executor of the test build.
	return e2etest.Start(h.t, agentBin, []string{"LANYARD_AGENT_TEST_SERIAL=" + serial},
		"run", "--dry-run", "--heartbeat-interval", "1s", "--inventory-interval", "2s", "--backoff-max", "2s")
}

func setup(t *testing.T) *harness {
	mayInstall(t, "a .deb", "dpkg", "dpkg not available")
	h := &harness{t: t, dir: t.TempDir()}
	h.bin = filepath.Join(h.dir, "bin")
	h.dataDir = filepath.Join(h.dir, "data")
	// The server reports version 1.0.1, so the packages it builds for the API are an
	// upgrade over the 1.0.0 one the CLI builds.
	e2etest.GoBuild(t, filepath.Join(h.bin, "lanyard"), "./cmd/lanyard",
		"-ldflags", "-X github.com/lanyardhq/lanyard/controlplane/server.Version=1.0.1")
	out := h.lanyard("admin", "create-org", "Package Test Co", "--plan", "pro", "--owner-email", "owner@package-test.example")
	m := regexp.MustCompile(`owner token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create-org output:\n%s", out)
	}
	h.token = m[1]
	h.serve = e2etest.StartServe(t, filepath.Join(h.bin, "lanyard"), h.dataDir)
	h.serve.Poll = 250 * time.Millisecond
	// A server this test started that does not answer is a failure, not a skip.
	h.serve.MustListen(t, "agent enrollment", h.serve.EnrollAddr, 300)
	// The agent sits beside lanyard, where the server wiring looks for prebuilt agents.
	// It is a test build (-tags lanyardtest): the test runs it with --dry-run and a
	// serial override, which release builds do not have.
	e2etest.BuildTestAgent(t, filepath.Join(h.bin, "lanyard-agent-linux-"+runtime.GOARCH),
		"-ldflags", "-X github.com/lanyardhq/lanyard/agent/cli.Version=1.0.0")
	return h
}

func TestDebInstallEnrollUpgradePurge(t *testing.T) {
	h := setup(t)
	deb, secretID := h.buildDeb("1.0.0")

	// Whatever happens below, leave the machine as it was.
	t.Cleanup(func() {
		_ = exec.Command("dpkg", "-P", "lanyard-agent").Run()
		_ = os.RemoveAll("/etc/lanyard")
		_ = os.RemoveAll(stateDir)
	})

	// 1. Install: files in place with their modes; no systemd here, so the
	// postinst says the service was not started.
	out := run(t, "dpkg", "-i", deb)
	if !strings.Contains(out, "systemd is not running") {
		t.Errorf("postinst did not report the missing systemd:\n%s", out)
	}
	for p, want := range map[string]os.FileMode{configPath: 0o600, stateDir: 0o700 | os.ModeDir, agentBin: 0o755, unitPath: 0o644} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("after install: %v", err)
		}
		if fi.Mode()&(os.ModeDir|os.ModePerm) != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode(), want)
		}
	}

	// 2. The installed agent enrolls from the baked config and reports.
	agent := h.startAgent()
	h.serve.WaitFor(t, "the installed agent to enroll and connect", 90*time.Second, func() bool {
		return agentStatus()["connected"] == true
	})
	identity := filepath.Join(stateDir, "identity.pem")
	if fi, err := os.Stat(identity); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity.pem after enrolling: %v %v", fi, err)
	}
	if cfg, err := config.Load(configPath); err != nil || cfg.EnrollmentSecret != "" {
		t.Errorf("the secret is still in %s after enrolling (err %v)", configPath, err)
	}
	var devices struct {
		Items []struct {
			ID           string `json:"id"`
			SerialNumber string `json:"serial_number"`
		} `json:"items"`
	}
	deviceID := ""
	h.serve.WaitFor(t, "the device to appear with the reported serial", 60*time.Second, func() bool {
		h.api("/api/v1/devices?limit=200", &devices)
		for _, d := range devices.Items {
			if d.SerialNumber == serial {
				deviceID = d.ID
				return true
			}
		}
		return false
	})
	var tracking map[string]any
	h.serve.WaitFor(t, "agent tracking (reporting) on the device", 60*time.Second, func() bool {
		return h.api("/api/v1/devices/"+deviceID+"/tracking", &tracking) == 200 && tracking != nil &&
			strings.Contains(fmt.Sprint(tracking), serial)
	})
	var secrets struct {
		Items []struct {
			ID   string `json:"id"`
			Uses int    `json:"uses"`
		} `json:"items"`
	}
	h.api("/api/v1/enrollment-secrets", &secrets)
	used := false
	for _, s := range secrets.Items {
		if s.ID == secretID && s.Uses == 1 {
			used = true
		}
	}
	if !used {
		t.Errorf("the package's own secret %s was not the one used to enroll: %+v", secretID, secrets.Items)
	}
	agent.Stop()

	// 3. Upgrade in place with a newer package, downloaded from the API this
	// time: the device identity survives and the agent comes back as the same
	// device.
	before := fileSum(t, identity)
	deb2, secret2 := h.download("linux-deb", runtime.GOARCH)
	if secret2 == "" || secret2 == secretID || !strings.Contains(deb2, "_1.0.1_linux-deb_") {
		t.Errorf("API package %s with secret %q (CLI package's secret %s)", filepath.Base(deb2), secret2, secretID)
	}
	run(t, "dpkg", "-i", deb2)
	if cfg, err := config.Load(configPath); err != nil || cfg.ControlPlaneURL != h.serve.HTTPURL || cfg.GRPCAddress != h.serve.GRPCAddr ||
		cfg.EnrollmentAddress != h.serve.EnrollAddr || cfg.CAFingerprintSHA256 == "" || cfg.EnrollmentSecret == "" {
		t.Errorf("config baked by the server: %+v, %v", cfg, err)
	}
	if v := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Version}", "lanyard-agent")); v != "1.0.1-1" {
		t.Errorf("installed version %q after upgrade", v)
	}
	if after := fileSum(t, identity); after != before {
		t.Error("the upgrade replaced the device identity")
	}
	agent = h.startAgent()
	h.serve.WaitFor(t, "the upgraded agent to reconnect", 60*time.Second, func() bool {
		st := agentStatus()
		return st["connected"] == true && st["device_id"] == deviceID
	})
	agent.Stop()

	// 4. Purge removes the package, its configuration and the device identity.
	run(t, "dpkg", "-P", "lanyard-agent")
	for _, p := range []string{agentBin, configPath, "/etc/lanyard", stateDir, unitPath, wantsLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after purge", p)
		}
	}
	if exec.Command("dpkg", "-s", "lanyard-agent").Run() == nil {
		t.Error("dpkg still knows lanyard-agent after purge")
	}
}
