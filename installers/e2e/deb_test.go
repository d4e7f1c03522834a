package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/config"
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

type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out := p.output()
			if len(out) > 6000 {
				out = "…" + out[len(out)-6000:]
			}
			t.Logf("--- %s output ---\n%s", filepath.Base(name), out)
		}
	})
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func freePorts(t *testing.T) (httpPort, grpcPort int) {
	t.Helper()
	pick := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	h := pick()
	for range 50 {
		g := pick()
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(g+1)); err == nil {
			ln.Close()
			if g != h && g+1 != h {
				return h, g
			}
		}
	}
	t.Fatal("no free port pair")
	return 0, 0
}

func waitFor(t *testing.T, what string, d time.Duration, server *proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		select {
		case <-server.done:
			t.Fatalf("lanyard serve exited while waiting for %s", what)
		case <-time.After(250 * time.Millisecond):
		}
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

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
	httpURL string
	token   string
	grpc    string
	enroll  string
	server  *proc
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
		"--control-plane-url", h.httpURL, "--agent-address", h.grpc, "--enrollment-address", h.enroll)
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
	req, _ := http.NewRequest("GET", h.httpURL+"/api/v1/installers/"+platform+"?arch="+arch, nil)
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
	req, _ := http.NewRequest("GET", h.httpURL+path, nil)
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

func (h *harness) startAgent() *proc {
	// What the systemd unit runs (ExecStart=/usr/bin/lanyard-agent run), with
	// short intervals and the dry-run executor for the test.
	return start(h.t, agentBin, []string{"LANYARD_AGENT_TEST_SERIAL=" + serial},
		"run", "--dry-run", "--heartbeat-interval", "1s", "--inventory-interval", "2s", "--backoff-max", "2s")
}

func setup(t *testing.T) *harness {
	if testing.Short() {
		t.Skip("installs a package on this machine; skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a .deb needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not available")
	}
	if exec.Command("dpkg", "-s", "lanyard-agent").Run() == nil {
		t.Skip("lanyard-agent is already installed on this machine; not touching it")
	}
	for _, p := range []string{configPath, stateDir, agentBin} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s exists on this machine; not touching it", p)
		}
	}
	h := &harness{t: t, dir: t.TempDir()}
	h.bin = filepath.Join(h.dir, "bin")
	h.dataDir = filepath.Join(h.dir, "data")
	build := func(pkg, out, ldflags string) {
		t.Helper()
		root, _ := filepath.Abs("../..")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go" /* resolved on PATH: go test puts GOROOT/bin first */, "build", "-ldflags", ldflags,
			"-o", filepath.Join(h.bin, out), pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	// The server reports version 1.0.1, so the packages it builds for the API are an
	// upgrade over the 1.0.0 one the CLI builds.
	build("./cmd/lanyard", "lanyard", "-X github.com/lanyardhq/lanyard/controlplane/server.Version=1.0.1")
	hp, gp := freePorts(t)
	h.httpURL = fmt.Sprintf("http://127.0.0.1:%d", hp)
	h.grpc = fmt.Sprintf("127.0.0.1:%d", gp)
	h.enroll = fmt.Sprintf("127.0.0.1:%d", gp+1)
	out := h.lanyard("admin", "create-org", "Package Test Co", "--plan", "pro")
	m := regexp.MustCompile(`owner token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create-org output:\n%s", out)
	}
	h.token = m[1]
	h.server = start(t, filepath.Join(h.bin, "lanyard"), nil, "serve", "--data-dir", h.dataDir,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", hp), "--public-url", h.httpURL,
		"--grpc-addr", h.grpc, "--agent-url", h.grpc, "--log-level", "debug")
	listening := false
	for i := 0; i < 300 && !listening; i++ {
		if c, err := net.DialTimeout("tcp", h.enroll, time.Second); err == nil {
			c.Close()
			listening = true
		} else {
			select {
			case <-h.server.done:
				t.Fatalf("lanyard serve exited:\n%s", h.server.output())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if !listening {
		t.Skipf("lanyard serve does not listen for agent enrollment on %s (agent API not wired into controlplane/server yet)", h.enroll)
	}
	// The agent sits beside lanyard, where the server wiring looks for prebuilt agents.
	build("./cmd/lanyard-agent", "lanyard-agent-linux-"+runtime.GOARCH, "-X github.com/lanyardhq/lanyard/agent/cli.Version=1.0.0")
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
	waitFor(t, "the installed agent to enroll and connect", 90*time.Second, h.server, func() bool {
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
	waitFor(t, "the device to appear with the reported serial", 60*time.Second, h.server, func() bool {
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
	waitFor(t, "agent tracking (reporting) on the device", 60*time.Second, h.server, func() bool {
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
	agent.stop()

	// 3. Upgrade in place with a newer package, downloaded from the API this
	// time: the device identity survives and the agent comes back as the same
	// device.
	before := fileSum(t, identity)
	deb2, secret2 := h.download("linux-deb", runtime.GOARCH)
	if secret2 == "" || secret2 == secretID || !strings.Contains(deb2, "_1.0.1_linux-deb_") {
		t.Errorf("API package %s with secret %q (CLI package's secret %s)", filepath.Base(deb2), secret2, secretID)
	}
	run(t, "dpkg", "-i", deb2)
	if cfg, err := config.Load(configPath); err != nil || cfg.ControlPlaneURL != h.httpURL || cfg.GRPCAddress != h.grpc ||
		cfg.EnrollmentAddress != h.enroll || cfg.CAFingerprintSHA256 == "" || cfg.EnrollmentSecret == "" {
		t.Errorf("config baked by the server: %+v, %v", cfg, err)
	}
	if v := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Version}", "lanyard-agent")); v != "1.0.1-1" {
		t.Errorf("installed version %q after upgrade", v)
	}
	if after := fileSum(t, identity); after != before {
		t.Error("the upgrade replaced the device identity")
	}
	agent = h.startAgent()
	waitFor(t, "the upgraded agent to reconnect", 60*time.Second, h.server, func() bool {
		st := agentStatus()
		return st["connected"] == true && st["device_id"] == deviceID
	})
	agent.stop()

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
