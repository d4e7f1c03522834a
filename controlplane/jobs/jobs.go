// Package jobs runs background work on River over the same database as everything else:
// riversqlite on the embedded default, riverdatabasesql on Postgres. Both drive River with
// *sql.Tx, so a capability enqueues a job inside its own transaction (InsertTx) on either.
// Capabilities register workers and periodic jobs on a Registry before the client starts.
package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Client is River over *sql.Tx.
type Client = river.Client[*sql.Tx]

// Registry collects what capabilities contribute before River starts.
type Registry struct {
	Workers  *river.Workers
	Periodic []*river.PeriodicJob
	// Queues beyond the default one, with their worker counts.
	Queues map[string]river.QueueConfig
	count  int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{Workers: river.NewWorkers(), Queues: map[string]river.QueueConfig{}}
}

// Add registers a worker; use it rather than river.AddWorker so the registry knows it has one.
func Add[T river.JobArgs](r *Registry, w river.Worker[T]) {
	river.AddWorker(r.Workers, w)
	r.count++
}

// AddPeriodic registers a periodic job (River elects one leader to schedule it).
//
// Leadership moves slowly when a leader dies without resigning (SIGKILL, lost host):
// River v0.51 fixes its elect interval at 5 s and the leader TTL at 15 s, with no setting to
// shorten them, so a follower takes over 13–18 s after the kill (measured in
// server/replicas_test.go; docs/operations.md). A periodic job whose runs must not be
// skipped across that gap sets RunOnStart: River's periodic enqueuer starts on the new
// leader and inserts such jobs at once (within its ≤1 s staggered start), instead of an
// interval after taking over.
func (r *Registry) AddPeriodic(p *river.PeriodicJob) { r.Periodic = append(r.Periodic, p) }

func driver(db *store.DB) riverdriver.Driver[*sql.Tx] {
	if db.Dialect == store.SQLite {
		return riversqlite.New(db.SQL)
	}
	return riverdatabasesql.New(db.SQL)
}

// Migrate creates or upgrades River's tables.
func Migrate(ctx context.Context, db *store.DB) error {
	m, err := rivermigrate.New(driver(db), &rivermigrate.Config{Schema: db.Schema})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	return nil
}

// Options tune the client.
type Options struct {
	// Workers is the default queue's concurrency (10 when zero).
	Workers int
	// PollInterval bounds how soon a new job is picked up on SQLite and on Postgres
	// through database/sql, which has no LISTEN (200 ms when zero).
	PollInterval time.Duration
	Logger       *slog.Logger
	// InsertOnly builds a client that enqueues but never works jobs (CLI tools, tests).
	InsertOnly bool
}

// NewClient builds the River client; call Start to work jobs.
func NewClient(db *store.DB, reg *Registry, o Options) (*Client, error) {
	if o.Workers == 0 {
		o.Workers = 10
	}
	if o.PollInterval == 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cfg := &river.Config{
		Logger: o.Logger.With("component", "jobs"),
		Schema: db.Schema,
		// FetchCooldown must not exceed FetchPollInterval or River refuses the config.
		FetchCooldown:     min(100*time.Millisecond, o.PollInterval),
		FetchPollInterval: o.PollInterval,
		JobTimeout:        5 * time.Minute,
		// Poll only, on both stores: database/sql on Postgres has no LISTEN, and River's
		// SQLite listener is itself a poll of a notification table, beside the job poll
		// (at 10,000 idle agents on SQLite the two were a third of the server's CPU). A
		// new job still starts within PollInterval.
		PollOnly: true,
	}
	if !o.InsertOnly && reg != nil && reg.count > 0 {
		cfg.Workers = reg.Workers
		cfg.PeriodicJobs = reg.Periodic
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.Workers}}
		for name, q := range reg.Queues {
			cfg.Queues[name] = q
		}
	}
	c, err := river.NewClient(driver(db), cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return c, nil
}

// Runs reports whether a client built from reg would work jobs.
func (r *Registry) Runs() bool { return r != nil && r.count > 0 }

// Handle lets capabilities hold the River client before it exists: the server fills it in
// after every worker is registered and before any request or job runs.
type Handle struct {
	c *Client
}

// Set installs the client.
func (h *Handle) Set(c *Client) { h.c = c }

// Client returns the River client (nil before the server starts).
func (h *Handle) Client() *Client { return h.c }

// InsertTx enqueues a job in the caller's transaction.
func (h *Handle) InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	if h.c == nil {
		return fmt.Errorf("enqueue %s: job client not started", args.Kind())
	}
	_, err := h.c.InsertTx(ctx, tx, args, opts)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}
