package hrsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ReconcileAllArgs is the periodic job: it enqueues one ReconcileArgs per
// active connection.
type ReconcileAllArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileAllArgs) Kind() string { return "hr.reconcile_all" }

// ReconcileArgs reconciles one connection. Unique by connection among jobs not
// finished, so two replicas never run it twice (and the running-run index
// guards the rest).
type ReconcileArgs struct {
	OrgID        string `json:"org_id"`
	ConnectionID string `json:"connection_id"`
}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return "hr.reconcile" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled,
	}}}
}

type reconcileAllWorker struct {
	river.WorkerDefaults[ReconcileAllArgs]
	e *Engine
}

func (w *reconcileAllWorker) Work(ctx context.Context, j *river.Job[ReconcileAllArgs]) error {
	client, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	conns, err := store.ListActiveHRConnections(ctx, w.e.db.SQL)
	if err != nil {
		return err
	}
	for _, c := range conns {
		if _, err := client.Insert(ctx, ReconcileArgs{OrgID: c.OrgID, ConnectionID: c.ID}, nil); err != nil {
			return fmt.Errorf("enqueue reconcile of %s: %w", c.ID, err)
		}
	}
	return nil
}

type reconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	e *Engine
}

func (w *reconcileWorker) Timeout(*river.Job[ReconcileArgs]) time.Duration { return 30 * time.Minute }

func (w *reconcileWorker) Work(ctx context.Context, j *river.Job[ReconcileArgs]) error {
	return w.e.Reconcile(ctx, j.Args.OrgID, j.Args.ConnectionID)
}

// Reconcile is one scheduled pass over a connection: resume closed webhooks,
// process webhook events left behind, then sync (the incremental read from
// the last checkpoint is also the backfill for a closed webhook).
func (e *Engine) Reconcile(ctx context.Context, orgID, connID string) error {
	ctx = e.actorCtx(ctx)
	c, err := store.GetHRConnection(ctx, e.db.SQL, orgID, connID)
	if err != nil || c.State != store.HRStateActive {
		return nil // disconnected since it was enqueued
	}
	if dir, err := e.directory(&c); err == nil {
		if wm, ok := dir.(hris.WebhookManager); ok {
			e.resumeClosedWebhooks(ctx, &c, wm)
		}
	}
	if err := e.sweepConnection(ctx, c.ID, 10*time.Second); err != nil {
		e.log.WarnContext(ctx, "sweep webhook events", "connection_id", c.ID, "err", err)
	}
	// Event ids only matter for deduplicating late retries; keep 30 days.
	if _, err := store.PruneHRWebhookEvents(ctx, e.db.SQL, c.ID, e.now().AddDate(0, 0, -30)); err != nil {
		e.log.WarnContext(ctx, "prune webhook events", "connection_id", c.ID, "err", err)
	}
	_, err = e.SyncNow(ctx, orgID, SyncOptions{Trigger: "schedule"})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil // a run is in progress, or the connection ended
	}
	return err
}

// resumeClosedWebhooks resumes webhooks the provider closed after failed
// deliveries (EDGE_CASES 13); what they missed is read by the sync that follows.
func (e *Engine) resumeClosedWebhooks(ctx context.Context, c *store.HRConnection, wm hris.WebhookManager) {
	hooks, err := wm.ListWebhooks(ctx, "closed")
	if err != nil {
		e.log.DebugContext(ctx, "list closed webhooks", "connection_id", c.ID, "err", err)
		return
	}
	for _, h := range hooks {
		if err := wm.ResumeWebhook(ctx, h.ID); err != nil {
			e.log.WarnContext(ctx, "resume webhook", "connection_id", c.ID, "webhook_id", h.ID, "err", err)
			continue
		}
		e.log.InfoContext(ctx, "resumed closed webhook; backfilling by polling", "connection_id", c.ID, "webhook_id", h.ID)
	}
}

// RegisterJobs adds the workers and the periodic reconcile (every
// ReconcileInterval, also once at start).
func (e *Engine) RegisterJobs(reg *jobs.Registry) {
	jobs.Add(reg, &reconcileAllWorker{e: e})
	jobs.Add(reg, &reconcileWorker{e: e})
	reg.AddPeriodic(river.NewPeriodicJob(river.PeriodicInterval(e.cfg.ReconcileInterval),
		func() (river.JobArgs, *river.InsertOpts) { return ReconcileAllArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true, ID: "hr.reconcile_all"}))
}
