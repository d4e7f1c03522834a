package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/internal/e2etest"
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

	// The shipped build: stripped, trimmed, without x/net/trace.
	stripped := filepath.Join(e.bin, "lanyard-agent-stripped")
	e2etest.GoBuild(t, stripped, "./cmd/lanyard-agent",
		"-trimpath", "-tags", "nobadger,nobbolt,nomysql,grpcnotrace", "-ldflags", "-s -w")
	st, _ := os.Stat(stripped)

	agent := e2etest.Start(t, stripped, []string{"LANYARD_AGENT_TEST_SERIAL=" + testSerial},
		"run", "--config", cfgPath, "--dry-run")
	e.serve.WaitFor(t, "the agent to connect", 60*time.Second, func() bool {
		return statusField(e.agentStatus(cfgPath), "connected") == true
	})
	time.Sleep(10 * time.Second) // enrollment and first report done
	pid := agent.Cmd.Process.Pid
	cpu0, _ := procCPU(pid)
	t0 := time.Now()
	var maxRSS int
	for time.Since(t0) < d {
		time.Sleep(time.Second)
		if r := procRSS(pid); r > maxRSS {
			maxRSS = r
		}
	}
	cpu1, threads := procCPU(pid)
	elapsed := time.Since(t0)
	rss := procRSS(pid)
	cpuPct := 100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	t.Logf("agent footprint over %s: RSS %.1f MB (max %.1f MB), CPU %.3f%% of one core (%s, tools it runs included), threads %d, stripped binary %.2f MiB",
		elapsed.Round(time.Second), float64(rss)/1e3, float64(maxRSS)/1e3, cpuPct, (cpu1 - cpu0).Round(time.Millisecond),
		threads, float64(st.Size())/(1<<20))
	if statusField(e.agentStatus(cfgPath), "connected") != true {
		t.Fatal("agent disconnected during the measurement")
	}
	fmt.Fprintf(os.Stderr, "FOOTPRINT rss_kb=%d max_rss_kb=%d cpu_pct=%.3f seconds=%.0f size_bytes=%d\n",
		rss, maxRSS, cpuPct, elapsed.Seconds(), st.Size())
}

// procCPU returns utime+stime of pid plus cutime+cstime (its waited-for
// children: the posture and inventory tools it runs) and its thread count.
func procCPU(pid int) (time.Duration, int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	cut, _ := strconv.ParseInt(f[13], 10, 64)
	cst, _ := strconv.ParseInt(f[14], 10, 64)
	th, _ := strconv.Atoi(f[17])
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+stt+cut+cst) * time.Second / clkTck, th
}

// procRSS returns VmRSS of pid in kB.
func procRSS(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.Atoi(strings.Fields(l)[1])
			return v
		}
	}
	return 0
}
