package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

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
			ids := make([]string, agents)
			for i := range ids {
				hash := fmt.Sprintf("bench-%d", i)
				s := store.EnrollmentSecret{OrgID: org.ID, Name: "b", Prefix: "b"}
				if err := db.CreateEnrollmentSecret(ctx, &s, hash); err != nil {
					b.Fatal(err)
				}
				a := store.Agent{}
				if _, err := db.ExchangeEnrollmentSecret(ctx, hash, &a); err != nil {
					b.Fatal(err)
				}
				ids[i] = a.ID
				r := report(fmt.Sprintf("B-%03d", i), map[string]string{"os": `{"name":"Debian","version":"12"}`, "disks": `[{"device":"/dev/sda"}]`})
				if _, err := db.ApplyInventory(ctx, org.ID, a.ID, r); err != nil {
					b.Fatal(err)
				}
			}
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
