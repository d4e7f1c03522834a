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
	one func(ctx context.Context, item T) (R, error)
}

type batchJob[T, R any] struct {
	ctx  context.Context
	item T
	out  R
	err  error
	done chan struct{}
}

func newBatcher[T, R any](workers, maxBatch int, linger time.Duration, flush func(context.Context, []T) ([]R, error)) *batcher[T, R] {
	return &batcher[T, R]{queue: make(chan *batchJob[T, R], workers*maxBatch), max: maxBatch, workers: workers, linger: linger, flush: flush}
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
	j := &batchJob[T, R]{ctx: ctx, item: it, done: make(chan struct{})}
	select {
	case b.queue <- j:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case <-j.done:
		return j.out, j.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (b *batcher[T, R]) work(ctx context.Context) {
	for {
		var first *batchJob[T, R]
		select {
		case <-ctx.Done():
			return
		case first = <-b.queue:
		}
		b.flushBatch(b.collect(first))
	}
}

// collect takes what is queued after first; when that is little it lingers a moment for
// more, because the database pays a fixed cost per batch (begin, statements, commit).
func (b *batcher[T, R]) collect(first *batchJob[T, R]) []*batchJob[T, R] {
	batch := []*batchJob[T, R]{first}
	linger := time.NewTimer(b.linger)
	defer linger.Stop()
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
		select {
		case j := <-b.queue:
			batch = append(batch, j)
		case <-linger.C:
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
			close(j.done)
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
			close(j.done)
		}
		return
	}
	for _, j := range live {
		if b.one != nil {
			j.out, j.err = b.one(j.ctx, j.item)
		} else {
			j.err = err
		}
		close(j.done)
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
