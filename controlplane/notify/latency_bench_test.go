package notify_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook/fakereceiver"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// BenchmarkDeliveryLatency measures event written (its transaction committed) → the
// webhook receiver got the signed payload, with the engine's production settings (wake
// by NOTIFY / commit hook, 2 s poll backstop). Events are written one at a time, each
// after the previous arrived, so the number is latency, not throughput. Reported:
// p50_ms, p99_ms.
//
//	go test ./controlplane/notify -run '^$' -bench DeliveryLatency -benchtime 200x
func BenchmarkDeliveryLatency(b *testing.B) {
	for _, st := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.NewSQLite}, {"postgres", storetest.NewPostgres}} {
		b.Run(st.name, func(b *testing.B) { benchLatency(b, st.open(b)) })
	}
}

func benchLatency(b *testing.B, db *store.DB) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	org := storetest.Org(b, db, domain.PlanPro)
	secret := webhook.NewSecret()
	rcv, err := fakereceiver.Start(ctx, secret)
	if err != nil {
		b.Fatal(err)
	}
	eng := notify.New(notify.Deps{DB: db, Keys: keyring(b), Render: plainRender{}, Config: notify.Config{PublicURL: "https://lanyard.test"}})
	if _, err := eng.CreateChannel(ctx, org.ID, notify.ChannelInput{Name: "bench", Kind: "webhook", Webhook: &notify.WebhookConfig{URL: rcv.URL()}, Secret: secret}); err != nil {
		b.Fatal(err)
	}
	if err := eng.SeedDefaults(ctx, org.ID); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Start(ctx) }()
	defer func() { cancel(); <-done }()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := domain.Event{ID: domain.NewID(), OrgID: org.ID, Type: domain.EventTaskCreated, SubjectType: "task", SubjectID: "t", Payload: json.RawMessage(`{}`)}
		began := time.Now()
		if err := db.InTx(ctx, func(tx *sql.Tx) error { return store.WriteEvent(ctx, tx, ev) }); err != nil {
			b.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		got, err := rcv.WaitFor(wctx, func(rs []fakereceiver.Received) bool {
			for j := len(rs) - 1; j >= 0; j-- {
				if contains(rs[j].Payload.Data, ev.ID) {
					return true
				}
			}
			return false
		})
		wcancel()
		if err != nil {
			b.Fatal(err)
		}
		for j := len(got) - 1; j >= 0; j-- {
			if contains(got[j].Payload.Data, ev.ID) {
				lat = append(lat, got[j].At.Sub(began))
				break
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
