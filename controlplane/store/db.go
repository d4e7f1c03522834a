// Package store is Lanyard's persistence layer: one SQL implementation over two dialects
// (embedded SQLite and PostgreSQL), see docs/adr/2026-11-25_one-sql-two-dialects.md.
// Capabilities declare the interfaces they need; *DB implements them. Open a DB with the
// sqlite or postgres subpackage.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Sentinel errors; wrap them with context and let the API map them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Querier is satisfied by *sql.DB and *sql.Tx, so a query helper runs inside or outside a
// caller's transaction.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// DB is an open database of either dialect.
type DB struct {
	SQL     *sql.DB
	Dialect Dialect
	// Pool is the pgx pool behind SQL on Postgres (for LISTEN/NOTIFY and bulk COPY); nil on SQLite.
	Pool *pgxpool.Pool
	// Schema is the Postgres schema in use ("" means the server default).
	Schema string

	migrations fs.FS
	closers    []func()

	commitMu    sync.Mutex
	commitHooks map[int]func()
	nextHook    int
	hookTimer   *time.Timer   // the open coalescing window, or nil
	hookPending bool          // a commit in the window still has to signal
	hookWindow  time.Duration // commitHookWindow unless a test sets it

	stmts stmtCache
	// writer queues this process's SQLite transactions (each takes the write lock at
	// BEGIN): SQLite's own busy handler makes a waiting writer sleep 1, 2, 5, 10, 15,
	// 20 ms and on, so one waiting behind a heartbeat flush took 20-80 ms; waiting here,
	// it starts as soon as the writer before it commits. nil on Postgres.
	writer chan struct{}
}

// writerWait is how long a SQLite transaction waits for the one before it (the busy
// timeout the connections are opened with).
const writerWait = 15 * time.Second

// acquireWriter takes the SQLite writer slot, and returns its release.
func (db *DB) acquireWriter(ctx context.Context) (func(), error) {
	release := func() { <-db.writer }
	select {
	case db.writer <- struct{}{}:
		return release, nil // free: no timer for the common case
	default:
	}
	t := time.NewTimer(writerWait)
	defer t.Stop()
	select {
	case db.writer <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("database is locked: another transaction held the writer for %s", writerWait)
	}
}

// New assembles a DB; the dialect packages call it.
func New(sqlDB *sql.DB, d Dialect, pool *pgxpool.Pool, schema string, migrations fs.FS, closers ...func()) *DB {
	db := &DB{SQL: sqlDB, Dialect: d, Pool: pool, Schema: schema, migrations: migrations, closers: closers}
	if d == SQLite {
		db.writer = make(chan struct{}, 1)
	}
	return db
}

// Close releases the connections.
func (db *DB) Close() {
	db.commitMu.Lock()
	if db.hookTimer != nil {
		db.hookTimer.Stop()
		db.hookTimer, db.hookPending = nil, false
	}
	db.commitMu.Unlock()
	db.stmts.close()
	_ = db.SQL.Close()
	for _, c := range db.closers {
		c()
	}
}

func (db *DB) provider() (*goose.Provider, error) {
	d := goose.DialectSQLite3
	if db.Dialect == Postgres {
		d = goose.DialectPostgres
	}
	// Out-of-order is allowed because each capability owns a number range and they land
	// independently (docs/dev/conventions.md).
	p, err := goose.NewProvider(d, db.SQL, db.migrations, goose.WithAllowOutofOrder(true), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("load %s migrations: %w", db.Dialect, err)
	}
	return p, nil
}

// Migrate applies every pending migration.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.Dialect, err)
	}
	for _, r := range res {
		slog.Default().Debug("migration applied", "component", "store", "version", r.Source.Version, "path", r.Source.Path)
	}
	return nil
}

// Ready checks that the database answers and no migration is pending.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.SQL.PingContext(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	p, err := db.provider()
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("check migrations: %w", err)
	}
	if pending {
		return errors.New("migrations pending: run `lanyard migrate`")
	}
	return nil
}

// InTx runs fn in a transaction, committing when it returns nil. On SQLite the
// transaction is BEGIN IMMEDIATE (set in the DSN), so writers queue instead of failing
// with SQLITE_BUSY at upgrade time.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.writer != nil {
		release, err := db.acquireWriter(ctx)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer release()
	}
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.runCommitHooks()
	return nil
}

// AfterCommit registers fn to run after every transaction this process commits through
// InTx, and returns a function that removes it. fn runs on the committing goroutine, so
// it must only signal (a non-blocking channel send). On SQLite, where one process owns
// the file, this is how lifecycle hears of new outbox rows and command outcomes without
// polling; Postgres announces them with NOTIFY instead (migration 00402). Writes made
// outside InTx are not announced: consumers keep a poll as a backstop.
func (db *DB) AfterCommit(fn func()) (remove func()) {
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	if db.commitHooks == nil {
		db.commitHooks = map[int]func(){}
	}
	id := db.nextHook
	db.nextHook++
	db.commitHooks[id] = fn
	return func() {
		db.commitMu.Lock()
		delete(db.commitHooks, id)
		db.commitMu.Unlock()
	}
}

// commitHookWindow coalesces commit hooks: after the hooks run, commits within this
// window run them once more at its end instead of once each. Every consumer's pass reads
// everything new since its last one, so one signal covers many commits; at 10,000 agents
// on SQLite, a lifecycle and a notification pass after each inventory batch's commit
// were a tenth of the server's CPU. An isolated commit still signals at once.
const commitHookWindow = 50 * time.Millisecond

func (db *DB) runCommitHooks() {
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	if len(db.commitHooks) == 0 {
		return
	}
	if db.hookTimer != nil {
		db.hookPending = true
		return
	}
	db.fireCommitHooksLocked()
}

// fireCommitHooksLocked runs the hooks and opens a coalescing window (commitMu held).
func (db *DB) fireCommitHooksLocked() {
	for _, fn := range db.commitHooks {
		fn()
	}
	w := db.hookWindow
	if w == 0 {
		w = commitHookWindow
	}
	db.hookTimer = time.AfterFunc(w, db.endHookWindow)
}

// endHookWindow runs the hooks once for the commits of the window that just ended.
func (db *DB) endHookWindow() {
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	db.hookTimer = nil
	if db.hookPending {
		db.hookPending = false
		db.fireCommitHooksLocked()
	}
}

// IsUniqueViolation reports whether err is a unique-constraint failure on either dialect.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsUniqueViolation is the method form, for consumers that hold a *DB.
func (db *DB) IsUniqueViolation(err error) bool { return IsUniqueViolation(err) }

// QueryStrings runs a query whose rows are one text column (usually ids) and returns them
// all, so a caller can close the cursor before issuing more statements on the same
// connection (required inside a SQLite transaction).
func QueryStrings(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
