package lifecycle

import (
	"context"
	"database/sql"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// StepArgs is the River job that runs one workflow step. Gen is the step's attempt
// count when it was enqueued, so a step re-run after a wait or an admin retry gets a
// fresh unique key while duplicate enqueues of the same run collapse into one job.
type StepArgs struct {
	StepID string `json:"step_id"`
	Gen    int    `json:"gen"`
}

// Kind implements river.JobArgs.
func (StepArgs) Kind() string { return "lifecycle.step" }

// InsertOpts makes step jobs unique per (step, generation).
func (StepArgs) InsertOpts() river.InsertOpts {
	// Completed jobs do not block: a step re-runs after a wait with the same Gen.
	return river.InsertOpts{Queue: QueueName, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateRetryable,
		rivertype.JobStateScheduled}}}
}

// QueueName is the River queue for lifecycle steps, separate from the default queue so
// HR sync or inventory work never delays a lock.
const QueueName = "lifecycle"

type stepWorker struct {
	river.WorkerDefaults[StepArgs]
	e *Engine
}

func (w *stepWorker) Work(ctx context.Context, j *river.Job[StepArgs]) error {
	return w.e.RunStep(ctx, j.Args.StepID, j.Attempt, j.MaxAttempts)
}

// NextRetry uses the engine's backoff (the step's retry-after time matches it).
func (w *stepWorker) NextRetry(j *river.Job[StepArgs]) time.Time {
	return time.Now().Add(w.e.cfg.Backoff(j.Attempt) + 10*time.Millisecond)
}

// Timeout bounds one step run (a SCIM call, a command queue).
func (w *stepWorker) Timeout(*river.Job[StepArgs]) time.Duration { return 2 * time.Minute }

// Register adds the step worker and the lifecycle queue to reg. workers is the queue's
// concurrency (10 when zero).
func (e *Engine) Register(reg *jobs.Registry, workers int) {
	if workers <= 0 {
		workers = 10
	}
	jobs.Add(reg, &stepWorker{e: e})
	jobs.Add(reg, &reactivateWorker{e: e})
	// A step enqueued by this process wakes River's producer at once (InsertMany
	// outside a transaction), but River then waits out a fetch cooldown, 100 ms by
	// default, per fetch. An offboarding is a chain of steps (revoke apps → lock → the
	// lock's outcome → retrieval), so that cooldown was most of the webhook → lock
	// latency (bench/lifecycle). The lifecycle queue is small; a short cooldown costs a
	// few more fetch queries in a burst (a layoff), never while idle.
	reg.Queues[QueueName] = river.QueueConfig{MaxWorkers: workers, FetchCooldown: FetchCooldown}
}

// FetchCooldown is the lifecycle queue's minimum time between two job fetches.
const FetchCooldown = 5 * time.Millisecond

// RiverQueue enqueues steps through the River client held by h.
type RiverQueue struct {
	H           *jobs.Handle
	MaxAttempts int
}

// NewRiverQueue returns a StepQueue over h; the engine's MaxAttempts applies per step.
func (e *Engine) NewRiverQueue(h *jobs.Handle) *RiverQueue {
	return &RiverQueue{H: h, MaxAttempts: e.cfg.MaxAttempts}
}

// EnqueueSteps implements StepQueue.
func (q *RiverQueue) EnqueueSteps(ctx context.Context, steps []store.RunnableStep) error {
	c := q.H.Client()
	if c == nil {
		return nil // not started yet: Tick enqueues once it is
	}
	params := make([]river.InsertManyParams, 0, len(steps))
	for _, s := range steps {
		params = append(params, river.InsertManyParams{Args: StepArgs{StepID: s.StepID, Gen: s.Gen},
			InsertOpts: &river.InsertOpts{MaxAttempts: q.MaxAttempts}})
	}
	_, err := c.InsertMany(ctx, params)
	return err
}

// InsertJobTx implements txQueue: the job commits or rolls back with tx.
func (q *RiverQueue) InsertJobTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	return q.H.InsertTx(ctx, tx, args, opts)
}

// insertsTx implements txQueue: not before the server set the client.
func (q *RiverQueue) insertsTx() bool { return q.H != nil && q.H.Client() != nil }

// txQueue is a StepQueue that can also insert a job in the caller's transaction, so
// work decided there (a reactivation) survives a crash right after the commit.
type txQueue interface {
	StepQueue
	InsertJobTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) error
	// insertsTx reports whether InsertJobTx can work now (the River client exists).
	insertsTx() bool
}

// InlineQueue runs steps synchronously in the caller's goroutine. It is for tools and
// tests that run without a job runner; a transient step error is left for the next
// Tick (the step stays pending until its retry time).
type InlineQueue struct{ E *Engine }

// EnqueueSteps implements StepQueue.
func (q InlineQueue) EnqueueSteps(ctx context.Context, steps []store.RunnableStep) error {
	for _, s := range steps {
		if err := q.E.RunStep(ctx, s.StepID, 1, q.E.cfg.MaxAttempts); err != nil {
			q.E.log.Warn("inline step failed; will retry on tick", "step", s.StepID, "err", err)
		}
	}
	return nil
}
