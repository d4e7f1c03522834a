package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/internal/e2etest"
	"github.com/lanyardhq/lanyard/internal/procstat"
)

// TestAgentFootprint measures the agent's idle resident memory, CPU and
// stripped binary size against a real `lanyard serve`, with the production
// intervals (inventory every minute, heartbeat as the server says).
// It runs only when LANYARD_AGENT_FOOTPRINT is set to a duration, e.g.
//
//	LANYARD_AGENT_FOOTPRINT=120s go test -run TestAgentFootprint -v ./agent/e2e
//
// and prints the numbers recorded in docs/benchmarks.md ("Agent footprint").
func TestAgentFootprint(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("LANYARD_AGENT_FOOTPRINT"))
	if err != nil || d <= 0 {
		t.Skip("set LANYARD_AGENT_FOOTPRINT=<duration> to measure the agent's footprint")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	e := setup(t)
	cfgPath, _, _, _ := e.agentSetup()

	// The shipped build: stripped, trimmed, without x/net/trace, without the
	// test knobs. No command is sent to it (it would run for real).
	stripped := filepath.Join(e.bin, "lanyard-agent-stripped")
	e2etest.GoBuild(t, stripped, "./cmd/lanyard-agent",
		"-trimpath", "-tags", e2etest.AgentTags(false, "grpcnotrace"), "-ldflags", "-s -w")
	st, _ := os.Stat(stripped)

	agent := e2etest.Start(t, stripped, nil, "run", "--config", cfgPath)
	e.serve.WaitFor(t, "the agent to connect", 60*time.Second, func() bool {
		return statusField(e.agentStatus(cfgPath), "connected") == true
	})
	time.Sleep(10 * time.Second) // enrollment and first report done
	pid := agent.Cmd.Process.Pid
	p0, _ := procstat.Stat(pid)
	t0 := time.Now()
	var maxRSS int
	for time.Since(t0) < d {
		time.Sleep(time.Second)
		if r := procRSS(pid); r > maxRSS {
			maxRSS = r
		}
	}
	p1, _ := procstat.Stat(pid)
	elapsed := time.Since(t0)
	rss := procRSS(pid)
	// Children are the posture and inventory tools the agent runs (apt-config, nft, …):
	// they count against the agent, but reporting them apart says where a change came from.
	self, tools := p1.CPU-p0.CPU, p1.ChildCPU-p0.ChildCPU
	cpuPct := 100 * (self + tools).Seconds() / elapsed.Seconds()
	t.Logf("agent footprint over %s: RSS %.1f MB (max %.1f MB), CPU %.3f%% of one core (%s: agent %s, tools it ran %s), threads %d, stripped binary %.2f MiB",
		elapsed.Round(time.Second), float64(rss)/1e3, float64(maxRSS)/1e3, cpuPct, (self + tools).Round(time.Millisecond),
		self.Round(time.Millisecond), tools.Round(time.Millisecond), p1.Threads, float64(st.Size())/(1<<20))
	if statusField(e.agentStatus(cfgPath), "connected") != true {
		t.Fatal("agent disconnected during the measurement")
	}
	fmt.Fprintf(os.Stderr, "FOOTPRINT rss_kb=%d max_rss_kb=%d cpu_pct=%.3f seconds=%.0f size_bytes=%d\n",
		rss, maxRSS, cpuPct, elapsed.Seconds(), st.Size())
}

// procRSS returns VmRSS of pid in kB.
func procRSS(pid int) int {
	kb, _ := procstat.RSSKB(pid)
	return kb
}
