package agentapi

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// inventoryBatcher groups concurrent inventory reports into one transaction per batch: at
// thousands of reports per second the commit, not the RPC, is the cost (performance.md).
// A few workers keep batches flowing; a full queue applies back-pressure to the RPCs.
type inventoryBatcher struct {
	db      *store.DB
	queue   chan *invJob
	max     int
	workers int
	linger  time.Duration
}

type invJob struct {
	ctx  context.Context
	item store.InventoryItem
	out  store.InventoryOutcome
	err  error
	done chan struct{}
}

func newInventoryBatcher(db *store.DB, workers, maxBatch int) *inventoryBatcher {
	return &inventoryBatcher{db: db, queue: make(chan *invJob, workers*maxBatch), max: maxBatch, workers: workers, linger: 2 * time.Millisecond}
}

// run applies batches until ctx ends (Server.Start runs it).
func (b *inventoryBatcher) run(ctx context.Context) {
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

// apply queues a report and waits for its batch to commit.
func (b *inventoryBatcher) apply(ctx context.Context, it store.InventoryItem) (store.InventoryOutcome, error) {
	j := &invJob{ctx: ctx, item: it, done: make(chan struct{})}
	select {
	case b.queue <- j:
	case <-ctx.Done():
		return store.InventoryOutcome{}, ctx.Err()
	}
	select {
	case <-j.done:
		return j.out, j.err
	case <-ctx.Done():
		return store.InventoryOutcome{}, ctx.Err()
	}
}

func (b *inventoryBatcher) work(ctx context.Context) {
	for {
		var first *invJob
		select {
		case <-ctx.Done():
			return
		case first = <-b.queue:
		}
		batch := []*invJob{first}
		// Take what is queued; when that is little, linger a moment for more: per batch
		// the database pays a fixed cost (begin, read, write, commit).
		linger := time.NewTimer(b.linger)
	fill:
		for len(batch) < b.max {
			select {
			case j := <-b.queue:
				batch = append(batch, j)
				continue
			default:
			}
			if len(batch) >= b.max/4 {
				break
			}
			select {
			case j := <-b.queue:
				batch = append(batch, j)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
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
			continue
		}
		// The same order in every batch: concurrent batches then lock rows in one order and
		// cannot deadlock each other.
		sort.Slice(live, func(a, b int) bool { return live[a].item.AgentID < live[b].item.AgentID })
		items := make([]store.InventoryItem, len(live))
		for i, j := range live {
			items[i] = j.item
		}
		outs, err := b.db.ApplyInventoryBatch(context.Background(), items)
		if err == nil {
			for i, j := range live {
				j.out = outs[i]
				close(j.done)
			}
			continue
		}
		// One bad report must not fail the others: retry each on its own.
		for _, j := range live {
			j.out, j.err = b.db.ApplyInventory(j.ctx, j.item.OrgID, j.item.AgentID, j.item.Report)
			close(j.done)
		}
	}
}
