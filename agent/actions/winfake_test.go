package actions

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

// fakeWindows is a Windows machine made of recorded tool outputs
// (testdata/windows/<machine>/<state>/). It answers the planner's reads
// from the current state and, as the Executor's Runner, moves to the next
// state when the first program step runs: what the machine looks like
// afterwards is what that state's outputs say (a "noop" state is a machine
// whose tools did nothing). File writes happen for real, in the test's
// state dir.
type fakeWindows struct {
	t      *testing.T
	dir    string
	states []string

	mu    sync.Mutex
	state int
	reads []string // every program the planner read facts from
	ran   []string // every program step (and program the planner changed something with)
}

func newFakeWindows(t *testing.T, machine string, states ...string) *fakeWindows {
	t.Helper()
	return &fakeWindows{t: t, dir: filepath.Join("testdata", "windows", machine), states: states}
}

// exitError is a program that ran and exited with code.
type exitError struct {
	code   int
	stderr string
}

func (e exitError) Error() string { return fmt.Sprintf("exit status %d: %s", e.code, e.stderr) }
func (e exitError) ExitCode() int { return e.code }

// lookup is where a file is looked for: the current state, then "before"
// (a file a state does not have is unchanged since before the lock).
func (f *fakeWindows) lookup() []string {
	if cur := f.states[f.state]; cur != "before" {
		return []string{cur, "before"}
	}
	return []string{"before"}
}

func (f *fakeWindows) file(name string) ([]byte, bool) {
	for _, st := range f.lookup() {
		b, err := os.ReadFile(filepath.Join(f.dir, st, name))
		if err == nil {
			return b, true
		}
	}
	return nil, false
}

func (f *fakeWindows) need(name string) string {
	b, ok := f.file(name)
	if !ok {
		f.t.Fatalf("fake windows %s: no recorded %s in %v", f.dir, name, f.lookup())
	}
	return string(b)
}

func (f *fakeWindows) advance(argv []string) {
	f.ran = append(f.ran, strings.Join(argv, " "))
	if f.state < len(f.states)-1 {
		f.state++
	}
}

// Output implements winTools.
func (f *fakeWindows) Output(_ context.Context, argv ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := strings.Join(argv, " ")
	read := func(name string) (string, error) {
		f.reads = append(f.reads, cmd)
		return f.need(name), nil
	}
	switch {
	case argv[0] == WinPowerShell && argv[len(argv)-1] == localUsersPS:
		return read("local-users.json")
	case argv[0] == WinPowerShell && argv[len(argv)-1] == remoteWipeProbePS:
		return read("remotewipe.json")
	case argv[0] == WinDsregcmd:
		return read("dsregcmd-status.txt")
	case argv[0] == WinReagentc && slices.Equal(argv[1:], []string{"/info"}):
		return read("reagentc-info.txt")
	case argv[0] == WinQuser:
		f.reads = append(f.reads, cmd)
		for _, st := range f.lookup() {
			if b, err := os.ReadFile(filepath.Join(f.dir, st, "quser.txt")); err == nil {
				return string(b), nil
			}
			if b, err := os.ReadFile(filepath.Join(f.dir, st, "quser.stderr")); err == nil {
				return "", fmt.Errorf("allowcmd: quser.exe: %w", exitError{1, strings.TrimSpace(string(b))})
			}
		}
		f.t.Fatalf("fake windows %s: no recorded quser output", f.dir)
	case argv[0] == WinSecedit && len(argv) > 3 && argv[1] == "/export" && argv[2] == "/cfg":
		f.reads = append(f.reads, cmd)
		// secedit writes the export to the file it was given.
		if err := os.WriteFile(argv[3], []byte(f.need("secedit-export.inf")), 0o600); err != nil {
			f.t.Fatal(err)
		}
		return "", nil
	case argv[0] == WinManageBDE && slices.Equal(argv[1:], []string{"-status", "C:"}):
		if _, ok := f.file("manage-bde-status.txt"); !ok {
			f.reads = append(f.reads, cmd)
			return "", fmt.Errorf("%w: %s", allowcmd.ErrNotFound, WinManageBDE)
		}
		return read("manage-bde-status.txt")
	case argv[0] == WinManageBDE && slices.Equal(argv[1:], []string{"-protectors", "-get", "C:"}):
		return f.protectors(cmd, "manage-bde-protectors.txt")
	case argv[0] == WinManageBDE && slices.Equal(argv[1:], []string{"-protectors", "-get", "C:", "-Type", "RecoveryPassword"}):
		return f.protectors(cmd, "manage-bde-protectors-recoverypassword.txt")
	}
	// Anything else changes the machine (manage-bde -protectors -add from
	// RecoveryKeys).
	f.advance(argv)
	return "", nil
}

// protectors answers manage-bde -protectors -get, which exits non-zero
// when it prints an ERROR.
func (f *fakeWindows) protectors(cmd, name string) (string, error) {
	f.reads = append(f.reads, cmd)
	out := f.need(name)
	if strings.Contains(out, "ERROR:") {
		return out, exitError{code: -1}
	}
	return out, nil
}

// Run implements Runner.
func (f *fakeWindows) Run(_ context.Context, s Step) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Write != nil {
		f.ran = append(f.ran, "write "+s.Write.Path)
		return "", os.WriteFile(s.Write.Path, []byte(s.Write.Content), 0o600)
	}
	f.advance(s.Argv)
	return "The command completed successfully.", nil
}

func (f *fakeWindows) programsRun() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ran...)
}

// set moves the machine to a state by name (a later command on the same
// machine starts from there).
func (f *fakeWindows) set(states ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states, f.state, f.ran, f.reads = states, 0, nil, nil
}

func newTestWinPlanner(t *testing.T, f *fakeWindows, stateDir string) *winPlanner {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	return &winPlanner{stateDir: stateDir, volume: "C:", tools: f}
}
