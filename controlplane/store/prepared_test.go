package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestPreparedTx: statements through the cache give the same results as unprepared ones,
// each query is prepared once however many transactions run it, the cache stops growing
// at maxPrepared (later queries still run, unprepared), and a statement that cannot be
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
	if n := len(db.stmts.m); n != 3 {
		t.Fatalf("%d statements cached after three rounds of three, want 3", n)
	}
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
	if n := len(db.stmts.m); n != maxPrepared {
		t.Fatalf("cache holds %d, want the bound %d", n, maxPrepared)
	}
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
