package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// logEverywhere makes the process's one slog handler the only log format:
// libraries that log through the standard log package or slog.Default (the
// HTTP server's TLS errors, River's and nanomdm's fallbacks, the CA) and
// gRPC's own logger otherwise print "2026/01/02 15:04:05 ..." lines between
// the structured ones. The composition root is the one place allowed to set
// these process-wide defaults.
func logEverywhere(logger *slog.Logger) {
	slog.SetDefault(logger)
	log.SetFlags(0) // slog adds the time
	grpclog.SetLoggerV2(grpcLogger{l: logger.With("component", "grpc")})
}

// grpcLogger adapts slog to grpclog.LoggerV2. gRPC's info lines (connection
// state changes) are debug for us.
type grpcLogger struct{ l *slog.Logger }

func (g grpcLogger) out(level slog.Level, msg string) {
	g.l.Log(context.Background(), level, strings.TrimSpace(msg))
}

func (g grpcLogger) Info(args ...any)   { g.out(slog.LevelDebug, fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any) { g.out(slog.LevelDebug, fmt.Sprintln(args...)) }
func (g grpcLogger) Infof(format string, args ...any) {
	g.out(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Warning(args ...any)   { g.out(slog.LevelWarn, fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any) { g.out(slog.LevelWarn, fmt.Sprintln(args...)) }
func (g grpcLogger) Warningf(format string, args ...any) {
	g.out(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Error(args ...any)   { g.out(slog.LevelError, fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any) { g.out(slog.LevelError, fmt.Sprintln(args...)) }
func (g grpcLogger) Errorf(format string, args ...any) {
	g.out(slog.LevelError, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Fatal(args ...any)   { g.out(slog.LevelError, fmt.Sprint(args...)); os.Exit(1) }
func (g grpcLogger) Fatalln(args ...any) { g.out(slog.LevelError, fmt.Sprintln(args...)); os.Exit(1) }
func (g grpcLogger) Fatalf(format string, args ...any) {
	g.out(slog.LevelError, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// V reports whether verbosity level l is on: only when debug logging is.
func (g grpcLogger) V(l int) bool { return g.l.Enabled(context.Background(), slog.LevelDebug) }
