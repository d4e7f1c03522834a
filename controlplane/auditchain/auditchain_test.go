package auditchain_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// chained writes n audit rows for a new org, a second apart and up to half a minute old,
// and chains them with a checkpoint every 4 rows and a Grace of 2 s; it returns the org and
// the row ids in chain order.
func chained(t *testing.T, db *store.DB, key ed25519.PrivateKey, n int) (string, []string, auditchain.Options) {
	t.Helper()
	ctx := context.Background()
	org := storetest.Org(t, db, domain.PlanPro)
	o := auditchain.Options{CheckpointEvery: 4, Grace: 2 * time.Second}
	base := time.Now().UTC().Add(-30 * time.Second)
	for i := 0; i < n; i++ {
		e := store.AuditFor(ctx, org.ID, "test.write", "thing", "t1", nil, map[string]int{"i": i})
		e.At = base.Add(time.Duration(i) * time.Second)
		if err := store.WriteAudit(ctx, db.SQL, e); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh chainer scans everything: these rows are backdated, which live rows never are.
	if _, err := auditchain.NewChainer(db, key, o).ChainOnce(ctx); err != nil {
		t.Fatal(err)
	}
	ids, err := store.QueryStrings(ctx, db.SQL, `SELECT audit_id FROM audit_chain WHERE org_id = $1 ORDER BY seq`, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	return org.ID, ids, o
}

// tamper runs statements as someone with direct database access would, with the
// append-only triggers out of the way.
func tamper(t *testing.T, db *store.DB, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if db.Dialect == store.Postgres {
			stmts = append([]string{"SET LOCAL session_replication_role = replica"}, stmts...)
		} else {
			for _, trg := range []string{"audit_log_no_update", "audit_log_no_delete", "audit_chain_no_update", "audit_chain_no_delete",
				"audit_checkpoints_no_update", "audit_checkpoints_no_delete"} {
				stmts = append([]string{"DROP TRIGGER IF EXISTS " + trg}, stmts...)
			}
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func TestVerifyNamesTheFirstBadRow(t *testing.T) {
	// seq k holds ids[k-1]; 10 rows, checkpoints at 4 and 8 (the head waits for the interval).
	tests := []struct {
		name    string
		tamper  func(ids []string, org string) []string
		badRow  func(ids []string) string // "" = none named
		reason  string
		wantErr bool
	}{
		{name: "clean"},
		{name: "edit", tamper: func(ids []string, _ string) []string {
			return []string{`UPDATE audit_log SET action = 'device.nothing_happened' WHERE id = '` + ids[5] + `'`}
		}, badRow: func(ids []string) string { return ids[5] }, reason: "edited"},
		{name: "delete row", tamper: func(ids []string, _ string) []string {
			return []string{`DELETE FROM audit_log WHERE id = '` + ids[5] + `'`}
		}, badRow: func(ids []string) string { return ids[5] }, reason: "deleted from audit_log"},
		{name: "delete row and link", tamper: func(ids []string, _ string) []string {
			return []string{`DELETE FROM audit_log WHERE id = '` + ids[5] + `'`, `DELETE FROM audit_chain WHERE audit_id = '` + ids[5] + `'`}
		}, badRow: func(ids []string) string { return ids[6] }, reason: "missing before this row"},
		{name: "delete the tail past a checkpoint", tamper: func(ids []string, org string) []string {
			return []string{`DELETE FROM audit_log WHERE id IN (SELECT audit_id FROM audit_chain WHERE org_id = '` + org + `' AND seq > 6)`,
				`DELETE FROM audit_chain WHERE org_id = '` + org + `' AND seq > 6`}
		}, badRow: func([]string) string { return "" }, reason: "deleted from the end"},
		{name: "insert behind the chain", tamper: func(ids []string, org string) []string {
			return []string{`INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, at)
				SELECT 'forged-row', org_id, actor, 'device.wiped', target_type, target_id, at FROM audit_log WHERE id = '` + ids[2] + `'`}
		}, badRow: func([]string) string { return "forged-row" }, reason: "inserted after the fact"},
		{name: "reorder", tamper: func(ids []string, org string) []string {
			w := ` WHERE org_id = '` + org + `' AND seq = `
			return []string{`UPDATE audit_chain SET seq = -1` + w + `6`, `UPDATE audit_chain SET seq = 6` + w + `7`, `UPDATE audit_chain SET seq = 7` + w + `-1`}
		}, badRow: func(ids []string) string { return ids[6] }, reason: "inserted, or rows were reordered"},
		{name: "checkpoint deleted", tamper: func(ids []string, org string) []string {
			return []string{`DELETE FROM audit_checkpoints WHERE org_id = '` + org + `' AND seq = 4`}
		}, badRow: func(ids []string) string { return ids[3] }, reason: "checkpoints were deleted"},
		{name: "checkpoint forged", tamper: func(ids []string, org string) []string {
			return []string{`UPDATE audit_checkpoints SET head_hash = 'ab' WHERE org_id = '` + org + `' AND seq = 8`}
		}, badRow: func(ids []string) string { return ids[7] }, reason: "bad signature"},
	}
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				key := newKey(t)
				org, ids, o := chained(t, db, key, 10)
				if len(ids) != 10 {
					t.Fatalf("chained %d rows, want 10", len(ids))
				}
				if tc.tamper != nil {
					tamper(t, db, tc.tamper(ids, org)...)
				}
				r, err := auditchain.Verify(ctx, db.SQL, key.Public().(ed25519.PublicKey), org, o)
				if err != nil {
					t.Fatal(err)
				}
				if tc.tamper == nil {
					if !r.OK || r.Rows != 10 || r.Checkpoints != 2 || r.Unchained != 0 {
						t.Fatalf("clean chain: %+v", r)
					}
					return
				}
				if r.OK || r.BadRowID != tc.badRow(ids) || !strings.Contains(r.Reason, tc.reason) {
					t.Fatalf("got %s\nwant row %q, reason containing %q", r, tc.badRow(ids), tc.reason)
				}
			})
		}
	})
}

// A row whose transaction committed after a later row was chained is chained late, not
// reported: only rows older than the chain head by more than Grace are.
func TestLateCommitIsChainedNotReported(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		key := newKey(t)
		org, ids, o := chained(t, db, key, 3)
		var headAt time.Time
		if err := db.SQL.QueryRowContext(ctx, `SELECT at FROM audit_log WHERE id = $1`, ids[len(ids)-1]).Scan(&headAt); err != nil {
			t.Fatal(err)
		}
		e := store.AuditFor(ctx, org, "test.late", "thing", "t1", nil, nil)
		e.At = headAt.Add(-time.Second) // within Grace
		if err := store.WriteAudit(ctx, db.SQL, e); err != nil {
			t.Fatal(err)
		}
		r, err := auditchain.Verify(ctx, db.SQL, key.Public().(ed25519.PublicKey), org, o)
		if err != nil || !r.OK || r.Unchained != 1 {
			t.Fatalf("before chaining: %+v %v", r, err)
		}
		if n, err := auditchain.NewChainer(db, key, o).ChainOnce(ctx); err != nil || n != 1 {
			t.Fatalf("chain late row: %d %v", n, err)
		}
		r, err = auditchain.Verify(ctx, db.SQL, key.Public().(ed25519.PublicKey), org, o)
		if err != nil || !r.OK || r.Rows != int64(len(ids)+1) || r.Unchained != 0 {
			t.Fatalf("after chaining: %+v %v", r, err)
		}
	})
}

// The chainer runs beside audited business writes (row locks, then an audit row, as HR
// sync does) without a deadlock: business transactions never wait for the chain.
func TestChainerBesideConcurrentWriters(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		key := newKey(t)
		org := storetest.Org(t, db, domain.PlanPro)
		var emps []domain.Employee
		for _, name := range []string{"Ada", "Bo", "Cy"} {
			emps = append(emps, storetest.Employee(t, db, org.ID, name))
		}
		o := auditchain.Options{CheckpointEvery: 16, Batch: 7}
		chainer := auditchain.NewChainer(db, key, o)
		done := make(chan struct{})
		chainErr := make(chan error, 1)
		go func() {
			for {
				if _, err := chainer.ChainOnce(ctx); err != nil {
					chainErr <- err
					return
				}
				select {
				case <-done:
					chainErr <- nil
					return
				default:
				}
			}
		}()
		const writers, each = 8, 15
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					note := "note"
					e := emps[(w+i)%len(emps)]
					if _, err := db.PatchEmployeeLocal(ctx, org.ID, e.ID, store.EmployeeLocalPatch{Notes: &note}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(done)
		close(errs)
		for err := range errs {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
				t.Fatalf("deadlock: %v", err)
			}
			t.Fatalf("writer: %v", err)
		}
		if err := <-chainErr; err != nil {
			t.Fatalf("chainer: %v", err)
		}
		if _, err := chainer.ChainOnce(ctx); err != nil {
			t.Fatal(err)
		}
		var total int64
		if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log WHERE org_id = $1`, org.ID).Scan(&total); err != nil {
			t.Fatal(err)
		}
		r, err := auditchain.Verify(ctx, db.SQL, key.Public().(ed25519.PublicKey), org.ID, o)
		if err != nil || !r.OK || r.Rows != total || r.Unchained != 0 {
			t.Fatalf("verify after concurrent writes: %+v %v (audit rows %d)", r, err, total)
		}
	})
}
