package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// BenchmarkLifecycle runs the whole scenario once (make bench). Set
// LANYARD_BENCH_WRITE=1 to update docs/benchmarks.md.
func BenchmarkLifecycle(b *testing.B) {
	cfg := Config{Webhooks: 30, Layoff: 500, PGURL: os.Getenv("LANYARD_TEST_DATABASE_URL")}
	for i := 0; i < b.N; i++ {
		res, err := RunAll(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			b.ReportMetric(float64(r.P99.Milliseconds()), r.Store+"-webhook-lock-p99-ms")
			b.ReportMetric(r.LayoffAllAcked.Seconds(), r.Store+"-layoff-s")
		}
		if os.Getenv("LANYARD_BENCH_WRITE") == "1" {
			if err := WriteSection("../../docs/benchmarks.md", Markdown(cfg, res)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A small run keeps the benchmark code tested in `make test` (SQLite only, seconds).
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	res, err := RunAll(context.Background(), Config{Webhooks: 2, Layoff: 5})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.P50 <= 0 || r.LayoffAllAcked <= 0 || r.LayoffLocks != 7 || r.StepsTwice != 0 || r.DevicesTwice != 0 {
		t.Fatalf("%+v", r)
	}
	path := t.TempDir() + "/b.md"
	_ = os.WriteFile(path, []byte("# Benchmarks\n\n## HR sync\n\nx\n\n## Lifecycle\n\nOLDSECTION\n\n## Later\n\ny\n"), 0o644)
	if err := WriteSection(path, Markdown(Config{Webhooks: 2, Layoff: 5}, res)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	if !strings.Contains(s, "## HR sync\n\nx") || !strings.Contains(s, "## Later\n\ny") || strings.Contains(s, "OLDSECTION") || !strings.Contains(s, "| SQLite |") {
		t.Fatalf("section not replaced:\n%s", s)
	}
}
