package service

import (
	"context"
	"errors"

	"github.com/riverqueue/river"

	"github.com/lanyardhq/lanyard/controlplane/jobs"
)

// CheckpointArgs is the periodic job that signs due checkpoints.
type CheckpointArgs struct{}

// Kind implements river.JobArgs.
func (CheckpointArgs) Kind() string { return "audit.checkpoint" }

type checkpointWorker struct {
	river.WorkerDefaults[CheckpointArgs]
	s *Service
}

// Work signs what is due. A broken chain is not retried (it stays broken until someone
// looks; the error log and `lanyard admin audit verify` say where); other errors are.
func (w *checkpointWorker) Work(ctx context.Context, _ *river.Job[CheckpointArgs]) error {
	_, err := w.s.CheckpointDue(ctx, false)
	if errors.Is(err, ErrBroken) {
		return nil
	}
	return err
}

// RegisterJobs adds the checkpoint worker and its schedule (every Tick, and at start).
func (s *Service) RegisterJobs(reg *jobs.Registry) {
	jobs.Add(reg, &checkpointWorker{s: s})
	reg.AddPeriodic(river.NewPeriodicJob(river.PeriodicInterval(s.cfg.Tick),
		func() (river.JobArgs, *river.InsertOpts) { return CheckpointArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true, ID: "audit.checkpoint"}))
}
