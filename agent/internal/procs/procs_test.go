package procs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestListAndLiveOf(t *testing.T) {
	dir := t.TempDir()
	status := map[string]string{
		"1":    "Name:\tinit\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\n",
		"42":   "Name:\tbash\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\n",
		"43":   "Name:\tsudo\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\n",
		"44":   "Name:\tsleep\nState:\tZ (zombie)\nUid:\t1000\t1000\t1000\t1000\n",
		"45":   "Name:\tsetuid\nState:\tR (running)\nUid:\t1001\t1000\t1000\t1000\n",
		"46":   "Name:\tother\nState:\tS (sleeping)\nUid:\t70001\t70001\t70001\t70001\n",
		"self": "Name:\tignored\n",
	}
	for pid, s := range status {
		os.MkdirAll(filepath.Join(dir, pid), 0o755)
		os.WriteFile(filepath.Join(dir, pid, "status"), []byte(s), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "99"), 0o755) // exited between readdir and open
	ps, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 6 {
		t.Fatalf("listed %d processes, want 6: %+v", len(ps), ps)
	}
	cases := []struct {
		uid  int
		want []int
	}{
		{1000, []int{42, 43, 45}}, // real or effective; the zombie is not live
		{70001, []int{46}},
		{1002, nil},
	}
	for _, tc := range cases {
		var got []int
		for _, p := range LiveOf(ps, tc.uid) {
			got = append(got, p.PID)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("LiveOf(%d) = %v, want %v", tc.uid, got, tc.want)
		}
	}
	if _, err := List(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing proc dir accepted")
	}
}

func TestListRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	ps, err := List("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	for _, p := range ps {
		if p.PID == me {
			if p.RealUID != os.Getuid() || !p.Live() {
				t.Fatalf("own process read as %+v", p)
			}
			return
		}
	}
	t.Fatal("own process not listed")
}
