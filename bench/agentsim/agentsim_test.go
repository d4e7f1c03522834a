package main

import (
	"context"
	"log"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// BenchmarkAgentChannel is the small, in-process form of the agent benchmark for `make
// bench`: 200 agents against the agent API on Postgres (SQLite without
// LANYARD_TEST_DATABASE_URL). The 10,000-stream figures in docs/benchmarks.md come from
// run.sh, with the server and the simulator as separate processes.
func BenchmarkAgentChannel(b *testing.B) {
	var db *store.DB
	if os.Getenv(storetest.EnvDatabaseURL) != "" {
		db = storetest.NewPostgres(b)
	} else {
		db = storetest.NewSQLite(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kr, _ := secrets.New(secrets.NewKey())
	srv, err := agentapi.Open(ctx, db, kr, agentapi.Config{AgentAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() { cancel(); <-done }()
	o := domain.Org{Name: "bench", Plan: domain.PlanPro, TimeZone: "UTC"}
	if err := store.CreateOrg(ctx, db.SQL, &o); err != nil {
		b.Fatal(err)
	}
	_, token, err := db.CreateToken(ctx, o.ID, "bench", domain.RoleAdmin, nil)
	if err != nil {
		b.Fatal(err)
	}
	secret, _, err := enrollment.Mint(ctx, db, o.ID, enrollment.Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := httptest.NewServer(api.New(api.Options{Store: db}, srv.Routes()))
	defer h.Close()
	log.SetOutput(os.Stderr)
	for i := 0; i < b.N; i++ {
		res, err := run(ctx, options{enrollAddr: srv.EnrollAddr().String(), agentAddr: srv.AgentAddr().String(), secret: secret,
			caSHA: srv.CA().RootFingerprint(), apiURL: h.URL, token: token, serial: "BENCH" + time.Now().Format("150405.000"), n: 200,
			serverPID: os.Getpid(), enrollConc: 16, dialConc: 32, invWorkers: 32, invSeconds: 3, locks: 40, lockRate: 40, settle: 0.5,
			heartbeat: 30 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.InventoryPerSecond, "reports/s")
		b.ReportMetric(res.LockP50ms, "lock-ack-p50-ms")
		b.ReportMetric(res.LockP99ms, "lock-ack-p99-ms")
	}
}
