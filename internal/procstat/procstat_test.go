package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Proc
		wantErr  bool
	}{
		{"plain", "42 (lanyard) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 12 0 100 0 0",
			Proc{CPU: 3 * time.Second, ChildCPU: 100 * time.Millisecond, Threads: 12}, false},
		{"spaces and parens in the name", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 100 0 0 0 20 0 3 0 1 0 0",
			Proc{CPU: time.Second, Threads: 3}, false},
		{"no name", "42 S 1", Proc{}, true},
		{"short", "42 (x) S 1 2 3", Proc{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseStat = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseMachine(t *testing.T) {
	got, err := parseMachine("cpu  100 5 45 1000 50 0 10 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if err != nil || got != 1600*time.Millisecond {
		t.Fatalf("parseMachine = %s, %v; want 1.6s (user+nice+system+irq+softirq+steal…, not idle or iowait)", got, err)
	}
	if _, err := parseMachine("intr 1 2 3"); err == nil {
		t.Fatal("accepted a file without the cpu line")
	}
}

func TestReadsThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	p, err := Stat(os.Getpid())
	if err != nil || p.Threads < 1 {
		t.Fatalf("Stat(self) = %+v, %v", p, err)
	}
	if kb, err := RSSKB(os.Getpid()); err != nil || kb <= 0 {
		t.Fatalf("RSSKB(self) = %d, %v", kb, err)
	}
	if busy, err := MachineBusy(); err != nil || busy <= 0 {
		t.Fatalf("MachineBusy = %s, %v", busy, err)
	}
}
