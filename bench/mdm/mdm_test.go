package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkAppleMDM is `make bench`'s entry: one full run with the documented sizes
// (1,000 enrolled Macs), printing the markdown that goes into docs/benchmarks.md.
// It needs LANYARD_TEST_DATABASE_URL.
func BenchmarkAppleMDM(b *testing.B) {
	url := os.Getenv("LANYARD_TEST_DATABASE_URL")
	if url == "" {
		b.Skip("LANYARD_TEST_DATABASE_URL not set")
	}
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		res, err := run(ctx, config{dbURL: url, macs: 1000, checkinMacs: 32, rounds: 30, locks: 300, concurrency: 16, reps: 5, timeout: 8 * time.Minute}, os.Stdout)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.LanyardRounds, "lanyard-rounds/s")
		b.ReportMetric(res.BareRounds, "bare-rounds/s")
		b.ReportMetric(res.BareRounds/res.LanyardRounds, "overhead-x")
		b.ReportMetric(float64(res.LockP99.Milliseconds()), "lock-p99-ms")
	}
}
