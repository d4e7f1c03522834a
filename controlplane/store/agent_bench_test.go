package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// BenchmarkApplyInventoryBatch measures the database cost of one delta report on the hot
// path (agent linked, device in use), in batches of 32 like agentapi's batcher.
func BenchmarkApplyInventoryBatch(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			var db *store.DB
			if dialect == "sqlite" {
				db = storetest.NewSQLite(b)
			} else {
				db = storetest.NewPostgres(b)
			}
			ctx := context.Background()
			org := storetest.Org(b, db, domain.PlanPro)
			const agents = 64
			ids := linkedAgents(b, db, org.ID, agents)
			b.ResetTimer()
			for n := 0; n < b.N; {
				batch := make([]store.InventoryItem, 0, 32)
				for k := 0; k < 32 && n < b.N; k, n = k+1, n+1 {
					r := store.InventoryReport{Sections: map[string]json.RawMessage{"uptime_seconds": json.RawMessage(fmt.Sprintf(`"%d"`, n))}, Hash: fmt.Sprint(n)}
					batch = append(batch, store.InventoryItem{OrgID: org.ID, AgentID: ids[n%agents], Report: r})
				}
				if _, err := db.ApplyInventoryBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// linkedAgents enrolls n agents in org and links each to a new device with a first full
// report: the state every later delta report finds.
func linkedAgents(tb testing.TB, db *store.DB, orgID string, n int) []string {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		hash := fmt.Sprintf("linked-%s-%d", orgID, i)
		newSecret(tb, db, orgID, hash, 0, nil)
		a := store.Agent{}
		if _, err := db.ExchangeEnrollmentSecret(ctx, hash, &a); err != nil {
			tb.Fatal(err)
		}
		ids[i] = a.ID
		r := report(fmt.Sprintf("B-%03d", i), map[string]string{"os": `{"name":"Debian","version":"12"}`, "disks": `[{"device":"/dev/sda"}]`})
		if _, err := db.ApplyInventory(ctx, orgID, a.ID, r); err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

// TestHotPathWritesDoNotDeadlock runs inventory batches and presence/heartbeat writes over
// the same agents at once, in shuffled orders, as a busy replica does. Before both locked
// agent rows in id order, Postgres reported "deadlock detected" within a few hundred
// batches.
func TestHotPathWritesDoNotDeadlock(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		ids := linkedAgents(t, db, org.ID, 24)
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for round := 0; round < 40; round++ {
					pick := slices.Clone(ids)
					rng.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
					pick = pick[:8+rng.IntN(len(pick)-8)]
					var err error
					if w%2 == 0 {
						on, off := pick, []string(nil)
						if round%3 == 0 {
							on, off = nil, pick
						}
						err = db.TouchAgents(ctx, time.Now(), on, off)
					} else {
						batch := make([]store.InventoryItem, len(pick))
						for i, id := range pick {
							batch[i] = store.InventoryItem{OrgID: org.ID, AgentID: id, Report: store.InventoryReport{
								Sections: map[string]json.RawMessage{"uptime_seconds": json.RawMessage(fmt.Sprintf(`"%d"`, round))}, Hash: fmt.Sprint(w, round)}}
						}
						_, err = db.ApplyInventoryBatch(ctx, batch)
					}
					if err != nil {
						errs <- fmt.Errorf("worker %d round %d: %w", w, round, err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
