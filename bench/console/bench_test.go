package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// BenchmarkConsole runs the full scenario once (`go test -run '^$' -bench . -benchtime 1x
// ./bench/console/`, both stores when LANYARD_TEST_DATABASE_URL is set). Set
// LANYARD_BENCH_WRITE=1 to update docs/benchmarks.md.
func BenchmarkConsole(b *testing.B) {
	cfg := Config{Store: "both", PGURL: os.Getenv("LANYARD_TEST_DATABASE_URL"), Devices: 10000, People: 5000, N: 200}
	for i := 0; i < b.N; i++ {
		res, err := RunAll(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			b.ReportMetric(float64(r.P95.Microseconds())/1000, r.Store+"-"+strings.Fields(r.Case)[0]+"-p95-ms")
		}
		b.Log("\n" + Markdown(cfg, res))
		if os.Getenv("LANYARD_BENCH_WRITE") == "1" {
			if err := writeDocs(Markdown(cfg, res)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A small run keeps the benchmark code tested in `make test` (SQLite, a few seconds):
// every case answers 200 and is timed server-side.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cfg := Config{Store: "sqlite", Devices: 120, People: 60, N: 3}
	res, err := RunAll(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(cases("")) {
		t.Fatalf("%d results for %d cases", len(res), len(cases("")))
	}
	for _, r := range res {
		if r.N != cfg.N || r.P50 <= 0 || r.P50 > r.P95 || r.P95 > r.Max {
			t.Errorf("%s: %+v", r.Case, r)
		}
	}
	if md := Markdown(cfg, res); !strings.Contains(md, "## Console and lists") || !strings.Contains(md, "dashboard") {
		t.Errorf("markdown:\n%s", md)
	}
}
