package dashboard_test

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	storeseed "github.com/lanyardhq/lanyard/controlplane/store/seed"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// BenchmarkBuild times the dashboard and each of its statements at 10,000 devices and
// 5,000 people, on both stores when LANYARD_TEST_DATABASE_URL is set (seeding takes about
// ten seconds a store):
//
//	go test -run '^$' -bench Build -cpuprofile cpu.out ./controlplane/dashboard/
func BenchmarkBuild(b *testing.B) {
	for _, st := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.NewSQLite}, {"postgres", storetest.NewPostgres}} {
		b.Run(st.name, func(b *testing.B) {
			ctx := context.Background()
			db := st.open(b)
			org, err := storeseed.Fleet(ctx, db, 10000, 5000)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := db.SQL.ExecContext(ctx, "ANALYZE"); err != nil {
				b.Fatal(err)
			}
			svc := newService(db, domain.Now())
			yes := true
			for _, c := range []struct {
				name string
				fn   func() error
			}{
				{"dashboard", func() error { _, err := svc.Build(ctx, org.ID, org.Plan); return err }},
				{"states", func() error { _, err := db.CountDevicesByState(ctx, org.ID); return err }},
				{"posture", func() error { _, err := db.CountPosture(ctx, org.ID); return err }},
				{"offline", func() error {
					_, err := db.SearchDevices(ctx, org.ID, store.DeviceQuery{OfflineDays: 7, Sort: "last_seen", Now: domain.Now(), InService: true, Total: true,
						Page: store.Page{Limit: 10}})
					return err
				}},
				{"needs_review", func() error {
					_, err := db.SearchDevices(ctx, org.ID, store.DeviceQuery{NeedsReview: &yes, Sort: "last_seen", Desc: true, InService: true, Total: true,
						Page: store.Page{Limit: 10}})
					return err
				}},
			} {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						if err := c.fn(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
