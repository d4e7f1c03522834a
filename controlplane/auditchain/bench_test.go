package auditchain_test

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func eachBenchDB(b *testing.B, fn func(b *testing.B, db *store.DB)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, storetest.NewSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { fn(b, storetest.NewPostgres(b)) })
}

// BenchmarkChain: linking queued rows, per row (500-row batches).
func BenchmarkChain(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(b, db, domain.PlanPro).ID
		c := newChainer(b, db)
		b.StopTimer()
		writeAudit(b, db, org, b.N)
		b.StartTimer()
		if err := c.ChainOrg(ctx, org); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkVerify: verifying a 5,000-row chain.
func BenchmarkVerify(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(b, db, domain.PlanPro).ID
		c := newChainer(b, db)
		writeAudit(b, db, org, 5000)
		if err := c.ChainOrg(ctx, org); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if rep, err := c.Verify(ctx, org); err != nil || !rep.OK || rep.Rows != 5000 {
				b.Fatalf("%+v %v", rep, err)
			}
		}
	})
}
