package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// How the engine hears that something it waits for happened, instead of polling for it.
//
//   - Postgres: triggers (migration 00402) NOTIFY lanyard_outbox when outbox rows commit
//     and lanyard_command_outcomes (payload schema:command id) when a device command
//     reaches an end state. Each replica LISTENs on a dedicated connection.
//   - SQLite: one process owns the file, so store.DB.AfterCommit signals every commit of
//     this process; the engine then reads the outbox and re-reads the commands its
//     waiting steps wait for (both cheap, indexed queries).
//
// A notification only wakes the loop; what it does is the same work the poll does, with
// the same guarantees (each event handled once through lifecycle_handled_events, a step
// run once per claim). A missed notification (listener reconnecting, a write outside
// store.DB.InTx) costs at most PollInterval, the backstop.

const (
	notifyOutbox   = "lanyard_outbox"
	notifyCommands = "lanyard_command_outcomes"
)

// wakeups collects what notifications asked the loop to look at, coalesced: the loop
// takes everything at once, so a burst of commits costs one pass.
type wakeups struct {
	kick chan struct{}

	mu     sync.Mutex
	outbox bool            // new outbox rows
	scan   bool            // re-read every waiting command (cause unknown)
	ids    map[string]bool // commands that reached an end state
}

func (w *wakeups) init() {
	w.kick = make(chan struct{}, 1)
	w.ids = map[string]bool{}
}

func (w *wakeups) signal(outbox, scan bool, commandIDs ...string) {
	w.mu.Lock()
	w.outbox = w.outbox || outbox
	w.scan = w.scan || scan
	for _, id := range commandIDs {
		w.ids[id] = true
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *wakeups) take() (outbox, scan bool, ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	outbox, scan = w.outbox, w.scan
	for id := range w.ids {
		ids = append(ids, id)
	}
	w.outbox, w.scan = false, false
	clear(w.ids)
	return outbox, scan, ids
}

// Notify wakes the engine's loop to read the outbox and re-read waiting commands now
// (for callers that know something changed, e.g. a test or a tool writing outside InTx).
func (e *Engine) Notify() { e.notes.signal(true, true) }

// listen starts following notifications for Run and returns the function that stops it.
func (e *Engine) listen(ctx context.Context) (stop func()) {
	if e.db.Pool == nil {
		return e.db.AfterCommit(func() { e.notes.signal(true, true) })
	}
	return e.db.Listen(ctx, e.log, []string{notifyOutbox, notifyCommands}, func() { e.notes.signal(true, true) },
		func(channel, payload, schema string) {
			switch channel {
			case notifyOutbox:
				if payload == schema {
					e.notes.signal(true, false)
				}
			case notifyCommands:
				if s, id, ok := strings.Cut(payload, ":"); ok && s == schema {
					e.notes.signal(false, false, id)
				}
			}
		})
}

// commandStepKinds are the steps that wait for device commands.
var commandStepKinds = []string{string(StepLockDevices), string(StepWipeDevices)}

func isCommandStep(kind string) bool {
	return kind == string(StepLockDevices) || kind == string(StepWipeDevices)
}

// WakeCommandSteps re-reads the commands every waiting or blocked lock and wipe step
// waits for, and wakes the steps whose commands reached an end state they have not
// seen. It returns how many steps it woke. The loop calls it on every backstop tick and
// on SQLite after commits; tests call it to stand in for the loop.
func (e *Engine) WakeCommandSteps(ctx context.Context) (int, error) {
	steps, err := store.StepsAwaitingCommands(ctx, e.db.SQL, commandStepKinds, 2000)
	if err != nil {
		return 0, err
	}
	return e.wakeIfChanged(ctx, steps)
}

// wakeForCommands wakes the steps that sent these commands (from a NOTIFY).
func (e *Engine) wakeForCommands(ctx context.Context, commandIDs []string) (int, error) {
	outs, err := store.CommandOutcomes(ctx, e.db.SQL, commandIDs)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	var stepIDs []string
	for _, c := range outs {
		if id := stepOfKey(c.IdempotencyKey); id != "" && !seen[id] {
			seen[id] = true
			stepIDs = append(stepIDs, id)
		}
	}
	return e.wakeSteps(ctx, stepIDs)
}

// wakeSteps is wakeIfChanged for steps by id; ids that are not waiting command steps
// (an admin's command, a step that moved on) are ignored.
func (e *Engine) wakeSteps(ctx context.Context, stepIDs []string) (int, error) {
	var steps []store.WorkflowStep
	for _, id := range stepIDs {
		st, err := store.GetStep(ctx, e.db.SQL, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if isCommandStep(st.Kind) && (st.State == string(StepWaiting) || st.State == string(StepBlocked)) {
			steps = append(steps, st)
		}
	}
	return e.wakeIfChanged(ctx, steps)
}

// wakeIfChanged wakes each step one of whose commands is now in an end state other than
// the state the step recorded for it. A step records the states it saw, so it is woken
// once per outcome, never in a loop; one it already woke is claimed once (ClaimStep).
func (e *Engine) wakeIfChanged(ctx context.Context, steps []store.WorkflowStep) (int, error) {
	if len(steps) == 0 {
		return 0, nil
	}
	var ids []string
	for _, st := range steps {
		for _, r := range deviceResults(st.Output) {
			if r.CommandID != "" {
				ids = append(ids, r.CommandID)
			}
		}
	}
	states, err := store.CommandOutcomes(ctx, e.db.SQL, ids)
	if err != nil {
		return 0, err
	}
	var run []store.RunnableStep
	woken := 0
	for _, st := range steps {
		changed := false
		for _, r := range deviceResults(st.Output) {
			if c, ok := states[r.CommandID]; ok && (Command{State: c.State}).Terminal() && c.State != r.State {
				changed = true
			}
		}
		if !changed {
			continue
		}
		ctx := systemCtx(ctx)
		err := e.db.InTx(ctx, func(tx *sql.Tx) error {
			cur, err := store.GetStep(ctx, tx, st.ID)
			if err != nil {
				return err
			}
			ok, err := e.wakeStep(ctx, tx, cur)
			if err != nil || !ok {
				return err
			}
			woken++
			w, err := store.GetWorkflow(ctx, tx, "", cur.WorkflowID)
			if err == nil && w.State == string(WorkflowRunning) {
				run = append(run, store.RunnableStep{OrgID: cur.OrgID, StepID: cur.ID, Gen: cur.Attempts})
			}
			return err
		})
		if err != nil {
			return woken, err
		}
	}
	e.enqueue(ctx, run)
	return woken, nil
}
