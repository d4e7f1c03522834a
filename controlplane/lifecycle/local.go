package lifecycle

import (
	"context"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Local runs: while Run is active, a step that becomes runnable on this replica (the
// next step of a chain, a step woken by a command's outcome) is also started right here,
// in a small pool, instead of only waiting for River to fetch its job. River's fetch is
// a poll on SQLite (bench/lifecycle measured 5–160 ms per step with its 200 ms poll),
// and an offboarding is a chain of steps, so the hops added up. The River job is still
// enqueued first and stays the durable path: whichever of the two claims the step
// (ClaimStep, one conditional update) runs it, the other finds it taken and does
// nothing. A local run that fails transiently leaves the step pending with its retry
// time, as a River run would; the sweeper (Tick) re-enqueues it once it is due.

// localRuns is the engine's pool of local step runs.
type localRuns struct {
	mu   sync.Mutex
	ctx  context.Context // nil while Run is not active
	slot chan struct{}
	wg   sync.WaitGroup
}

// start enables local runs under ctx; stop disables them and waits for those running.
func (l *localRuns) start(ctx context.Context, workers int) (stop func()) {
	l.mu.Lock()
	l.ctx, l.slot = ctx, make(chan struct{}, workers)
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.ctx = nil
		l.mu.Unlock()
		l.wg.Wait()
	}
}

// runLocal starts steps in free slots of the pool; the rest is left to River.
func (e *Engine) runLocal(steps []store.RunnableStep) {
	l := &e.locals
	for _, s := range steps {
		l.mu.Lock()
		ctx, slot := l.ctx, l.slot
		if ctx == nil {
			l.mu.Unlock()
			return
		}
		select {
		case slot <- struct{}{}:
		default:
			l.mu.Unlock()
			continue
		}
		l.wg.Add(1)
		l.mu.Unlock()
		go func(stepID string) {
			defer l.wg.Done()
			defer func() { <-slot }()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := e.RunStep(rctx, stepID, 1, e.cfg.MaxAttempts); err != nil && ctx.Err() == nil {
				e.log.Warn("local step run failed; it is retried when due", "step", stepID, "err", err)
			}
		}(s.StepID)
	}
}
