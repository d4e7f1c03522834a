package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// BenchmarkHRSync runs the whole scenario once (make bench). Set
// LANYARD_BENCH_WRITE=1 to update docs/benchmarks.md.
func BenchmarkHRSync(b *testing.B) {
	cfg := Config{Members: 10000, Changes: 50, Webhooks: 300, PGURL: os.Getenv("LANYARD_TEST_DATABASE_URL")}
	for i := 0; i < b.N; i++ {
		res, err := RunAll(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			b.ReportMetric(r.Import.Seconds(), r.Store+"-import-s")
			b.ReportMetric(r.Incremental.Seconds(), r.Store+"-incremental-s")
			b.ReportMetric(float64(r.P99.Microseconds())/1000, r.Store+"-webhook-p99-ms")
		}
		if os.Getenv("LANYARD_BENCH_WRITE") == "1" {
			if err := WriteSection("../../docs/benchmarks.md", Markdown(cfg, res)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A small run keeps the benchmark code itself tested in `make test`.
func TestSmallRun(t *testing.T) {
	res, err := RunAll(context.Background(), Config{Members: 300, Changes: 5, Webhooks: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].IncrUpdated != 5 || res[0].P99 <= 0 {
		t.Fatalf("%+v", res)
	}
	path := t.TempDir() + "/b.md"
	if err := os.WriteFile(path, []byte("# Benchmarks\n\n## Other\n\nx\n\n## HR sync\n\nold\n\n## Later\n\ny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSection(path, Markdown(Config{Members: 300, Changes: 5, Webhooks: 10}, res)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	if !contains(s, "## Other\n\nx") || !contains(s, "## Later\n\ny") || contains(s, "old") || !contains(s, "| SQLite |") {
		t.Fatalf("section not replaced:\n%s", s)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
