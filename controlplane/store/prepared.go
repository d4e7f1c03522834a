package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
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
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	pending map[string]bool
}

// get returns the cached statement for query, or nil to run it unprepared this time. A
// miss prepares it in the background: preparing on the database takes a connection of
// its own, and inside a SQLite transaction that holds the write lock while every other
// connection waits for it, waiting for one would deadlock until the busy timeout. (Once
// cached, database/sql prepares it on the transaction's own connection.)
func (c *stmtCache) get(db *sql.DB, query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[query]; ok {
		return s
	}
	if c.pending[query] || len(c.m)+len(c.pending) >= maxPrepared {
		return nil
	}
	if c.pending == nil {
		c.pending = map[string]bool{}
	}
	c.pending[query] = true
	go c.prepare(db, query)
	return nil
}

func (c *stmtCache) prepare(db *sql.DB, query string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := db.PrepareContext(ctx, query)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, query)
	if err != nil {
		return // the statement runs unprepared, which reports its error; a later call retries
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = s
}

// size is how many statements are cached and how many are being prepared.
func (c *stmtCache) size() (cached, pending int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m), len(c.pending)
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
func (p preparedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	s := p.db.stmts.get(p.db.SQL, query)
	if s == nil {
		return nil
	}
	return p.tx.StmtContext(ctx, s)
}

func (p preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := p.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return p.tx.ExecContext(ctx, query, args...)
}

func (p preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := p.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return p.tx.QueryContext(ctx, query, args...)
}

func (p preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := p.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return p.tx.QueryRowContext(ctx, query, args...)
}
