package lifecycle

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Config tunes the engine. Zero values get defaults.
type Config struct {
	// Lease is how long a claimed step is held before another replica may take it over
	// (a replica that died mid-step). Default 5 min.
	Lease time.Duration
	// Recheck is how often a waiting step re-checks reality (order delivered, device
	// checked in) besides being woken by events. Default 1 min (clock time).
	Recheck time.Duration
	// CommandRecheck is how often a lock/wipe step re-reads its commands' states while
	// some are still on their way. It is the backstop only: a command reaching an end
	// state wakes the step at once (NOTIFY on Postgres, a commit signal on SQLite, see
	// notify.go). Default 30 s (clock time).
	CommandRecheck time.Duration
	// SweepAfter is how long a runnable step may sit unchanged before Tick enqueues it
	// again (it was enqueued when it became runnable; this catches a lost enqueue).
	// Default 10 s (wall time).
	SweepAfter time.Duration
	// MaxAttempts per step before it fails for an admin. Default 8.
	MaxAttempts int
	// Backoff returns the delay before retry n (1-based). Default: 2^n s, capped at 10 min.
	Backoff func(attempt int) time.Duration
	// GapGrace is how long an outbox gap (a seq not yet visible) blocks the cursor
	// before it is taken as a rolled-back transaction. Default 2 min (wall time).
	GapGrace time.Duration
	// OnboardingGrace: a hire whose start date is further in the past than this is an
	// existing employee seen at the first HR import, and gets no onboarding. Default 14 days.
	OnboardingGrace time.Duration
	// PoisonAfter is how many times an outbox event may fail to be handled before it is
	// recorded as failed (audit lifecycle.event.failed) and skipped. Default 5.
	PoisonAfter int
	// TaskDue is the default due time of manual tasks. Default 48 h.
	TaskDue time.Duration
	// ReminderEvery is the retrieval reminder interval. Default 72 h.
	ReminderEvery time.Duration
	// DefaultEquipmentType is used when an employee has none set. Default "laptop".
	DefaultEquipmentType string
	// DefaultAssignee of manual tasks. Default "it".
	DefaultAssignee string
	// Consumer names this engine's outbox cursor. Default "lifecycle".
	Consumer string
	// PollOnly runs the loop on its poll alone, without notifications: for a Postgres
	// behind a pooler that cannot LISTEN (PgBouncer in transaction mode), and to measure
	// the chain without them (bench/lifecycle). Nothing but the poll wakes the loop or
	// a waiting step, and steps run only as River jobs; everything still happens, only
	// later.
	PollOnly bool
	// LocalWorkers bounds the steps this replica starts itself, beside their River
	// jobs, while Run is active (local.go). Default 4.
	LocalWorkers int
}

func (c *Config) defaults() {
	if c.Lease == 0 {
		c.Lease = 5 * time.Minute
	}
	if c.Recheck == 0 {
		c.Recheck = time.Minute
	}
	if c.CommandRecheck == 0 {
		c.CommandRecheck = 30 * time.Second
	}
	if c.SweepAfter == 0 {
		c.SweepAfter = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.Backoff == nil {
		c.Backoff = func(n int) time.Duration {
			if n > 9 {
				return 10 * time.Minute
			}
			return time.Duration(1<<n) * time.Second
		}
	}
	if c.GapGrace == 0 {
		c.GapGrace = 2 * time.Minute
	}
	if c.OnboardingGrace == 0 {
		c.OnboardingGrace = 14 * 24 * time.Hour
	}
	if c.PoisonAfter == 0 {
		c.PoisonAfter = 5
	}
	if c.TaskDue == 0 {
		c.TaskDue = 48 * time.Hour
	}
	if c.ReminderEvery == 0 {
		c.ReminderEvery = 72 * time.Hour
	}
	if c.DefaultEquipmentType == "" {
		c.DefaultEquipmentType = "laptop"
	}
	if c.DefaultAssignee == "" {
		c.DefaultAssignee = "it"
	}
	if c.Consumer == "" {
		c.Consumer = "lifecycle"
	}
	if c.LocalWorkers <= 0 {
		c.LocalWorkers = 4
	}
}

// Engine runs lifecycle workflows.
type Engine struct {
	db       *store.DB
	clock    Clock
	cfg      Config
	queue    StepQueue
	commands DeviceCommander
	enroller Enroller
	apps     AppDirectory
	vendors  map[string]VendorAdapter
	keys     Keyring
	log      *slog.Logger

	mu       sync.Mutex
	failures map[string]int // outbox event id → failed handling attempts

	notes  wakeups   // what the notifications asked the loop to look at (notify.go)
	locals localRuns // steps started on this replica while Run is active (local.go)

	stepRuns *prometheus.CounterVec // kind, outcome
	stepSecs *prometheus.HistogramVec
}

// WithMetrics registers the engine's metrics (step runs by kind and outcome, step run
// duration) on reg.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(e *Engine) {
		e.stepRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lanyard_lifecycle_step_runs_total",
			Help: "Lifecycle step runs by step kind and outcome (succeeded, waiting, retrying, failed)."}, []string{"kind", "outcome"})
		e.stepSecs = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lanyard_lifecycle_step_run_seconds",
			Help: "Duration of one lifecycle step run.", Buckets: prometheus.DefBuckets}, []string{"kind"})
		reg.MustRegister(e.stepRuns, e.stepSecs)
	}
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock (default: system clock).
func WithClock(c Clock) Option { return func(e *Engine) { e.clock = c } }

// WithConfig sets tunables.
func WithConfig(c Config) Option { return func(e *Engine) { e.cfg = c } }

// WithCommander sets the device command model (lock, wipe).
func WithCommander(c DeviceCommander) Option { return func(e *Engine) { e.commands = c } }

// WithEnroller sets the enrollment provider (ADE, enrollment links).
func WithEnroller(en Enroller) Option { return func(e *Engine) { e.enroller = en } }

// WithApps sets the app directory (rules and connectors).
func WithApps(a AppDirectory) Option { return func(e *Engine) { e.apps = a } }

// WithVendor adds a procurement vendor adapter (the manual one is always present).
func WithVendor(v VendorAdapter) Option { return func(e *Engine) { e.vendors[v.Name()] = v } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithQueue sets the step queue. Without one, steps run inline in the caller's
// goroutine (used by `lanyard` tools and some tests); production uses River.
func WithQueue(q StepQueue) Option { return func(e *Engine) { e.queue = q } }

// New builds an engine over db.
func New(db *store.DB, opts ...Option) *Engine {
	e := &Engine{db: db, clock: domain.SystemClock{}, vendors: map[string]VendorAdapter{"manual": ManualVendor{}},
		log: slog.Default()}
	for _, o := range opts {
		o(e)
	}
	e.cfg.defaults()
	e.log = e.log.With("component", "lifecycle")
	e.notes.init()
	return e
}

// SetQueue sets the step queue after construction (the River client needs the engine's
// workers first, and the engine needs the client to enqueue).
func (e *Engine) SetQueue(q StepQueue) { e.queue = q }

// Config returns the effective configuration.
func (e *Engine) Config() Config { return e.cfg }

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// systemCtx marks the actor of engine work for audit rows.
func systemCtx(ctx context.Context) context.Context {
	if domain.ActorFrom(ctx).ID != "system:unknown" {
		return ctx
	}
	return domain.WithActor(ctx, domain.Actor{ID: "system:lifecycle"})
}

// enqueue hands runnable steps to the queue, after the transaction that made them
// runnable has committed. A failure is logged: the sweeper (Tick) enqueues them again.
func (e *Engine) enqueue(ctx context.Context, steps []store.RunnableStep) {
	if len(steps) == 0 || e.queue == nil {
		return
	}
	if err := e.queue.EnqueueSteps(ctx, steps); err != nil {
		e.log.Warn("enqueue steps; the sweeper will retry", "err", err, "steps", len(steps))
	}
	e.runLocal(steps)
}

// wfData is what steps pass to each other, stored as the workflow's data.
type wfData struct {
	EquipmentType string   `json:"equipment_type,omitempty"`
	DeviceID      string   `json:"device_id,omitempty"`
	OrderID       string   `json:"order_id,omitempty"`
	Devices       []string `json:"devices,omitempty"`
	Retrievals    []string `json:"retrievals,omitempty"`
	AppAccess     bool     `json:"app_access"`
	// Rounds counts, per "stepID:deviceID", the admin retries of a lock or wipe whose
	// command ended without being done; each round sends a new command (commandKey).
	Rounds map[string]int `json:"rounds,omitempty"`
	// Cancel is the report written when a started workflow is cancelled.
	Cancel *CancelReport `json:"cancel,omitempty"`
	// Reactivation is how far the reactivation of the accounts a cancelled
	// offboarding suspended has come (reactivate.go).
	Reactivation *Reactivation `json:"reactivation,omitempty"`
}

// CancelReport says what a cancelled workflow had already done and how to undo it.
type CancelReport struct {
	Reason      string   `json:"reason"`
	AlreadyDone []string `json:"already_done"`
	Stopped     []string `json:"stopped"`
	Reenable    []string `json:"reenable,omitempty"`
}

func parseData(raw json.RawMessage) wfData {
	var d wfData
	_ = json.Unmarshal(raw, &d)
	return d
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

// ---- creating and scheduling workflows ----

// StartOptions describe a new workflow.
type StartOptions struct {
	Kind       Kind
	EmployeeID string
	RunAt      time.Time // zero = now
	TriggerID  string
	Reason     string
}

// Start creates a workflow in the caller's transaction and returns it. A second open
// workflow of the kind for the employee is store.ErrConflict.
func (e *Engine) startTx(ctx context.Context, tx *sql.Tx, org domain.Org, o StartOptions) (store.Workflow, error) {
	now := e.clock.Now()
	if o.RunAt.IsZero() || o.RunAt.Before(now) {
		o.RunAt = now
	}
	emp, err := store.GetEmployee(ctx, tx, org.ID, o.EmployeeID)
	if err != nil {
		return store.Workflow{}, err
	}
	d := wfData{AppAccess: org.Plan.Allows(domain.FeatureAppAccess)}
	if o.Kind == KindOnboarding {
		d.EquipmentType = emp.EquipmentType
		if d.EquipmentType == "" {
			d.EquipmentType = e.cfg.DefaultEquipmentType
		}
	}
	w := store.Workflow{OrgID: org.ID, Kind: string(o.Kind), EmployeeID: o.EmployeeID, State: string(WorkflowScheduled),
		RunAt: o.RunAt, TriggerEventID: o.TriggerID, Reason: o.Reason, Data: mustJSON(d)}
	var kinds []string
	for _, k := range Plan(o.Kind) {
		kinds = append(kinds, string(k))
	}
	if err := store.InsertWorkflow(ctx, tx, &w, kinds); err != nil {
		return w, err
	}
	if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, org.ID, "lifecycle.workflow.created", "workflow", w.ID, nil,
		map[string]any{"kind": w.Kind, "employee_id": w.EmployeeID, "run_at": w.RunAt, "reason": w.Reason})); err != nil {
		return w, err
	}
	return w, nil
}

// StartWorkflow creates a workflow (admin-initiated) and, if due, starts it.
func (e *Engine) StartWorkflow(ctx context.Context, orgID string, o StartOptions) (store.Workflow, error) {
	ctx = systemCtx(ctx)
	var w store.Workflow
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		org, err := store.GetOrg(ctx, tx, orgID)
		if err != nil {
			return err
		}
		w, err = e.startTx(ctx, tx, org, o)
		return err
	})
	if err != nil {
		return w, err
	}
	if _, err := e.Tick(ctx); err != nil {
		return w, err
	}
	return store.GetWorkflow(ctx, e.db.SQL, orgID, w.ID)
}

// Tick does the time-driven work: starts scheduled workflows whose time has come, wakes
// waiting steps whose re-check time passed, and (re)enqueues every runnable step. It is
// safe to call from every replica; claims make the work happen once.
func (e *Engine) Tick(ctx context.Context) (int, error) {
	ctx = systemCtx(ctx)
	now := e.clock.Now()
	due, err := store.DueWorkflows(ctx, e.db.SQL, now, 500)
	if err != nil {
		return 0, err
	}
	var run []store.RunnableStep
	for _, w := range due {
		err := e.db.InTx(ctx, func(tx *sql.Tx) error {
			ok, err := store.SetWorkflowState(ctx, tx, w.ID, []string{string(WorkflowScheduled)}, string(WorkflowRunning), "")
			if err != nil || !ok {
				return err
			}
			if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.workflow.started", "workflow", w.ID, nil,
				map[string]any{"kind": w.Kind, "employee_id": w.EmployeeID})); err != nil {
				return err
			}
			first, err := e.advanceTx(ctx, tx, w.ID)
			run = append(run, first...)
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	woken, err := e.wakeDue(ctx, now)
	if err != nil {
		return 0, err
	}
	run = append(run, woken...)
	// Backstop: runnable steps nobody enqueued (a crash between commit and enqueue).
	wall := domain.Now()
	lost, err := store.DueSteps(ctx, e.db.SQL, now, wall, wall.Add(-e.cfg.SweepAfter), 1000)
	if err != nil {
		return 0, err
	}
	run = append(run, lost...)
	e.enqueue(ctx, run)
	return len(run), nil
}

// wakeDue moves waiting steps whose re-check time has come back to pending and returns
// those of running workflows for enqueueing.
func (e *Engine) wakeDue(ctx context.Context, now time.Time) ([]store.RunnableStep, error) {
	ids, err := store.QueryStrings(ctx, e.db.SQL, `SELECT s.id FROM lifecycle_steps s WHERE s.state IN ('waiting', 'blocked') AND s.not_before IS NOT NULL
		AND s.not_before <= $1 ORDER BY s.id LIMIT 1000`, now.UTC())
	if err != nil {
		return nil, fmt.Errorf("due waiting steps: %w", err)
	}
	var run []store.RunnableStep
	for _, id := range ids {
		err := e.db.InTx(ctx, func(tx *sql.Tx) error {
			st, err := store.GetStep(ctx, tx, id)
			if err != nil {
				return err
			}
			ok, err := e.wakeStep(ctx, tx, st)
			if err != nil || !ok {
				return err
			}
			w, err := store.GetWorkflow(ctx, tx, "", st.WorkflowID)
			if err == nil && w.State == string(WorkflowRunning) {
				run = append(run, store.RunnableStep{OrgID: st.OrgID, StepID: st.ID, Gen: st.Attempts})
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return run, nil
}

// PollInterval is how often the loop reads the outbox, runs timers and re-reads the
// commands that waiting steps wait for even when no notification came. It is the
// backstop: new outbox rows and command outcomes wake the loop at once (notify.go), so
// it bounds only the delay of something announced while the listener was down, and of
// clock-driven work (a scheduled offboarding's start time, retrieval reminders).
const PollInterval = time.Second

// Start runs the engine's loop (outbox + timers + command outcomes) until ctx ends; the
// server runs it as a capability background loop on every replica.
func (e *Engine) Start(ctx context.Context) error {
	e.Run(ctx, PollInterval)
	return ctx.Err()
}

// Run follows the notifications (LISTEN on Postgres, commit signals on SQLite) and
// handles what they announce as it arrives; every interval it also consumes the outbox,
// ticks and re-reads every waiting command, whatever the notifications said.
func (e *Engine) Run(ctx context.Context, interval time.Duration) {
	if !e.cfg.PollOnly {
		stop := e.listen(ctx)
		defer stop()
		stopLocal := e.locals.start(ctx, e.cfg.LocalWorkers)
		defer stopLocal()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	tick := true
	for {
		e.pass(ctx, tick)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick = true
		case <-e.notes.kick:
			tick = false
		}
	}
}

// pass is one round of the loop. tick: the backstop's turn, which re-reads everything.
func (e *Engine) pass(ctx context.Context, tick bool) {
	outbox, scan, ids := e.notes.take()
	if tick || outbox {
		if _, err := e.ConsumeOutbox(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("consume outbox", "err", err)
		}
	}
	if tick {
		if _, err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("tick", "err", err)
		}
	}
	var err error
	switch {
	case tick || scan:
		_, err = e.WakeCommandSteps(ctx)
	case len(ids) > 0:
		_, err = e.wakeForCommands(ctx, ids)
	}
	if err != nil && ctx.Err() == nil {
		e.log.Error("wake steps for command outcomes", "err", err)
	}
}

// ---- running steps ----

// permanentError marks a failure retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so the step fails at once instead of being retried.
func Permanent(err error) error { return permanentError{err} }

// outcome is what a step handler decided.
type outcome struct {
	state  StepState // succeeded, waiting, blocked
	output any
	// blocked sums up, for the step's last_error, why a blocked step needs a person.
	blocked string
	// recheck: when waiting, re-run the handler at this clock time (zero: only on wake).
	recheck time.Time
	tasks   []store.LifecycleTask
	data    *wfData // non-nil: replace workflow data
	// retryAfter: on a transient error, wait at least this long (a target's Retry-After).
	retryAfter time.Duration
}

// ErrStepBusy is returned by RunStep when the step could not be claimed (another
// worker holds it, it already finished, or its workflow is not running).
var ErrStepBusy = errors.New("step not claimable")

// RunStep runs one step once. attempt/maxAttempts come from the job runner (River);
// a transient error with attempts left is returned so the runner retries with backoff;
// otherwise the step fails for an admin and RunStep returns nil.
func (e *Engine) RunStep(ctx context.Context, stepID string, attempt, maxAttempts int) error {
	ctx = systemCtx(ctx)
	token := newToken()
	wall := domain.Now()
	var w store.Workflow
	var st store.WorkflowStep
	claimed := false
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := store.ClaimStep(ctx, tx, stepID, token, e.clock.Now(), wall, wall.Add(e.cfg.Lease))
		if err != nil || !ok {
			return err
		}
		claimed = true
		if st, err = store.GetStep(ctx, tx, stepID); err != nil {
			return err
		}
		if w, err = store.GetWorkflow(ctx, tx, "", st.WorkflowID); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.step.started", "workflow_step", st.ID, nil,
			map[string]any{"workflow_id": w.ID, "kind": st.Kind, "attempt": st.Attempts}))
	})
	if err != nil {
		return err
	}
	if !claimed {
		return nil
	}
	began := time.Now()
	out, runErr := e.execute(ctx, w, st)
	if e.stepSecs != nil {
		e.stepSecs.WithLabelValues(st.Kind).Observe(time.Since(began).Seconds())
	}
	return e.finish(ctx, w, st, token, out, runErr, attempt, maxAttempts)
}

func (e *Engine) execute(ctx context.Context, w store.Workflow, st store.WorkflowStep) (out outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("step %s panicked: %v", st.Kind, r))
		}
	}()
	rc, err := e.loadRun(ctx, w, st)
	if err != nil {
		return out, err
	}
	h, ok := handlers[StepKind(st.Kind)]
	if !ok {
		return out, Permanent(fmt.Errorf("unknown step kind %q", st.Kind))
	}
	return h(e, ctx, rc)
}

func (e *Engine) finish(ctx context.Context, w store.Workflow, st store.WorkflowStep, token string, out outcome, runErr error, attempt, maxAttempts int) error {
	var next []store.RunnableStep
	var retErr error
	action := ""
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		var u store.StepUpdate
		switch {
		case runErr != nil:
			var perm permanentError
			// The step's own attempt count decides: River's resets when the sweeper
			// enqueues a fresh job for the same step.
			final := errors.As(runErr, &perm) || st.Failures+1 >= e.cfg.MaxAttempts
			u.LastError = runErr.Error()
			if out.output != nil {
				u.Output = mustJSON(out.output)
			}
			if final {
				u.State, action = string(StepFailed), "lifecycle.step.failed"
			} else {
				// Back to pending, not eligible before the runner's retry time.
				u.State, action = string(StepPending), "lifecycle.step.retrying"
				retErr = runErr
			}
		case out.state == StepWaiting || out.state == StepBlocked:
			u.State, action = string(out.state), "lifecycle.step."+string(out.state)
			u.Output = mustJSON(out.output)
			u.LastError = out.blocked
			if !out.recheck.IsZero() {
				u.NotBefore = &out.recheck
			}
		default:
			u.State, action = string(StepSucceeded), "lifecycle.step.succeeded"
			u.Output = mustJSON(out.output)
		}
		ok, err := store.FinishStep(ctx, tx, st.ID, token, u)
		if err != nil {
			return err
		}
		if !ok {
			// Lease lost to another replica: it owns the outcome now.
			retErr, action = nil, ""
			return nil
		}
		if u.State == string(StepPending) && retErr != nil {
			retry := domain.Now().Add(max(e.cfg.Backoff(st.Failures+1), out.retryAfter))
			if _, err := tx.ExecContext(ctx, `UPDATE lifecycle_steps SET lease_until = $1 WHERE id = $2`, retry.UTC(), st.ID); err != nil {
				return err
			}
		}
		// Consecutive failures decide when a step gives up; any progress resets them.
		failures := 0
		if runErr != nil {
			failures = st.Failures + 1
		}
		if _, err := tx.ExecContext(ctx, `UPDATE lifecycle_steps SET failures = $1 WHERE id = $2`, failures, st.ID); err != nil {
			return err
		}
		if out.data != nil {
			if err := store.SetWorkflowData(ctx, tx, w.ID, mustJSON(out.data)); err != nil {
				return err
			}
		}
		for i := range out.tasks {
			t := out.tasks[i]
			t.OrgID, t.WorkflowID, t.StepID = w.OrgID, w.ID, st.ID
			if t.Assignee == "" {
				t.Assignee = e.cfg.DefaultAssignee
			}
			if t.DueAt == nil {
				due := e.clock.Now().Add(e.cfg.TaskDue)
				t.DueAt = &due
			}
			if err := store.InsertTask(ctx, tx, &t); err != nil {
				return err
			}
			if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.task.created", "task", t.ID, nil, t)); err != nil {
				return err
			}
		}
		auditAfter := map[string]any{"workflow_id": w.ID, "kind": st.Kind, "attempt": st.Attempts, "state": u.State}
		if u.LastError != "" {
			auditAfter["error"] = u.LastError
		}
		if out.output != nil {
			auditAfter["output"] = out.output
		}
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, action, "workflow_step", st.ID, nil, auditAfter)); err != nil {
			return err
		}
		switch u.State {
		case string(StepFailed):
			if _, err := store.SetWorkflowState(ctx, tx, w.ID, []string{string(WorkflowRunning)}, string(WorkflowFailed),
				fmt.Sprintf("step %s failed: %s", st.Kind, u.LastError)); err != nil {
				return err
			}
			return store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.workflow.failed", "workflow", w.ID, nil,
				map[string]any{"step": st.Kind, "error": u.LastError}))
		case string(StepSucceeded):
			var err error
			next, err = e.advanceTx(ctx, tx, w.ID)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if e.stepRuns != nil && action != "" {
		e.stepRuns.WithLabelValues(st.Kind, strings.TrimPrefix(action, "lifecycle.step.")).Inc()
	}
	e.enqueue(ctx, next)
	if (action == "lifecycle.step.waiting" || action == "lifecycle.step.blocked") && isCommandStep(st.Kind) && !e.cfg.PollOnly {
		// A command may have ended while this run was in flight: its notification found
		// the step running and left it. Look once more now that the step waits.
		if _, err := e.wakeSteps(ctx, []string{st.ID}); err != nil {
			e.log.Warn("re-check step commands; the poll will", "step", st.ID, "err", err)
		}
	}
	return retErr
}

// advanceTx starts the next step of a workflow whose steps up to now are done, or
// completes the workflow. It returns the steps to enqueue.
func (e *Engine) advanceTx(ctx context.Context, tx *sql.Tx, workflowID string) ([]store.RunnableStep, error) {
	w, err := store.GetWorkflow(ctx, tx, "", workflowID)
	if err != nil {
		return nil, err
	}
	if WorkflowState(w.State) != WorkflowRunning {
		return nil, nil
	}
	for _, s := range w.Steps {
		switch StepState(s.State) {
		case StepSucceeded, StepSkipped:
			continue
		case StepPending:
			return []store.RunnableStep{{OrgID: w.OrgID, StepID: s.ID, Gen: s.Attempts}}, nil
		default:
			return nil, nil // running, waiting, failed: nothing to start
		}
	}
	ok, err := store.SetWorkflowState(ctx, tx, w.ID, []string{string(WorkflowRunning)}, string(WorkflowSucceeded), "")
	if err != nil || !ok {
		return nil, err
	}
	return nil, store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.workflow.succeeded", "workflow", w.ID, nil,
		map[string]any{"kind": w.Kind, "employee_id": w.EmployeeID}))
}

// wake moves a waiting step of kind in the employee's open workflow back to pending
// and enqueues it (an event or a person finished what it waited for).
func (e *Engine) wake(ctx context.Context, orgID, employeeID string, kind Kind, step StepKind) error {
	var run []store.RunnableStep
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		run, err = e.wakeTx(ctx, tx, orgID, employeeID, kind, step)
		return err
	})
	if err == nil {
		e.enqueue(ctx, run)
	}
	return err
}

// wakeStep moves a waiting or blocked step back to pending so it runs again (an event, a
// person or a command outcome changed what it waits for). Output and last_error stay
// until the run replaces them, so the admin keeps seeing why it was blocked.
func (e *Engine) wakeStep(ctx context.Context, tx *sql.Tx, st store.WorkflowStep) (bool, error) {
	return store.SetStepState(ctx, tx, st.ID, []string{string(StepWaiting), string(StepBlocked)},
		store.StepUpdate{State: string(StepPending), Output: st.Output, LastError: st.LastError})
}
