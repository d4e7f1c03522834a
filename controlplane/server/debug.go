package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"golang.org/x/sync/errgroup"
)

// serveDebug serves the Go profiler on its own listener, never on the admin API: a heap
// profile can hold secrets, so it is reachable only where the operator put debug-addr.
func (s *Server) serveDebug(ctx context.Context, g *errgroup.Group) error {
	ln, err := net.Listen("tcp", s.Config.DebugAddr)
	if err != nil {
		return fmt.Errorf("listen on debug-addr %s: %w", s.Config.DebugAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("debug http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
	s.Logger.Warn("profiler listening; keep it off the network", "component", "server", "debug_addr", ln.Addr().String())
	return nil
}
