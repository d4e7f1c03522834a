package agentapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestPresenceLastChangeWins: a batch can hold a stream's close and the reconnect of the
// same agent (or the other way round); the agent ends in the state of its last change.
func TestPresenceLastChangeWins(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		agent := func(hash string) string {
			s := store.EnrollmentSecret{OrgID: org.ID, Name: "p", Prefix: "p"}
			if err := db.CreateEnrollmentSecret(ctx, &s, hash); err != nil {
				t.Fatal(err)
			}
			a := store.Agent{}
			if _, err := db.ExchangeEnrollmentSecret(ctx, hash, &a); err != nil {
				t.Fatal(err)
			}
			return a.ID
		}
		closedLast, reopenedLast := agent("presence-1"), agent("presence-2")
		b := newPresenceBatcher(db)
		outs, err := b.flush(ctx, []presence{
			{agentID: closedLast, online: true}, {agentID: reopenedLast, online: false},
			{agentID: closedLast, online: false}, {agentID: reopenedLast, online: true},
		})
		if err != nil || len(outs) != 4 {
			t.Fatalf("flush: %d results, %v", len(outs), err)
		}
		for id, want := range map[string]bool{closedLast: false, reopenedLast: true} {
			a, err := db.GetAgent(ctx, org.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if a.Online != want || a.LastSeenAt == nil {
				t.Errorf("agent %s: online %v (want %v), last seen %v", id, a.Online, want, a.LastSeenAt)
			}
		}
	})
}

// TestBatcherReusesJobsSafely: jobs are pooled, so a caller that gave up while its batch
// was being written must not see (or leak into) a later caller's result, and every later
// caller gets its own item's result.
func TestBatcherReusesJobsSafely(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	b := newBatcher(1, 4, time.Millisecond, func(ctx context.Context, items []int) ([]int, error) {
		if items[0] == -1 {
			entered <- struct{}{}
			<-release // hold the first batch until its caller has given up
		}
		outs := make([]int, len(items))
		for i, v := range items {
			outs[i] = v * 10
		}
		return outs, nil
	})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go b.run(ctx)
	gaveUp, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := b.apply(gaveUp, -1)
		errc <- err
	}()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned call: %v, want context.Canceled", err)
	}
	close(release)
	for i := 1; i <= 50; i++ {
		out, err := b.apply(ctx, i)
		if err != nil || out != i*10 {
			t.Fatalf("apply(%d) = %d, %v; want %d", i, out, err, i*10)
		}
	}
}
