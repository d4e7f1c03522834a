// Package server wires Lanyard's control plane together: it opens the store, builds every
// capability from config, and runs the HTTP and background loops. It holds no logic of its
// own; cmd/lanyard calls it. buildCapabilities (capabilities.go) builds every capability
// in one explicit order with its dependencies passed in.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
)

// Version is set by the linker (-X) at build time.
var Version = "dev"

// OpenDB opens the database the config names: Postgres when database-url is set,
// otherwise the embedded SQLite file.
func OpenDB(ctx context.Context, cfg config.Config) (*store.DB, error) {
	if cfg.DatabaseURL != "" {
		return postgres.Open(ctx, cfg.DatabaseURL)
	}
	return sqlite.Open(ctx, cfg.SQLitePath())
}

// Migrate applies Lanyard's and River's migrations.
func Migrate(ctx context.Context, db *store.DB) error {
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	return jobs.Migrate(ctx, db)
}

// Deps is what every capability constructor receives.
type Deps struct {
	Config   config.Config
	DB       *store.DB
	Keyring  *secrets.Keyring
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// Jobs enqueues River jobs; usable once Run has started (it is filled in after all
	// capabilities registered their workers).
	Jobs *jobs.Handle
	// Jobs workers and periodic jobs are registered here during construction.
	JobRegistry *jobs.Registry
}

// Server is a running control plane.
type Server struct {
	Deps
	API *api.Server
	// Auth is the sign-in and session service (the console authenticates through it).
	Auth *auth.Service
	// Capabilities are the built capabilities in build order (see buildCapabilities).
	Capabilities []any
	caps         *capabilities
	httpLn       net.Listener
	// Handler serves the admin API, webhooks and capability HTTP endpoints.
	Handler http.Handler
}

// New opens everything and builds the capabilities, but starts nothing.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	kr, err := secrets.LoadOrCreate(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	db, err := OpenDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Deps: Deps{Config: cfg, DB: db, Keyring: kr, Logger: logger, Registry: reg, Jobs: &jobs.Handle{}, JobRegistry: jobs.NewRegistry()}}
	if s.caps, err = buildCapabilities(ctx, s.Deps); err != nil {
		db.Close()
		return nil, err
	}
	s.Capabilities = s.caps.list()
	s.Auth = s.caps.auth
	opts := api.Options{Store: db, Ready: []api.ReadyCheck{db.Ready}, Registry: reg, Logger: logger, Version: Version}
	var routes [][]api.Route
	mux := http.NewServeMux()
	for _, c := range s.Capabilities {
		if rp, ok := c.(interface{ Routes() []api.Route }); ok {
			routes = append(routes, rp.Routes())
		}
		if d, ok := c.(api.DeviceDetailer); ok {
			opts.Detailers = append(opts.Detailers, d)
		}
		if rc, ok := c.(interface{ Ready(context.Context) error }); ok {
			opts.Ready = append(opts.Ready, rc.Ready)
		}
		if wc, ok := c.(interface {
			Warnings(context.Context) []string
		}); ok {
			opts.Warnings = append(opts.Warnings, wc.Warnings)
		}
		if m, ok := c.(interface{ Mount(*http.ServeMux) }); ok {
			m.Mount(mux)
		}
	}
	s.API = api.New(opts, routes...)
	if err := s.mountConsole(mux, s.Auth); err != nil {
		db.Close()
		return nil, err
	}
	s.Handler = mux
	return s, nil
}

// Listen binds the admin HTTP listener (so callers can learn the port before Run).
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.Config.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.Config.HTTPAddr, err)
	}
	s.httpLn = ln
	return ln.Addr(), nil
}

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	defer s.DB.Close()
	if s.httpLn == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	client, err := jobs.NewClient(s.DB, s.JobRegistry, jobs.Options{Logger: s.Logger})
	if err != nil {
		return err
	}
	s.Jobs.Set(client)
	g, ctx := errgroup.WithContext(ctx)
	if s.JobRegistry.Runs() {
		if err := client.Start(ctx); err != nil {
			return fmt.Errorf("start jobs: %w", err)
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = client.Stop(stopCtx)
		}()
	}
	for _, c := range s.Capabilities {
		if st, ok := c.(interface{ Start(context.Context) error }); ok {
			g.Go(func() error {
				if err := st.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
					return fmt.Errorf("%T: %w", c, err)
				}
				return nil
			})
		}
	}
	g.Go(func() error { s.API.WatchReadiness(ctx, 2*time.Second); return nil })
	srv := &http.Server{Handler: s.Handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn)}
	g.Go(func() error {
		if err := srv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutCtx)
	})
	if s.Config.DebugAddr != "" {
		if err := s.serveDebug(ctx, g); err != nil {
			return err
		}
	}
	s.Logger.Info("lanyard serving", "component", "server", "version", Version, "admin_api", "http://"+s.httpLn.Addr().String(),
		"database", string(s.DB.Dialect))
	return g.Wait()
}

// NewLogger builds the process logger from config.
func NewLogger(cfg config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
