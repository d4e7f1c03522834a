package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// maxPrepared bounds the statement cache: it is for the hot path's fixed statements, and
// a caller that built statements from data would otherwise grow it without end.
const maxPrepared = 64

// stmtCache keeps statements prepared once and reused on every connection (database/sql
// prepares a cached *sql.Stmt on each connection the first time it runs there). SQLite
// otherwise parses every statement anew: at 10,000 agents, parsing was a quarter of the
// server's CPU in the inventory phase. pgx caches its own (named statements), so only
// SQLite uses it.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns the cached statement for query, preparing it on first use; nil (and no
// error) when the cache is full.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[query]; ok {
		return s, nil
	}
	if len(c.m) >= maxPrepared {
		return nil, nil
	}
	s, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = s
	return s, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		_ = s.Close()
	}
	c.m = nil
}

// preparedTx runs tx's statements through db's statement cache.
type preparedTx struct {
	db *DB
	tx *sql.Tx
}

// hot is the Querier of a hot-path transaction: tx itself on Postgres, tx through the
// statement cache on SQLite.
func (db *DB) hot(tx *sql.Tx) Querier {
	if db.Dialect == Postgres {
		return tx
	}
	return preparedTx{db: db, tx: tx}
}

// stmt is query prepared for p's transaction, or nil to run it unprepared.
func (p preparedTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s, err := p.db.stmts.get(ctx, p.db.SQL, query)
	if err != nil || s == nil {
		return nil, err
	}
	return p.tx.StmtContext(ctx, s), nil
}

func (p preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return p.tx.ExecContext(ctx, query, args...)
	}
	return s.ExecContext(ctx, args...)
}

func (p preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return p.tx.QueryContext(ctx, query, args...)
	}
	return s.QueryContext(ctx, args...)
}

// QueryRowContext falls back to the unprepared query when preparing fails, so the error
// reaches the caller through Scan like any other.
func (p preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := p.stmt(ctx, query)
	if err != nil || s == nil {
		return p.tx.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}
