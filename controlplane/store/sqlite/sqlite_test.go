package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.DB { return storetest.NewSQLite(t) })
}

// TestBackgroundCheckpoint: commits never checkpoint (wal_autocheckpoint is 0 on the
// connections), yet what they write reaches the database file within seconds, from the
// background checkpoint. Without it the file would not grow and the WAL would grow
// without end.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lanyard.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var auto int
	if err := db.SQL.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE blob (b TEXT)`); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	before := st.Size()
	row := strings.Repeat("x", 4096)
	for i := 0; i < 512; i++ { // 2 MiB, about 500 pages
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO blob (b) VALUES ($1)`, row); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() >= before+2<<20 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes (was %d): the WAL was not checkpointed", st.Size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
