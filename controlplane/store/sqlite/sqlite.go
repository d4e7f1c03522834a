// Package sqlite opens Lanyard's embedded SQLite database (modernc.org/sqlite, no cgo).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/lanyardhq/lanyard/controlplane/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating if needed) the database file at path and checks it answers.
// WAL lets readers run beside the single writer; busy_timeout queues writers instead of
// failing; _txlock=immediate takes the write lock at BEGIN so a transaction never fails
// half way on lock upgrade.
func Open(ctx context.Context, path string) (*store.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// The WAL is copied back by checkpointLoop, not by the commit that crosses 1,000
	// pages (SQLite's default). No journal_size_limit: the writer that restarts the WAL
	// would truncate it in its commit (lock → ack p99 391 ms with a 64 MiB limit); the
	// file is reused from its start instead, and removed when the last connection closes.
	q.Add("_pragma", "wal_autocheckpoint(0)")
	// Pages come from a memory map and a 32 MiB cache per connection rather than a read
	// system call per page: at 10,000 devices reads of the default 2 MiB cache spent a
	// fifth of the dashboard's time in pread (docs/benchmarks.md, "Console and lists").
	q.Add("_pragma", "mmap_size(268435456)")
	q.Add("_pragma", "cache_size(-32768)")
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a few connections let reads proceed in WAL.
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkpointLoop(cctx, db, checkpointEvery)
	}()
	return store.New(db, store.SQLite, nil, "", sub, func() { cancel(); <-done }), nil
}

// checkpointEvery is how often checkpointLoop copies the WAL back into the database file:
// often enough that each copies little (a checkpoint of an empty WAL costs microseconds).
const checkpointEvery = 250 * time.Millisecond

// checkpointLoop checkpoints the WAL in the background until ctx ends. By default SQLite
// checkpoints in the commit that takes the WAL past 1,000 pages, so that one transaction
// pays for copying them and syncing the file: at 10,000 agents a lock command's commit
// took 20-60 ms that way while its median was 1.5 ms. A PASSIVE checkpoint waits for no
// reader or writer; a failed one (SQLITE_BUSY) is retried at the next tick, and the last
// connection to close checkpoints what is left.
func checkpointLoop(ctx context.Context, db *sql.DB, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _ = db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}
}
