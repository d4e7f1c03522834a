package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestPreparedTx: statements through the cache give the same results as unprepared ones
// (the first run of each is unprepared while it is prepared in the background), each
// query is cached once however many transactions run it, the cache stops growing at
// maxPrepared (later queries still run, unprepared), and a statement that cannot be
// prepared reports its error through Exec and through QueryRow's Scan.
func TestPreparedTx(t *testing.T) {
	ctx := context.Background()
	sqlDB, err := sql.Open("sqlite", "file:prepared?mode=memory&cache=shared")
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	db := New(sqlDB, SQLite, nil, "", nil)
	defer db.Close()
	if _, err := sqlDB.ExecContext(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			q := db.hot(tx)
			if _, err := q.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = kv.v + excluded.v`, "a", 1); err != nil {
				return err
			}
			var v int
			if err := q.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, "a").Scan(&v); err != nil {
				return err
			}
			if v != i+1 {
				return fmt.Errorf("round %d: v = %d", i, v)
			}
			rows, err := q.QueryContext(ctx, `SELECT k FROM kv ORDER BY k`)
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			if n != 1 {
				return fmt.Errorf("rows %d", n)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitCached(t, db, 3)
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		q := db.hot(tx)
		for i := 0; i < maxPrepared+5; i++ {
			var v int
			if err := q.QueryRowContext(ctx, fmt.Sprintf(`SELECT v + %d FROM kv WHERE k = $1`, i), "a").Scan(&v); err != nil {
				return err
			}
			if v != 3+i {
				return fmt.Errorf("query %d: %d", i, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitCached(t, db, maxPrepared)
	db.stmts.close()
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		q := db.hot(tx)
		if _, err := q.ExecContext(ctx, `UPDATE nosuch SET v = 1`); err == nil || !strings.Contains(err.Error(), "nosuch") {
			return fmt.Errorf("exec of a bad statement: %v", err)
		}
		var v int
		if err := q.QueryRowContext(ctx, `SELECT v FROM nosuch`).Scan(&v); err == nil || !strings.Contains(err.Error(), "nosuch") {
			return fmt.Errorf("query row of a bad statement: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitCached waits (with a deadline) for the background preparations to settle at want.
func waitCached(t *testing.T, db *DB, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cached, pending := db.stmts.size()
		if pending == 0 && cached == want {
			return
		}
		if pending == 0 && cached != want || time.Now().After(deadline) {
			t.Fatalf("%d statements cached (%d being prepared), want %d", cached, pending, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCommitHooksCoalesce: the first commit signals at once; commits inside the window
// that follows signal once, when it ends, not once each; and a commit after a quiet
// window signals at once again.
func TestCommitHooksCoalesce(t *testing.T) {
	ctx := context.Background()
	sqlDB, err := sql.Open("sqlite", "file:hooks?mode=memory&cache=shared")
	if err != nil {
		t.Fatal(err)
	}
	db := New(sqlDB, SQLite, nil, "", nil)
	defer db.Close()
	calls := make(chan struct{}, 100)
	remove := db.AfterCommit(func() { calls <- struct{}{} })
	defer remove()
	commit := func() {
		t.Helper()
		if err := db.InTx(ctx, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, `SELECT 1`); return err }); err != nil {
			t.Fatal(err)
		}
	}
	// A window no test outlives: what coalesces cannot depend on the machine's speed.
	db.commitMu.Lock()
	db.hookWindow = time.Hour
	db.commitMu.Unlock()
	commit()
	if len(calls) != 1 {
		t.Fatalf("first commit: %d signals, want 1 at once", len(calls))
	}
	for i := 0; i < 20; i++ {
		commit()
	}
	if len(calls) != 1 {
		t.Fatalf("20 commits in the window: %d signals, want still 1", len(calls))
	}
	db.endHookWindow() // the window ends (what its timer does)
	if len(calls) != 2 {
		t.Fatalf("window end: %d signals, want the one for the 20 commits", len(calls))
	}
	db.endHookWindow() // a window with no commit signals nothing
	if len(calls) != 2 {
		t.Fatalf("quiet window: %d signals, want 2", len(calls))
	}
	commit()
	if len(calls) != 3 {
		t.Fatalf("commit after a quiet window: %d signals, want one more at once", len(calls))
	}
}
