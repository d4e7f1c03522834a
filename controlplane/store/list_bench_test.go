package store_test

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/seed"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// BenchmarkSearchDevices10k times the device list queries the console runs, against
// 10,000 devices and 5,000 people (seed.Fleet), on each store:
//
//	go test -run '^$' -bench SearchDevices10k ./controlplane/store/
//
// The server-side numbers, through HTTP, are bench/console's (docs/benchmarks.md).
func BenchmarkSearchDevices10k(b *testing.B) {
	dbs := map[string]func(testing.TB) *store.DB{"sqlite": storetest.NewSQLite}
	if storetest.PostgresURL(b) != "" {
		dbs["postgres"] = storetest.NewPostgres
	}
	for _, name := range []string{"sqlite", "postgres"} {
		open, ok := dbs[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			db := open(b)
			org, err := seed.Fleet(ctx, db, 10000, 5000)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := db.SQL.ExecContext(ctx, "ANALYZE"); err != nil {
				b.Fatal(err)
			}
			yes, no := true, false
			deep, err := db.SearchDevices(ctx, org.ID, store.DeviceQuery{Sort: "serial", Page: store.Page{Limit: 200}})
			if err != nil {
				b.Fatal(err)
			}
			for range 40 { // about row 8,000
				deep, err = db.SearchDevices(ctx, org.ID, store.DeviceQuery{Sort: "serial", Page: store.Page{Limit: 200, Cursor: deep.NextCursor}})
				if err != nil {
					b.Fatal(err)
				}
			}
			for _, tc := range []struct {
				name string
				q    store.DeviceQuery
			}{
				{"first-page", store.DeviceQuery{}},
				{"by-serial", store.DeviceQuery{Sort: "serial"}},
				{"by-last-seen-desc", store.DeviceQuery{Sort: "last_seen", Desc: true}},
				{"by-assignee", store.DeviceQuery{Sort: "assignee"}},
				{"deep-page", store.DeviceQuery{Sort: "serial", Page: store.Page{Cursor: deep.NextCursor}}},
				{"search", store.DeviceQuery{Q: "lamarr"}},
				{"search-total", store.DeviceQuery{Q: "pf4", Total: true}},
				{"unencrypted-total", store.DeviceQuery{DiskEncrypted: &no, Total: true}},
				{"needs-review", store.DeviceQuery{NeedsReview: &yes, Total: true}},
				{"offline-7d", store.DeviceQuery{OfflineDays: 7, Sort: "last_seen", Total: true}},
			} {
				b.Run(tc.name, func(b *testing.B) {
					if tc.q.Page.Limit == 0 {
						tc.q.Page.Limit = 50
					}
					for b.Loop() {
						if _, err := db.SearchDevices(ctx, org.ID, tc.q); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run("people-search", func(b *testing.B) {
				for b.Loop() {
					if _, err := db.SearchEmployees(ctx, org.ID, store.EmployeeQuery{Q: "hopper", Sort: "name", Page: store.Page{Limit: 50}}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
