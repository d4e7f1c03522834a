package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// BenchmarkLifecycle runs the whole scenario once (make bench, or
// `go test -run '^$' -bench . -benchtime 1x ./bench/lifecycle/`). Set
// LANYARD_BENCH_WRITE=1 to update docs/benchmarks.md. A step run twice or a device
// locked twice fails it.
func BenchmarkLifecycle(b *testing.B) {
	cfg := Config{Kind: "scim", Webhooks: 30, Layoff: 500, PGURL: os.Getenv("LANYARD_TEST_DATABASE_URL")}
	for i := 0; i < b.N; i++ {
		res, err := RunAll(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			tag := r.Store
			if r.Mode == ModePoll {
				tag += "-poll"
			}
			b.ReportMetric(float64(r.LockP99.Microseconds())/1000, tag+"-webhook-lock-done-p99-ms")
			if r.Layoff > 0 {
				b.ReportMetric(r.LayoffSteps.Seconds(), tag+"-layoff-s")
			}
		}
		b.Log("\n" + Markdown(cfg, res))
		if os.Getenv("LANYARD_BENCH_WRITE") == "1" {
			if err := WriteSection("../../docs/benchmarks.md", Markdown(cfg, res)); err != nil {
				b.Fatal(err)
			}
		}
		if err := Check(res); err != nil {
			b.Fatal(err)
		}
	}
}

// A small run keeps the benchmark code tested in `make test` (SQLite only, seconds).
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	res, err := RunAll(context.Background(), Config{Kind: "scim", Webhooks: 2, Layoff: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Mode != ModeNotify || res[1].Mode != ModePoll {
		t.Fatalf("results = %+v", res)
	}
	r := res[0]
	if r.LockP50 <= 0 || r.AppP50 <= 0 || r.AppP50 > r.LockP50 || r.StepP50 < r.LockP50 || r.LayoffLocks <= 0 || r.LayoffSteps <= 0 || r.LockCommands != 7 ||
		r.StepsRunTwice != 0 || r.DevicesTwice != 0 || r.StepExecutions <= r.Steps {
		t.Fatalf("%+v", r)
	}
	if p := res[1]; p.LockCommands != 2 || p.Layoff != 0 || p.LockP50 <= 0 {
		t.Fatalf("poll run = %+v", p)
	}
	if err := Check(res); err != nil {
		t.Fatal(err)
	}
	bad := append([]Result(nil), res...)
	bad[0].StepsRunTwice = 1
	if Check(bad) == nil {
		t.Fatal("a step run twice passed the check")
	}
	path := t.TempDir() + "/b.md"
	_ = os.WriteFile(path, []byte("# Benchmarks\n\n## HR sync\n\nx\n\n## Lifecycle\n\nOLDSECTION\n\n## Later\n\ny\n"), 0o644)
	if err := WriteSection(path, Markdown(Config{Kind: "scim", Webhooks: 2, Layoff: 5}, res)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	if !strings.Contains(s, "## HR sync\n\nx") || !strings.Contains(s, "## Later\n\ny") || strings.Contains(s, "OLDSECTION") || !strings.Contains(s, "| SQLite | notifications |") {
		t.Fatalf("section not replaced:\n%s", s)
	}
}

// The native connectors' fakes measure too: Google (suspended and signed out) and Entra
// (sign-in blocked and sessions revoked) before the lock is done.
func TestSmallRunNativeKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, kind := range []string{"google", "entra"} {
		t.Run(kind, func(t *testing.T) {
			// On both stores when Postgres is there: the termination goes through HR sync and
			// the lifecycle engine to the connector and its fake, over real HTTP.
			pg := os.Getenv("LANYARD_TEST_DATABASE_URL")
			res, err := RunAll(context.Background(), Config{Kind: kind, Webhooks: 2, Layoff: 0, NoBefore: true, PGURL: pg})
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if pg != "" {
				want = 2
			}
			if len(res) != want {
				t.Fatalf("%s: %d results, want %d: %+v", kind, len(res), want, res)
			}
			for _, r := range res {
				if r.AppP50 <= 0 || r.AppP50 > r.LockP50 {
					t.Fatalf("%s on %s: the account was not blocked before the lock was done: %+v", kind, r.Store, r)
				}
			}
		})
	}
}
