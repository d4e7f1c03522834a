package actions

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
)

type fixedPlanner struct {
	steps  []Step
	verify func(context.Context) []Check
	err    error
	calls  int
}

func okChecks(context.Context) []Check {
	return []Check{{Name: "fact", OK: true, Observed: "x", Expected: "x"}}
}

func (p *fixedPlanner) Plan(context.Context, Command) (Plan, error) {
	p.calls++
	return Plan{Steps: p.steps, Verify: p.verify}, p.err
}

// scriptedRunner fails the steps named in fail.
type scriptedRunner struct {
	fail map[string]bool
	ran  []string
}

func (r *scriptedRunner) Run(_ context.Context, s Step) (string, error) {
	r.ran = append(r.ran, s.Name)
	if r.fail[s.Name] {
		return "boom output", errors.New("exit status 1")
	}
	return "ok", nil
}

func TestExecutorRefusals(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	destructive := []Step{{Name: "erase", Argv: []string{"/usr/sbin/cryptsetup"}, Destructive: true}}
	cases := []struct {
		name      string
		serial    string
		cmd       Command
		planner   *fixedPlanner
		wantErr   error
		wantPlans int
	}{
		{"other device", "ABC123", Command{ID: "c1", Kind: Lock, TargetSerial: "XYZ999"}, &fixedPlanner{}, ErrSerialMismatch, 0},
		{"empty target", "ABC123", Command{ID: "c1", Kind: Lock}, &fixedPlanner{}, ErrSerialMismatch, 0},
		{"device without serial", "", Command{ID: "c1", Kind: Lock, TargetSerial: ""}, &fixedPlanner{}, ErrSerialMismatch, 0},
		{"expired", "ABC123", Command{ID: "c1", Kind: Lock, TargetSerial: "abc123", ExpiresAt: now.Add(-time.Second)}, &fixedPlanner{}, ErrExpired, 0},
		{"unconfirmed wipe", "ABC123", Command{ID: "c1", Kind: Wipe, TargetSerial: "ABC123"}, &fixedPlanner{steps: destructive}, ErrNotConfirmed, 0},
		{"unconfirmed destructive lock step", "ABC123", Command{ID: "c1", Kind: Lock, TargetSerial: "ABC123"}, &fixedPlanner{steps: destructive}, ErrNotConfirmed, 1},
		{"mdm platform", "ABC123", Command{ID: "c1", Kind: Wipe, TargetSerial: "ABC123", Confirmed: true}, &fixedPlanner{err: ErrDeferredToMDM}, ErrDeferredToMDM, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dry := &DryRunner{}
			e := &Executor{Serial: tc.serial, Planner: tc.planner, Runner: dry, Now: func() time.Time { return now }}
			res := e.Execute(context.Background(), tc.cmd)
			if res.State != Failed || res.CommandID != "c1" {
				t.Fatalf("state %q id %q, want failed c1", res.State, res.CommandID)
			}
			if !strings.Contains(res.Error, tc.wantErr.Error()) {
				t.Fatalf("error %q, want %q", res.Error, tc.wantErr)
			}
			if res.Message == "" {
				t.Fatal("no message for the admin")
			}
			if len(dry.Steps()) != 0 || len(res.Steps) != 0 {
				t.Fatalf("steps ran: %v", dry.Steps())
			}
			if tc.planner.calls != tc.wantPlans {
				t.Fatalf("planner called %d times, want %d", tc.planner.calls, tc.wantPlans)
			}
		})
	}
}

func TestExecutorRunsStepsAndStopsOnFailure(t *testing.T) {
	steps := []Step{
		{Name: "a", Argv: []string{"/x"}},
		{Name: "b", Argv: []string{"/x"}, ContinueOnError: true},
		{Name: "c", Argv: []string{"/x"}},
		{Name: "d", Argv: []string{"/x"}},
	}
	r := &scriptedRunner{fail: map[string]bool{"b": true, "c": true}}
	e := &Executor{Serial: "S1", Planner: &fixedPlanner{steps: steps, verify: okChecks}, Runner: r}
	res := e.Execute(context.Background(), Command{ID: "c", Kind: Lock, TargetSerial: " s1 "})
	if res.State != Failed || !strings.Contains(res.Error, "step c") {
		t.Fatalf("result %+v", res)
	}
	if !slices.Equal(r.ran, []string{"a", "b", "c"}) {
		t.Fatalf("ran %v", r.ran)
	}
	var got []StepStatus
	for _, s := range res.Steps {
		got = append(got, s.Status)
	}
	if !slices.Equal(got, []StepStatus{StepOK, StepFailed, StepFailed, StepSkipped}) {
		t.Fatalf("statuses %v", got)
	}

	r = &scriptedRunner{}
	res = (&Executor{Serial: "S1", Planner: &fixedPlanner{steps: steps, verify: okChecks}, Runner: r}).Execute(context.Background(),
		Command{ID: "c", Kind: Lock, TargetSerial: "S1"})
	if res.State != Done || len(res.Steps) != 4 || res.Finished.IsZero() {
		t.Fatalf("happy path %+v", res)
	}
}

func linuxFacts(root string) LinuxFacts {
	return LinuxFacts{
		Root: root, Systemd: true,
		Humans: []accounts.Account{
			{Name: "alice", UID: 1000, Home: "/home/alice", Shell: "/bin/bash"},
			{Name: "bob", UID: 1001, Home: "/home/bob", Shell: "/bin/zsh"},
		},
		Usermod: "/usr/sbin/usermod", Loginctl: "/usr/bin/loginctl", Pkill: "/usr/bin/pkill",
		Cryptsetup: "/usr/sbin/cryptsetup", Systemctl: "/usr/bin/systemctl", Rm: "/usr/bin/rm", Wall: "/usr/bin/wall",
	}
}

func names(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.String())
	}
	return out
}

func TestLinuxLockPlanExactSteps(t *testing.T) {
	dry := &DryRunner{}
	e := &Executor{Serial: "S1", Runner: dry, Planner: planFunc(func(c Command) []Step { return LinuxLockPlan(linuxFacts("/"), c.Message) })}
	res := e.Execute(context.Background(), Command{ID: "l1", Kind: Lock, TargetSerial: "S1", Message: "Locked.\n"})
	if res.State != Simulated || !strings.Contains(res.Message, "dry run") {
		t.Fatalf("%+v", res)
	}
	want := []string{
		"block-logins:/etc/nologin: write /etc/nologin",
		"block-logins:/run/nologin: write /run/nologin",
		"lock-account:alice: /usr/sbin/usermod --lock --expiredate 1 alice",
		"lock-account:bob: /usr/sbin/usermod --lock --expiredate 1 bob",
		"end-sessions:alice: /usr/bin/loginctl terminate-user alice",
		"kill-processes:alice: /usr/bin/pkill -KILL -U 1000",
		"kill-processes-euid:alice: /usr/bin/pkill -KILL -u 1000",
		"end-sessions:bob: /usr/bin/loginctl terminate-user bob",
		"kill-processes:bob: /usr/bin/pkill -KILL -U 1001",
		"kill-processes-euid:bob: /usr/bin/pkill -KILL -u 1001",
	}
	if got := names(dry.Steps()); !slices.Equal(got, want) {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range res.Steps {
		if s.Status != StepDryRun {
			t.Fatalf("step %s status %s", s.Step.Name, s.Status)
		}
	}
	if dry.Steps()[0].Write.Content != "Locked.\n" {
		t.Fatal("lock message not written to nologin")
	}
	// Without systemd, sessions end with pkill alone.
	f := linuxFacts("/")
	f.Systemd = false
	last := LinuxLockPlan(f, "")
	if got := names(last[len(last)-2:]); !slices.Equal(got, []string{"kill-processes:bob: /usr/bin/pkill -KILL -U 1001", "kill-processes-euid:bob: /usr/bin/pkill -KILL -u 1001"}) ||
		slices.ContainsFunc(last, func(s Step) bool { return strings.HasPrefix(s.Name, "end-sessions") }) {
		t.Fatalf("no-systemd session steps %v", names(last))
	}
}

type planFunc func(Command) []Step

func (p planFunc) Plan(_ context.Context, c Command) (Plan, error) {
	return Plan{Steps: p(c), Verify: okChecks}, nil
}

func TestSameSerial(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"C02X", "c02x", true}, {" C02X", "C02X ", true}, {"", "", false}, {"A", "B", false}} {
		if got := SameSerial(tc.a, tc.b); got != tc.want {
			t.Errorf("SameSerial(%q,%q) = %v", tc.a, tc.b, got)
		}
	}
}

// TestExecutorOutcomes: Done needs checks that all pass; a dry run is
// Simulated; Final steps run only after Commit saw the Done result.
func TestExecutorOutcomes(t *testing.T) {
	step := []Step{{Name: "a", Argv: []string{"/x"}}}
	badCheck := func(context.Context) []Check {
		return []Check{{Name: "account-locked:alice", OK: false, Observed: "password usable", Expected: "password locked"}}
	}
	cases := []struct {
		name    string
		kind    Kind
		verify  func(context.Context) []Check
		runner  Runner
		want    State
		wantErr string
	}{
		{"verified lock", Lock, okChecks, &scriptedRunner{}, Done, ""},
		{"lock without checks", Lock, nil, &scriptedRunner{}, Failed, "checked nothing"},
		{"lock with a failed check", Lock, badCheck, &scriptedRunner{}, Failed, "account-locked:alice"},
		{"failed step with passing checks", Lock, okChecks, &scriptedRunner{fail: map[string]bool{"a": true}}, Failed, "step a"},
		{"message needs no checks", Message, nil, &scriptedRunner{}, Done, ""},
		{"dry run", Lock, badCheck, &DryRunner{}, Simulated, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &Executor{Serial: "S1", Planner: &fixedPlanner{steps: step, verify: tc.verify}, Runner: tc.runner}
			res := e.Execute(context.Background(), Command{ID: "c", Kind: tc.kind, TargetSerial: "S1"})
			if res.State != tc.want || !strings.Contains(res.Error, tc.wantErr) {
				t.Fatalf("state %s error %q, want %s %q", res.State, res.Error, tc.want, tc.wantErr)
			}
			if res.Evidence == nil || res.Evidence.CommandID != "c" || res.Evidence.Serial != "S1" {
				t.Fatalf("evidence %+v", res.Evidence)
			}
			if tc.want == Simulated && (!res.Evidence.Mode.DryRun || len(res.Evidence.Checks) != 0) {
				t.Fatalf("simulated evidence %+v", res.Evidence)
			}
		})
	}

	// Final steps: after Commit, with the Done result; never after a failure.
	var order []string
	r := &scriptedRunner{}
	plan := &finalPlanner{Plan{Steps: step, Verify: okChecks, Final: []Step{{Name: "power-off", Argv: []string{"/x"}, Destructive: true}}, FinalAction: "power-off"}}
	e := &Executor{Serial: "S1", Planner: plan, Runner: r, Commit: func(_ context.Context, res Result) error {
		order = append(order, "commit:"+string(res.State)+":"+res.Evidence.FinalAction)
		order = append(order, r.ran...)
		return errors.New("server unreachable")
	}}
	res := e.Execute(context.Background(), Command{ID: "w", Kind: Wipe, TargetSerial: "S1", Confirmed: true})
	if res.State != Done || !slices.Equal(order, []string{"commit:done:power-off", "a"}) || !slices.Equal(r.ran, []string{"a", "power-off"}) {
		t.Fatalf("state %s order %v ran %v", res.State, order, r.ran)
	}
	if !strings.Contains(res.Message, "not confirmed") {
		t.Fatalf("a failed commit is not reported: %q", res.Message)
	}
	r = &scriptedRunner{}
	plan.p.Verify = badCheck
	e = &Executor{Serial: "S1", Planner: plan, Runner: r, Commit: func(context.Context, Result) error { t.Fatal("commit of a failed wipe"); return nil }}
	if res := e.Execute(context.Background(), Command{ID: "w", Kind: Wipe, TargetSerial: "S1", Confirmed: true}); res.State != Failed || slices.Contains(r.ran, "power-off") {
		t.Fatalf("failed wipe: %s ran %v", res.State, r.ran)
	}
}

type finalPlanner struct{ p Plan }

func (f *finalPlanner) Plan(context.Context, Command) (Plan, error) { return f.p, nil }

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		target, serial, uuid string
		want                 bool
	}{
		{"C02X", "c02x", "U-1", true},
		{"U-1", "C02X", "U-1", false}, // a device with a serial is known by it
		{"u-1", "", "U-1", true},
		{"", "", "", false},
	} {
		if got := Targets(tc.target, tc.serial, tc.uuid); got != tc.want {
			t.Errorf("Targets(%q, %q, %q) = %v", tc.target, tc.serial, tc.uuid, got)
		}
	}
}
