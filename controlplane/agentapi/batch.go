package agentapi

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// batcher groups concurrent calls into one flush per batch: at thousands of agents the
// commit, not the RPC, is the cost (performance.md). Callers wait for their batch to
// commit, so a caller that returns success knows its write is in the database. A few
// workers keep batches flowing; a full queue applies back-pressure to the callers.
type batcher[T, R any] struct {
	queue   chan *batchJob[T, R]
	max     int
	workers int
	linger  time.Duration
	// flush writes a batch and returns one result per item, in order.
	flush func(ctx context.Context, items []T) ([]R, error)
	// one, when set, retries each item of a failed batch alone, so one bad item does not
	// fail the others; without it every caller of a failed batch gets the error.
	one  func(ctx context.Context, item T) (R, error)
	jobs sync.Pool // of *batchJob[T, R]
}

type batchJob[T, R any] struct {
	ctx  context.Context
	item T
	out  R
	err  error
	// done gets one value when the job is finished. Buffered, not closed: the worker never
	// blocks on a caller that gave up, and a finished job can be reused.
	done chan struct{}
}

func newBatcher[T, R any](workers, maxBatch int, linger time.Duration, flush func(context.Context, []T) ([]R, error)) *batcher[T, R] {
	b := &batcher[T, R]{queue: make(chan *batchJob[T, R], workers*maxBatch), max: maxBatch, workers: workers, linger: linger, flush: flush}
	b.jobs.New = func() any { return &batchJob[T, R]{done: make(chan struct{}, 1)} }
	return b
}

// run flushes batches until ctx ends.
func (b *batcher[T, R]) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < b.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(ctx)
		}()
	}
	wg.Wait()
}

// apply queues an item and waits for its batch to commit.
func (b *batcher[T, R]) apply(ctx context.Context, it T) (R, error) {
	var zero R
	// Jobs are reused (a job and its channel were two allocations of every report): a job
	// goes back to the pool only once its done value was received, when no worker holds it
	// any more. A caller that gives up leaves its job to the garbage collector.
	j := b.jobs.Get().(*batchJob[T, R])
	j.ctx, j.item = ctx, it
	select {
	case b.queue <- j:
	case <-ctx.Done():
		b.release(j)
		return zero, ctx.Err()
	}
	select {
	case <-j.done:
		out, err := j.out, j.err
		b.release(j)
		return out, err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// release clears a job no worker holds and pools it.
func (b *batcher[T, R]) release(j *batchJob[T, R]) {
	var zeroT T
	var zeroR R
	j.ctx, j.item, j.out, j.err = nil, zeroT, zeroR, nil
	b.jobs.Put(j)
}

// finish hands a job back to its caller; the worker must not touch j afterwards.
func finish[T, R any](j *batchJob[T, R]) { j.done <- struct{}{} }

func (b *batcher[T, R]) work(ctx context.Context) {
	// One linger timer and one batch slice per worker, reused for every batch: a timer
	// per batch was a timer allocation and a timer-heap insertion per commit.
	w := &worker[T, R]{}
	for {
		var first *batchJob[T, R]
		select {
		case <-ctx.Done():
			w.stop()
			return
		case first = <-b.queue:
		}
		batch := b.collect(w, first)
		b.flushBatch(batch)
		clear(batch) // drop the jobs: they belong to their callers again
		w.batch = batch[:0]
	}
}

// worker is one flushing goroutine's reusable state.
type worker[T, R any] struct {
	batch  []*batchJob[T, R]
	linger *time.Timer
}

func (w *worker[T, R]) stop() {
	if w.linger != nil {
		w.linger.Stop()
	}
}

// wait arms the worker's linger timer (created on first use) and returns its channel.
// Since Go 1.23 a Reset timer never delivers a value from before the Reset, so the
// stopped or expired timer of the previous batch needs no draining.
func (w *worker[T, R]) wait(d time.Duration) <-chan time.Time {
	if w.linger == nil {
		w.linger = time.NewTimer(d)
	} else {
		w.linger.Reset(d)
	}
	return w.linger.C
}

// collect takes what is queued after first; when that is little it lingers a moment for
// more, because the database pays a fixed cost per batch (begin, statements, commit).
func (b *batcher[T, R]) collect(w *worker[T, R], first *batchJob[T, R]) []*batchJob[T, R] {
	batch := append(w.batch[:0], first)
	var linger <-chan time.Time
	defer func() {
		if linger != nil {
			w.linger.Stop()
		}
	}()
	for len(batch) < b.max {
		select {
		case j := <-b.queue:
			batch = append(batch, j)
			continue
		default:
		}
		if len(batch) >= b.max/2 {
			break
		}
		if linger == nil {
			// The linger window starts when the queue first runs dry, as it did when the
			// timer was started at the batch's first item (both are within microseconds).
			linger = w.wait(b.linger)
		}
		select {
		case j := <-b.queue:
			batch = append(batch, j)
		case <-linger:
			return batch
		}
	}
	return batch
}

func (b *batcher[T, R]) flushBatch(batch []*batchJob[T, R]) {
	live := batch[:0]
	for _, j := range batch {
		if j.ctx.Err() != nil {
			j.err = j.ctx.Err()
			finish(j)
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	items := make([]T, len(live))
	for i, j := range live {
		items[i] = j.item
	}
	// The batch is written on its own context: it carries many callers, and one caller
	// giving up must not roll back the others.
	outs, err := b.flush(context.Background(), items)
	if err == nil {
		for i, j := range live {
			j.out = outs[i]
			finish(j)
		}
		return
	}
	for _, j := range live {
		if b.one != nil {
			j.out, j.err = b.one(j.ctx, j.item)
		} else {
			j.err = err
		}
		finish(j)
	}
}

// newInventoryBatcher batches inventory reports into ApplyInventoryBatch calls.
func newInventoryBatcher(db *store.DB, workers, maxBatch int) *batcher[store.InventoryItem, store.InventoryOutcome] {
	b := newBatcher(workers, maxBatch, 5*time.Millisecond, func(ctx context.Context, items []store.InventoryItem) ([]store.InventoryOutcome, error) {
		// The same order in every batch: concurrent batches then lock rows in one order and
		// cannot deadlock each other.
		order := make([]int, len(items))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return items[order[a]].AgentID < items[order[b]].AgentID })
		sorted := make([]store.InventoryItem, len(items))
		for i, k := range order {
			sorted[i] = items[k]
		}
		outs, err := db.ApplyInventoryBatch(ctx, sorted)
		if err != nil {
			return nil, err
		}
		res := make([]store.InventoryOutcome, len(items))
		for i, k := range order {
			res[k] = outs[i]
		}
		return res, nil
	})
	b.one = func(ctx context.Context, it store.InventoryItem) (store.InventoryOutcome, error) {
		return db.ApplyInventory(ctx, it.OrgID, it.AgentID, it.Report)
	}
	return b
}

// presence is one agent stream opening (online) or closing (offline).
type presence struct {
	agentID string
	online  bool
}

// newPresenceBatcher batches the online/offline writes of stream opens and closes: one
// committed write per stream capped a reconnect storm of 10,000 agents at ~200 streams/s.
func newPresenceBatcher(db *store.DB) *batcher[presence, struct{}] {
	return newBatcher(2, 500, 5*time.Millisecond, func(ctx context.Context, items []presence) ([]struct{}, error) {
		// The last change of an agent in the batch wins (a stream closed and reopened).
		last := map[string]bool{}
		for _, p := range items {
			last[p.agentID] = p.online
		}
		var on, off []string
		for id, online := range last {
			if online {
				on = append(on, id)
			} else {
				off = append(off, id)
			}
		}
		sort.Strings(on)
		sort.Strings(off)
		if err := db.TouchAgents(ctx, time.Now(), on, off); err != nil {
			return nil, err
		}
		return make([]struct{}, len(items)), nil
	})
}
