package main

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/grpclog"
)

// After logEverywhere, the standard log package, slog.Default and gRPC all
// write through the one handler: no second line format.
func TestOneLogFormat(t *testing.T) {
	prev, prevFlags := slog.Default(), log.Flags()
	t.Cleanup(func() {
		slog.SetDefault(prev)
		log.SetFlags(prevFlags)
	})
	var buf bytes.Buffer
	logEverywhere(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log.Printf("from the log package")
	slog.Default().Info("from slog.Default")
	grpclog.Warningf("from grpc %d", 1)
	grpclog.Info("grpc chatter is debug")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{`"msg":"from the log package"`, `"msg":"from slog.Default"`, `"level":"WARN","msg":"from grpc 1","component":"grpc"`} {
		if !strings.HasPrefix(lines[i], `{"time":`) || !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %s, want JSON with %s", i, lines[i], want)
		}
	}
}
