// Package e2etest runs real Lanyard processes for the end-to-end suites
// (agent/e2e, installers/e2e): it builds binaries from this module, starts
// processes with their output captured and stopped at the end of the test,
// and starts `lanyard serve` on free 127.0.0.1 ports. Only tests import it.
package e2etest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proc is a started process; it collects the process's stdout and stderr.
type Proc struct {
	Cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is what the process has written so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop interrupts the process and kills it if it is still running 10 s
// later. Stopping a stopped process does nothing.
func (p *Proc) Stop() {
	if p.Cmd.Process == nil {
		return
	}
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Start runs name with args and env added to this process's environment.
// The test's cleanup stops it and, when the test failed, logs the end of
// its output.
func Start(t *testing.T, name string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{done: make(chan struct{})}
	p.Cmd = exec.Command(name, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p, p
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", filepath.Base(name), tail(p.Output(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// RepoRoot is the directory holding this module's go.mod, found from the
// test's working directory upwards.
func RepoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// GoBuild runs `go build flags... -o out pkg` in the module root without
// cgo, for at most 10 minutes. pkg is relative to the root ("./cmd/lanyard").
func GoBuild(t *testing.T, out, pkg string, flags ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go" /* resolved on PATH: go test puts GOROOT/bin first */, args...)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
}

// TestTag is the build tag of test agents: only they have the test knobs
// (run --dry-run, LANYARD_AGENT_DRY_RUN, LANYARD_AGENT_TEST_SERIAL).
const TestTag = "lanyardtest"

// AgentTags are the build tags for an agent: the ones in GOFLAGS (the
// Makefile's nobadger,…) without TestTag, then extra, plus TestTag for a
// test build. A release build never gets TestTag, even from the environment.
func AgentTags(test bool, extra ...string) string {
	var tags []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		v, ok := strings.CutPrefix(f, "-tags=")
		if !ok {
			v, ok = strings.CutPrefix(f, "--tags=")
		}
		if !ok {
			continue
		}
		for _, t := range strings.Split(v, ",") {
			if t != "" && t != TestTag {
				tags = append(tags, t)
			}
		}
	}
	for _, t := range extra {
		if t != TestTag {
			tags = append(tags, t)
		}
	}
	if test {
		tags = append(tags, TestTag)
	}
	return strings.Join(tags, ",")
}

// BuildTestAgent builds ./cmd/lanyard-agent with the test knobs (TestTag)
// into out; flags (e.g. -ldflags) come before the package.
func BuildTestAgent(t *testing.T, out string, flags ...string) {
	t.Helper()
	GoBuild(t, out, "./cmd/lanyard-agent", append([]string{"-tags", AgentTags(true)}, flags...)...)
}

// BuildReleaseAgent builds ./cmd/lanyard-agent as `make build` ships it:
// without the test knobs.
func BuildReleaseAgent(t *testing.T, out string, flags ...string) {
	t.Helper()
	GoBuild(t, out, "./cmd/lanyard-agent", append([]string{"-tags", AgentTags(false)}, flags...)...)
}

// FreePorts returns an HTTP port and a gRPC port whose successor (the
// enrollment listener) is free too, all on 127.0.0.1.
func FreePorts(t *testing.T) (httpPort, grpcPort int) {
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

// MustListen fails the test, with the end of the server's output, unless
// addr accepts a connection within tries×100 ms: a server the test started
// that does not answer is a failure, never a skip.
func (s *Serve) MustListen(t *testing.T, what, addr string, tries int) {
	t.Helper()
	if WaitListening(addr, tries, s.Done()) {
		return
	}
	state := "is running"
	if s.Exited() {
		state = "exited"
	}
	t.Fatalf("lanyard serve (%s) does not listen for %s on %s:\n%s", state, what, addr, tail(s.Output(), 6000))
}

// WaitListening dials addr up to tries times, 100 ms apart, and reports
// whether it accepted a connection. It gives up at once when exited (which
// may be nil) is closed.
func WaitListening(addr string, tries int, exited <-chan struct{}) bool {
	for range tries {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// Serve is a running `lanyard serve` on loopback.
type Serve struct {
	*Proc
	HTTPURL    string // admin API and public URL, http://127.0.0.1:port
	GRPCAddr   string // agent gRPC listener, also the agent URL
	EnrollAddr string // enrollment listener, the port after GRPCAddr
	// Poll is how often WaitFor checks its condition.
	Poll time.Duration
}

// StartServe starts `lanyard serve` from the binary bin on free 127.0.0.1
// ports with the data directory dataDir and debug logging; extra flags
// (such as --demo) come right after "serve".
func StartServe(t *testing.T, bin, dataDir string, extra ...string) *Serve {
	t.Helper()
	hp, gp := FreePorts(t)
	s := &Serve{
		HTTPURL:    fmt.Sprintf("http://127.0.0.1:%d", hp),
		GRPCAddr:   fmt.Sprintf("127.0.0.1:%d", gp),
		EnrollAddr: fmt.Sprintf("127.0.0.1:%d", gp+1),
		Poll:       200 * time.Millisecond,
	}
	args := append(append([]string{"serve"}, extra...), "--data-dir", dataDir,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", hp), "--public-url", s.HTTPURL,
		"--grpc-addr", s.GRPCAddr, "--agent-url", s.GRPCAddr, "--log-level", "debug")
	s.Proc = Start(t, bin, nil, args...)
	return s
}

// WaitFor checks cond every s.Poll until it holds; the test fails when d
// has passed first or when the server exits.
func (s *Serve) WaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("lanyard serve exited while waiting for %s", what)
		case <-time.After(s.Poll):
		}
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}
