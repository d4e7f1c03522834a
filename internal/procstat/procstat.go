// Package procstat reads process and machine CPU and memory from Linux /proc, for the
// benchmarks and footprint tests that report them. Elsewhere every reader returns an error.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on every Linux we run on).
const clockTicks = 100

// Proc is a process's CPU use so far and its thread count.
type Proc struct {
	// CPU is user + system time of the process itself.
	CPU time.Duration
	// ChildCPU is user + system time of its children it has waited for (tools it ran).
	ChildCPU time.Duration
	Threads  int
}

// Stat reads /proc/<pid>/stat.
func Stat(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (Proc, error) {
	// The command name is in parentheses and may hold spaces: fields start after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Proc{}, errors.New("procstat: malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 18 {
		return Proc{}, errors.New("procstat: short stat")
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	ticks := func(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return Proc{CPU: ticks(n(11) + n(12)), ChildCPU: ticks(n(13) + n(14)), Threads: int(n(17))}, nil
}

// RSSKB reads VmRSS of pid in kB.
func RSSKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			if f := strings.Fields(l); len(f) >= 2 {
				return strconv.Atoi(f[1])
			}
		}
	}
	return 0, errors.New("procstat: no VmRSS")
}

// CommandCPU sums the CPU time of every process named comm (Postgres runs one per
// connection). A process that exits between two readings is missed: it under-counts.
func CommandCPU(comm string) time.Duration {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(b)) == comm {
			if p, err := Stat(pid); err == nil {
				sum += p.CPU
			}
		}
	}
	return sum
}

// MachineBusy reads the whole machine's busy CPU time (all but idle and iowait) from /proc/stat.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachine(string(b))
}

func parseMachine(s string) (time.Duration, error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, errors.New("procstat: malformed /proc/stat")
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		busy += x
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
