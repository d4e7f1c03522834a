// Package actions executes control-plane commands (lock, wipe, message) on
// the device.
//
// A command becomes a plan: a pure []Step built by a per-OS Planner from
// facts about the machine (accounts, sessions, disk layout). An Executor
// checks the command (target serial, expiry, confirmation for destructive
// steps) and hands each step to a Runner. ExecRunner runs steps for real
// through the allowlist of absolute program paths; DryRunner records the
// exact steps and runs nothing (tests, the end-to-end test, `--dry-run`).
package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

// Kind is a command type.
type Kind string

// Command kinds handled here. collect-inventory is handled by the client.
const (
	Lock    Kind = "lock"
	Wipe    Kind = "wipe"
	Message Kind = "message"
)

// Command is what the executor needs from a control-plane command.
type Command struct {
	ID           string
	Kind         Kind
	TargetSerial string
	// Message is shown to the user (message command; lock screen/nologin text).
	Message string
	Title   string
	// ExpiresAt: the command must not start after it (zero: no expiry).
	ExpiresAt time.Time
	// Confirmed is true when the control plane's signed second confirmation
	// for this command verified (checked by the client). Destructive steps
	// never run without it.
	Confirmed bool
}

// FileWrite is a step that writes a file instead of running a program.
type FileWrite struct {
	Path    string
	Content string
	Mode    os.FileMode
}

// Step is one action of a plan. Exactly one of Argv and Write is set.
type Step struct {
	Name string
	// Argv[0] is an absolute, allowlisted program path.
	Argv  []string
	Write *FileWrite
	// Destructive steps destroy data; they require Command.Confirmed.
	Destructive bool
	// ContinueOnError: a failure is recorded but the plan goes on (e.g.
	// ending the sessions of a user who has none).
	ContinueOnError bool
}

func (s Step) String() string {
	if s.Write != nil {
		return fmt.Sprintf("%s: write %s", s.Name, s.Write.Path)
	}
	return fmt.Sprintf("%s: %s", s.Name, strings.Join(s.Argv, " "))
}

// Runner runs one step.
type Runner interface {
	Run(ctx context.Context, s Step) (output string, err error)
}

// State of a command result.
type State string

// Result states (mirror the wire CommandState).
const (
	Acknowledged State = "acknowledged"
	Done         State = "done"
	Failed       State = "failed"
)

// StepStatus of one step.
type StepStatus string

// Step statuses (mirror the wire StepStatus).
const (
	StepOK      StepStatus = "ok"
	StepFailed  StepStatus = "failed"
	StepSkipped StepStatus = "skipped"
	StepDryRun  StepStatus = "dry_run"
)

// StepResult is one executed (or recorded) step.
type StepResult struct {
	Step   Step
	Status StepStatus
	Output string
	Error  string
}

// Result of a command.
type Result struct {
	CommandID string
	State     State
	Steps     []StepResult
	Error     string
	Message   string
	Finished  time.Time
}

// Errors.
var (
	// ErrSerialMismatch: the command targets another device.
	ErrSerialMismatch = errors.New("actions: target serial is not this device's serial")
	// ErrExpired: the command arrived after its expiry.
	ErrExpired = errors.New("actions: command expired")
	// ErrNotConfirmed: a destructive plan without a verified confirmation.
	ErrNotConfirmed = errors.New("actions: destructive command without a verified confirmation")
	// ErrDeferredToMDM: this platform locks and wipes through MDM.
	ErrDeferredToMDM = errors.New("actions: deferred to MDM on this platform")
	// ErrUnsupported: the command kind is not implemented on this platform.
	ErrUnsupported = errors.New("actions: unsupported on this platform")
)

// Planner turns a command into steps for this machine.
type Planner interface {
	Plan(ctx context.Context, cmd Command) ([]Step, error)
}

// Executor validates and runs commands.
type Executor struct {
	// Serial is this device's serial number. A command runs only when its
	// target serial equals it; an empty Serial refuses every command.
	Serial  string
	Planner Planner
	Runner  Runner
	// Now defaults to time.Now.
	Now func() time.Time
}

// SameSerial compares serials as firmware reports them (case and
// surrounding space ignored). Two empty serials never match.
func SameSerial(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return a != "" && strings.EqualFold(a, b)
}

// Execute runs cmd and returns its terminal result (Done or Failed).
func (e *Executor) Execute(ctx context.Context, cmd Command) Result {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	res := Result{CommandID: cmd.ID}
	fail := func(err error, msg string) Result {
		res.State, res.Error, res.Message, res.Finished = Failed, err.Error(), msg, now().UTC()
		return res
	}
	if !SameSerial(cmd.TargetSerial, e.Serial) {
		return fail(fmt.Errorf("%w: target %q, device %q", ErrSerialMismatch, cmd.TargetSerial, e.Serial),
			"refused: command is for another device")
	}
	if !cmd.ExpiresAt.IsZero() && now().After(cmd.ExpiresAt) {
		return fail(ErrExpired, "refused: command expired before it could start")
	}
	steps, err := e.Planner.Plan(ctx, cmd)
	if errors.Is(err, ErrDeferredToMDM) {
		return fail(err, "macOS: lock and wipe are delivered through MDM; the agent does not run them")
	}
	if err != nil {
		return fail(err, "could not build a plan")
	}
	for _, s := range steps {
		if s.Destructive && !cmd.Confirmed {
			return fail(ErrNotConfirmed, "refused: destructive step "+s.Name+" needs the control plane's signed confirmation")
		}
	}
	_, dry := e.Runner.(*DryRunner)
	res.State = Done
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			res.State, res.Error = Failed, err.Error()
			res.Steps = append(res.Steps, skipped(steps[i:])...)
			break
		}
		out, err := e.Runner.Run(ctx, s)
		sr := StepResult{Step: s, Status: StepOK, Output: truncate(out)}
		if dry {
			sr.Status = StepDryRun
		}
		if err != nil {
			sr.Status, sr.Error = StepFailed, truncate(err.Error())
		}
		res.Steps = append(res.Steps, sr)
		if err != nil && !s.ContinueOnError {
			res.State, res.Error = Failed, fmt.Sprintf("step %s: %v", s.Name, err)
			res.Steps = append(res.Steps, skipped(steps[i+1:])...)
			break
		}
	}
	if dry {
		res.Message = "dry run: steps recorded, nothing executed"
	}
	res.Finished = now().UTC()
	return res
}

func skipped(steps []Step) []StepResult {
	out := make([]StepResult, len(steps))
	for i, s := range steps {
		out[i] = StepResult{Step: s, Status: StepSkipped}
	}
	return out
}

func truncate(s string) string {
	const max = 4096
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// ExecRunner runs steps for real: programs through the allowlist, file
// writes directly.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, s Step) (string, error) {
	if s.Write != nil {
		if err := os.MkdirAll(filepath.Dir(s.Write.Path), 0o755); err != nil {
			return "", fmt.Errorf("actions: %w", err)
		}
		mode := s.Write.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(s.Write.Path, []byte(s.Write.Content), mode); err != nil {
			return "", fmt.Errorf("actions: %w", err)
		}
		return "", nil
	}
	out, err := allowcmd.Run(ctx, s.Argv...)
	return string(out), err
}

// DryRunner records steps without running them. Safe for concurrent use.
type DryRunner struct {
	mu    sync.Mutex
	steps []Step
}

// Run implements Runner: it only records s.
func (d *DryRunner) Run(_ context.Context, s Step) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.steps = append(d.steps, s)
	return "", nil
}

// Steps returns the recorded steps in order.
func (d *DryRunner) Steps() []Step {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Step(nil), d.steps...)
}
