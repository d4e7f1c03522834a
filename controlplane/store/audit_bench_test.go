package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// BenchmarkWriteAudit measures one audit row written in its own transaction, the way a
// capability writes one beside its change (docs/benchmarks.md, "Audit chain").
// "parallel" runs 4 writers of one org at once: on Postgres they queue on the org's chain
// head lock; "parallel-orgs" runs 4 writers each of its own org, which do not.
func BenchmarkWriteAudit(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"serial", "parallel", "parallel-orgs"} {
			b.Run(dialect+"/"+mode, func(b *testing.B) {
				var db *store.DB
				if dialect == "sqlite" {
					db = storetest.NewSQLite(b)
				} else {
					db = storetest.NewPostgres(b)
				}
				ctx := context.Background()
				orgs := make([]string, 4)
				for i := range orgs {
					orgs[i] = storetest.Org(b, db, domain.PlanPro).ID
				}
				var n, writers atomic.Int64
				write := func(org string) {
					i := n.Add(1)
					e := domain.AuditEntry{OrgID: org, Actor: "token:bench", Action: "device.updated", TargetType: "device",
						TargetID: fmt.Sprintf("d%d", i), Before: []byte(`{"state":"in_stock"}`), After: []byte(`{"state":"assigned"}`), RequestID: "req"}
					if err := db.InTx(ctx, func(tx *sql.Tx) error { return store.WriteAudit(ctx, tx, e) }); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				if mode == "serial" {
					for i := 0; i < b.N; i++ {
						write(orgs[0])
					}
					return
				}
				b.SetParallelism(2) // 2 × GOMAXPROCS(2) = 4 writers
				b.RunParallel(func(pb *testing.PB) {
					org := orgs[0]
					if mode == "parallel-orgs" {
						org = orgs[int(writers.Add(1)-1)%len(orgs)]
					}
					for pb.Next() {
						write(org)
					}
				})
			})
		}
	}
}

// BenchmarkCreateDevice is a whole API-level write (device row, audit row, one
// transaction), to put the audit chain's cost in proportion.
func BenchmarkCreateDevice(b *testing.B) {
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
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := domain.Device{OrgID: org.ID, SerialNumber: fmt.Sprintf("BENCH%06d", i), Vendor: "apple", Model: "MacBook Pro",
					Platform: domain.PlatformMacOS, EquipmentType: "laptop"}
				if err := db.CreateDevice(ctx, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
