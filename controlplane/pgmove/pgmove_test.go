package pgmove_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/pgmove"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// pair is a migrated SQLite source and an empty, migrated Postgres target (skips without
// Postgres), River's tables included as `lanyard serve` migrates them.
func pair(t *testing.T) (src, dst *store.DB) {
	t.Helper()
	dst = storetest.NewPostgres(t)
	src = storetest.NewSQLite(t)
	for _, db := range []*store.DB{src, dst} {
		if err := jobs.Migrate(context.Background(), db); err != nil {
			t.Fatal(err)
		}
	}
	return src, dst
}

// Every Postgres table is either copied or on the skip list with a reason, so a table a
// later migration adds is moved (or the move says why not) without anyone remembering.
func TestPlanCoversEveryTable(t *testing.T) {
	src, dst := pair(t)
	ctx := context.Background()
	p, err := pgmove.NewPlan(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	copied := map[string]bool{}
	for _, tb := range p.Tables {
		copied[tb.Name] = true
	}
	pgTables, err := store.QueryStrings(ctx, dst.SQL, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range pgTables {
		if !copied[tb] && pgmove.SkipPostgres[tb] == "" {
			t.Errorf("postgres table %s is neither copied nor on the skip list", tb)
		}
	}
	for name, why := range pgmove.SkipPostgres {
		if strings.TrimSpace(why) == "" {
			t.Errorf("skip-list entry %s has no reason", name)
		}
		if _, ok := p.Skipped[name]; !ok {
			t.Errorf("skip-list entry %s names no table: drop it", name)
		}
	}
	for _, must := range []string{"orgs", "agents", "pki_authority", "pki_certs", "audit_log", "river_job", "mdm_enrollments", "device_commands"} {
		if !copied[must] {
			t.Errorf("%s is not copied", must)
		}
	}
	// Referenced tables come first.
	pos := map[string]int{}
	for i, tb := range p.Tables {
		pos[tb.Name] = i
	}
	if pos["orgs"] > pos["agents"] || pos["employees"] > pos["device_assignments"] {
		t.Errorf("not in foreign-key order: %v", pos)
	}
}

// A table only one side has stops the move before anything is written.
func TestPlanRefusesAnUnknownTable(t *testing.T) {
	src, dst := pair(t)
	if _, err := dst.SQL.Exec(`CREATE TABLE later_feature (id text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	_, err := pgmove.Move(context.Background(), src, dst, pgmove.Options{})
	if err == nil || !strings.Contains(err.Error(), "later_feature") {
		t.Fatalf("move with an uncovered table: %v", err)
	}
}

// Booleans, times, JSON held as SQLite JSONB, arrays, bit masks, blobs and sequences
// arrive as the same values; a second move into the filled target is refused.
func TestMoveConvertsFaithfully(t *testing.T) {
	src, dst := pair(t)
	ctx := context.Background()
	org := storetest.Org(t, src, domain.PlanPro)
	emp := storetest.Employee(t, src, org.ID, "Ada")
	dev := storetest.Device(t, src, org.ID, "SER-MOVE-1")
	at := time.Date(2026, 12, 2, 10, 11, 12, 345678000, time.UTC)
	if _, err := src.SQL.ExecContext(ctx, `INSERT INTO river_job (args, kind, state, scheduled_at, created_at, tags, attempted_by, errors, unique_key, unique_states, metadata)
		VALUES (jsonb('{"a":1,"s":"x"}'), 'k', 'available', ?, ?, jsonb('["t1","t2"]'), jsonb('["c1"]'), jsonb('[{"error":"boom","attempt":1}]'), x'0102ff', 241, jsonb('{}'))`,
		at.Format("2006-01-02 15:04:05.999999999"), at.Format("2006-01-02 15:04:05.999999999")); err != nil {
		t.Fatal(err)
	}
	var progress []string
	counts, err := pgmove.Move(ctx, src, dst, pgmove.Options{Progress: func(table string, n int64) { progress = append(progress, table) }, BatchRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	if counts["employees"] != 1 || counts["devices"] != 1 || counts["river_job"] != 1 || len(progress) != len(counts) {
		t.Fatalf("counts %v progress %v", counts, progress)
	}
	got, err := dst.GetEmployee(ctx, org.ID, emp.ID)
	if err != nil || !reflect.DeepEqual(got.HR, emp.HR) || !got.CreatedAt.Equal(emp.CreatedAt.Truncate(time.Microsecond)) {
		t.Fatalf("employee %+v %v, want %+v", got, err, emp)
	}
	if d, err := dst.GetDevice(ctx, org.ID, dev.ID); err != nil || d.SerialNumber != dev.SerialNumber || d.State != dev.State {
		t.Fatalf("device %+v %v", d, err)
	}
	var args, tags, by, errs, bits string
	var key []byte
	var sched time.Time
	if err := dst.SQL.QueryRowContext(ctx, `SELECT args::text, tags::text, attempted_by::text, errors::text, unique_states::text, unique_key, scheduled_at FROM river_job`).
		Scan(&args, &tags, &by, &errs, &bits, &key, &sched); err != nil {
		t.Fatal(err)
	}
	if args != `{"a": 1, "s": "x"}` || tags != `{t1,t2}` || by != `{c1}` || !strings.Contains(errs, `boom`) || bits != "11110001" || string(key) != "\x01\x02\xff" || !sched.Equal(at) {
		t.Fatalf("river job: args %s tags %s by %s errors %s bits %s key %x at %s", args, tags, by, errs, bits, key, sched)
	}
	// The sequence moved past the copied ids: a new job does not collide.
	if _, err := dst.SQL.ExecContext(ctx, `INSERT INTO river_job (args, kind) VALUES ('{}', 'k2')`); err != nil {
		t.Fatalf("insert after the move: %v", err)
	}
	if _, err := pgmove.Move(ctx, src, dst, pgmove.Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second move: %v", err)
	}
}
