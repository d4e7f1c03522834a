// Package actions executes control-plane commands (lock, unlock, wipe,
// message) on the device.
//
// A command becomes a Plan built by a per-OS Planner from facts about the
// machine (accounts, sessions, disk layout): pure steps, a Verify function
// that checks afterwards what the steps achieved, and for a wipe the final
// irreversible action. An Executor checks the command (target identity,
// expiry, confirmation for destructive steps), hands each step to a Runner,
// runs the checks and builds the Evidence. A lock, unlock or wipe is Done
// only when checks ran and all passed; a dry-run is Simulated, never Done.
// ExecRunner runs steps for real through the allowlist of absolute program
// paths; DryRunner records the exact steps and runs nothing (tests, and
// `--dry-run` in test builds).
package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	Unlock  Kind = "unlock"
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
	// EscrowedProtectors (lock, Windows) are the BitLocker recovery-password
	// protector ids the server holds; recovery is forced only on those.
	EscrowedProtectors []string
	// Reassert marks a lock the agent runs again at start because the
	// device is still held locked (no new result is reported for it).
	Reassert bool
	// AllowBestEffort (wipe): the org accepts removing files on a machine
	// without full-disk encryption; otherwise such a wipe fails with
	// ErrNoCryptoErase before anything runs.
	AllowBestEffort bool
}

// PlannerOptions configure NewPlanner.
type PlannerOptions struct {
	// StateDir is the agent's state directory (0700, root/SYSTEM only).
	// Lock plans keep there what they changed, so an unlock restores
	// exactly that and a restart can re-assert the lock.
	StateDir string
}

// RecoveryKey is a disk-encryption recovery secret to escrow with the
// server before a lock may force recovery (Windows BitLocker).
type RecoveryKey struct {
	Kind        string // "bitlocker"
	Volume      string // "C:"
	ProtectorID string // "{GUID}"
	Password    string
}

// String never prints the password: a RecoveryKey logged by mistake with
// %v must not leak it.
func (k RecoveryKey) String() string {
	return fmt.Sprintf("%s %s %s (password redacted)", k.Kind, k.Volume, k.ProtectorID)
}

// GoString keeps %#v from printing the password too.
func (k RecoveryKey) GoString() string { return k.String() }

// RecoveryKeyReader is implemented by planners of platforms whose lock
// forces disk recovery; the client escrows what it returns whenever it
// changes.
type RecoveryKeyReader interface {
	RecoveryKeys(ctx context.Context) ([]RecoveryKey, error)
}

// FileWrite is a step that writes a file instead of running a program.
type FileWrite struct {
	Path    string
	Content string
	Mode    os.FileMode
	// Private files (the lock record) are written owner-only through
	// securefs, in a directory securefs restricts.
	Private bool
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

// Result states (mirror the wire CommandState). Only Done, Failed and
// Simulated are terminal; Received and Running are progress reports.
const (
	Received  State = "received"
	Running   State = "running"
	Done      State = "done"
	Failed    State = "failed"
	Simulated State = "simulated"
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

// Check is one fact verified after a plan ran: what was found against what
// the command requires ("alice: password locked, expired 1970-01-02").
type Check struct {
	Name     string
	OK       bool
	Observed string
	Expected string
}

// Mode is the test knobs in effect (only test builds have them).
type Mode struct {
	DryRun           bool
	SerialOverridden bool
}

// Evidence is what the device proved about a command's outcome. The client
// serializes and signs it with the device key.
type Evidence struct {
	CommandID    string
	Kind         Kind
	Serial       string
	HardwareUUID string
	Checks       []Check
	// WipeMethod: WipeCryptoErase, WipeBestEffort or WipeRemoteCSP.
	WipeMethod string
	// FinalAction is what follows the result ("power-off", "reset").
	FinalAction string
	CheckedAt   time.Time
	Mode        Mode
}

// Wipe methods (Evidence.WipeMethod).
const (
	WipeCryptoErase = "crypto_erase"
	WipeBestEffort  = "best_effort"
	WipeRemoteCSP   = "remote_wipe_csp"
)

// Result of a command.
type Result struct {
	CommandID string
	State     State
	Steps     []StepResult
	Error     string
	Message   string
	Finished  time.Time
	// Evidence is set on every result of a command that got past its
	// refusal checks (Done, and Failed after running, with what was found).
	Evidence *Evidence
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
	// ErrUnverified: the plan ran but nothing proved its outcome.
	ErrUnverified = errors.New("actions: outcome not verified")
	// ErrNoCryptoErase: a wipe found no full-disk encryption to erase and the
	// org does not allow a best-effort removal.
	ErrNoCryptoErase = errors.New("actions: no crypto-erase possible")
)

// Plan is what a Planner returns for one command.
type Plan struct {
	// Steps run in order; a failed step stops the plan unless ContinueOnError.
	Steps []Step
	// Verify runs after Steps (also after a failed step) and reports what it
	// found. Lock, unlock and wipe plans must have it: a result without
	// checks, or with one that is not OK, is never Done.
	Verify func(ctx context.Context) []Check
	// Final steps run only after the Done result was committed to the
	// server (or the commit gave up): the irreversible action after which
	// the device cannot report any more (power-off, reset).
	Final []Step
	// FinalAction names Final for the evidence ("power-off", "reset").
	FinalAction string
	// WipeMethod is recorded in the evidence of a wipe.
	WipeMethod string
	// Message is shown to the admin with the result.
	Message string
}

func (p Plan) allSteps() []Step { return append(append([]Step(nil), p.Steps...), p.Final...) }

// Planner turns a command into a plan for this machine.
type Planner interface {
	Plan(ctx context.Context, cmd Command) (Plan, error)
}

// Executor validates and runs commands.
type Executor struct {
	// Serial is this device's firmware serial and HardwareUUID its hardware
	// UUID. A command runs only when its target is the serial, or the
	// hardware UUID when the device has no serial (the server identifies
	// such a device by its UUID). With neither, every command is refused.
	Serial       string
	HardwareUUID string
	Planner      Planner
	Runner       Runner
	// Mode is copied into the evidence. With Mode.DryRun (or a *DryRunner)
	// results are Simulated, never Done.
	Mode Mode
	// Commit delivers a Done result to the server before a plan's Final
	// steps run, and returns once the server confirmed it or gave up (the
	// Final steps run either way: a wiped disk must not stay powered).
	Commit func(ctx context.Context, r Result) error
	// Now defaults to time.Now.
	Now func() time.Time
}

// SameSerial compares serials as firmware reports them (case and
// surrounding space ignored). Two empty serials never match.
func SameSerial(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return a != "" && strings.EqualFold(a, b)
}

// Identity is the device identity the server knows this device by: the
// firmware serial, else the hardware UUID.
func Identity(serial, hardwareUUID string) string {
	if s := strings.TrimSpace(serial); s != "" {
		return s
	}
	return strings.TrimSpace(hardwareUUID)
}

// Targets reports whether target names the device with this serial and
// hardware UUID.
func Targets(target, serial, hardwareUUID string) bool {
	return SameSerial(target, Identity(serial, hardwareUUID))
}

// needsEvidence: kinds whose Done must rest on checks.
func needsEvidence(k Kind) bool { return k == Lock || k == Unlock || k == Wipe }

// Execute runs cmd and returns its terminal result (Done, Failed or
// Simulated).
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
	if !Targets(cmd.TargetSerial, e.Serial, e.HardwareUUID) {
		return fail(fmt.Errorf("%w: target %q, device %q", ErrSerialMismatch, cmd.TargetSerial, Identity(e.Serial, e.HardwareUUID)),
			"refused: command is for another device")
	}
	if !cmd.ExpiresAt.IsZero() && now().After(cmd.ExpiresAt) {
		return fail(ErrExpired, "refused: command expired before it could start")
	}
	if cmd.Kind == Wipe && !cmd.Confirmed {
		// A wipe is destructive whatever its plan: refuse before even looking at the disks.
		return fail(ErrNotConfirmed, "refused: a wipe needs the control plane's signed confirmation")
	}
	plan, err := e.Planner.Plan(ctx, cmd)
	if errors.Is(err, ErrDeferredToMDM) {
		return fail(err, "macOS: lock and wipe are delivered through MDM; the agent does not run them")
	}
	if errors.Is(err, ErrNoCryptoErase) {
		return fail(err, "no full-disk encryption to erase, and the organization does not allow a best-effort data removal")
	}
	if err != nil {
		return fail(err, "could not build a plan")
	}
	for _, s := range plan.allSteps() {
		if s.Destructive && !cmd.Confirmed {
			return fail(ErrNotConfirmed, "refused: destructive step "+s.Name+" needs the control plane's signed confirmation")
		}
	}
	_, dryRunner := e.Runner.(*DryRunner)
	mode := e.Mode
	mode.DryRun = mode.DryRun || dryRunner
	ev := &Evidence{CommandID: cmd.ID, Kind: cmd.Kind, Serial: e.Serial, HardwareUUID: e.HardwareUUID,
		WipeMethod: plan.WipeMethod, FinalAction: plan.FinalAction, Mode: mode}
	res.Evidence = ev
	res.Message = plan.Message
	if mode.DryRun {
		// Record, never run, never verify: the outcome is Simulated whatever
		// the steps would have done.
		for _, s := range plan.allSteps() {
			if dryRunner {
				_, _ = e.Runner.Run(ctx, s)
			}
			res.Steps = append(res.Steps, StepResult{Step: s, Status: StepDryRun})
		}
		res.State, res.Message, ev.CheckedAt, res.Finished = Simulated, "dry run: steps recorded, nothing executed", now().UTC(), now().UTC()
		return res
	}
	res.State = Done
	res.Steps, err = e.runSteps(ctx, plan.Steps)
	if err != nil {
		res.State, res.Error = Failed, err.Error()
	}
	if plan.Verify != nil && ctx.Err() == nil {
		ev.Checks = plan.Verify(ctx)
	}
	ev.CheckedAt = now().UTC()
	if res.State == Done {
		if bad := failedChecks(ev.Checks); bad != "" {
			res.State, res.Error = Failed, fmt.Sprintf("%v: %s", ErrUnverified, bad)
		} else if needsEvidence(cmd.Kind) && len(ev.Checks) == 0 {
			res.State, res.Error = Failed, fmt.Sprintf("%v: the plan checked nothing afterwards", ErrUnverified)
		}
	}
	res.Finished = now().UTC()
	if res.State != Done || len(plan.Final) == 0 {
		return res
	}
	if e.Commit != nil {
		if err := e.Commit(ctx, res); err != nil {
			res.Message = strings.TrimSpace(res.Message + " (result not confirmed by the server before " + plan.FinalAction + ": " + err.Error() + ")")
		}
	}
	final, _ := e.runSteps(context.WithoutCancel(ctx), plan.Final)
	res.Steps = append(res.Steps, final...)
	return res
}

// runSteps runs steps in order; it stops at the first failed step that is
// not ContinueOnError (or when ctx ends) and returns why.
func (e *Executor) runSteps(ctx context.Context, steps []Step) ([]StepResult, error) {
	var out []StepResult
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return append(out, skipped(steps[i:])...), err
		}
		o, err := e.Runner.Run(ctx, s)
		sr := StepResult{Step: s, Status: StepOK, Output: truncate(o)}
		if err != nil {
			sr.Status, sr.Error = StepFailed, truncate(err.Error())
		}
		out = append(out, sr)
		if err != nil && !s.ContinueOnError {
			return append(out, skipped(steps[i+1:])...), fmt.Errorf("step %s: %v", s.Name, err)
		}
	}
	return out, nil
}

// failedChecks describes the checks that are not OK ("" when all are).
func failedChecks(cs []Check) string {
	var bad []string
	for _, c := range cs {
		if !c.OK {
			bad = append(bad, fmt.Sprintf("%s: found %q, want %q", c.Name, c.Observed, c.Expected))
		}
	}
	return strings.Join(bad, "; ")
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
// writes atomically (writeFile).
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, s Step) (string, error) {
	if s.Write != nil {
		return "", writeFile(*s.Write)
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
