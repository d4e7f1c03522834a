package auditchain_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// BenchmarkVerify walks a 20,000-row chain with a checkpoint every 1000 rows (pages of
// 1000, so memory stays flat however long the chain): docs/benchmarks.md, "Audit chain".
func BenchmarkVerify(b *testing.B) {
	const rows = 20000
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			var db *store.DB
			if dialect == "sqlite" {
				db = storetest.NewSQLite(b)
			} else {
				db = storetest.NewPostgres(b)
			}
			ctx := context.Background()
			o := storetest.Org(b, db, domain.PlanPro)
			for done := 0; done < rows; done += 1000 {
				batch := make([]domain.AuditEntry, 1000)
				for i := range batch {
					batch[i] = domain.AuditEntry{OrgID: o.ID, Actor: "system:hrsync", Action: "employee.imported", TargetType: "employee",
						TargetID: fmt.Sprint(done + i), After: []byte(`{"first_name":"Ada","last_name":"Lovelace","status":"active"}`)}
				}
				if err := db.InTx(ctx, func(tx *sql.Tx) error { return db.InsertHRBatch(ctx, tx, nil, nil, batch, nil) }); err != nil {
					b.Fatal(err)
				}
			}
			v := &auditchain.Verifier{Src: db}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rep, err := v.Verify(ctx, o.ID)
				if err != nil || !rep.OK || rep.Rows < rows {
					b.Fatalf("%s %v", rep, err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
