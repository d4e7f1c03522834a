package backup_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The Postgres procedure of docs/operations.md ("Backup and restore"), run for real with
// this machine's pg_dump and pg_restore: dump a migrated, populated database with
// pg_dump -Fc, restore it with pg_restore into a fresh database, and find every table of
// both schemas (Lanyard's and nanomdm's) with its rows and no migration pending.
func TestPostgresDumpRestoreProcedure(t *testing.T) {
	base := os.Getenv(storetest.EnvDatabaseURL)
	if base == "" {
		t.Skipf("%s not set", storetest.EnvDatabaseURL)
	}
	for _, bin := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	ctx := context.Background()
	srcURL, dstURL := throwawayDB(t, base), throwawayDB(t, base)

	src, err := postgres.Open(ctx, srcURL)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Migrate(ctx, src); err != nil {
		t.Fatal(err)
	}
	org := storetest.Org(t, src, domain.PlanPro)
	emp := storetest.Employee(t, src, org.ID, "Ada")
	storetest.Device(t, src, org.ID, "SER-PG-1")

	dump := filepath.Join(t.TempDir(), "lanyard.dump")
	run(t, "pg_dump", "--format=custom", "--no-owner", "--file", dump, "--dbname", srcURL)
	if st, err := os.Stat(dump); err != nil || st.Size() == 0 {
		t.Fatalf("dump %v %v", st, err)
	}
	run(t, "pg_restore", "--no-owner", "--exit-on-error", "--single-transaction", "--dbname", dstURL, dump)

	dst, err := postgres.Open(ctx, dstURL)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.Ready(ctx); err != nil {
		t.Fatalf("restored database: %v", err)
	}
	want, got := pgCounts(t, src), pgCounts(t, dst)
	if len(want) < 40 || got["public.employees"] != 1 || got["public.devices"] != 1 {
		t.Fatalf("restored tables %v", got)
	}
	for table, n := range want {
		if got[table] != n {
			t.Errorf("%s: %d rows restored, %d dumped", table, got[table], n)
		}
	}
	if e, err := dst.GetEmployee(ctx, org.ID, emp.ID); err != nil || e.ID != emp.ID {
		t.Fatalf("employee after restore: %+v %v", e, err)
	}
}

// throwawayDB creates a database on the test server and drops it when the test ends.
func throwawayDB(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "lanyard_bk_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String()
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// pgCounts counts the rows of every table outside the system schemas.
func pgCounts(t *testing.T, db *store.DB) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	tables, err := store.QueryStrings(ctx, db.SQL, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, tb := range tables {
		var n int64
		if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+tb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}
