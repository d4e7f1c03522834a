package auditchain_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func newChainer(t testing.TB, db *store.DB) *auditchain.Chainer {
	t.Helper()
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return auditchain.New(auditchain.Options{Store: db, Keyring: kr, CheckpointEvery: 2})
}

func writeAudit(t testing.TB, db *store.DB, orgID string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := 0; i < n; i++ {
		e := store.AuditFor(ctx, orgID, "device.note", "device", domain.NewID(), map[string]int{"n": i}, map[string]int{"n": i + 1})
		e.ID = domain.NewID()
		if err := db.InTx(ctx, func(tx *sql.Tx) error { return store.WriteAudit(ctx, tx, e) }); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// tamper runs statements with the append-only triggers out of the way, as an attacker
// with database access would.
func tamper(t *testing.T, db *store.DB, stmts ...string) {
	t.Helper()
	var pre, post []string
	if db.Dialect == store.Postgres {
		for _, tr := range []string{"audit_log DISABLE TRIGGER audit_log_no_change", "audit_chain DISABLE TRIGGER audit_chain_no_change",
			"audit_checkpoints DISABLE TRIGGER audit_checkpoints_no_change"} {
			pre = append(pre, "ALTER TABLE "+tr)
			post = append(post, "ALTER TABLE "+strings.Replace(tr, "DISABLE", "ENABLE", 1))
		}
	} else {
		for _, tr := range []string{"audit_log_no_update", "audit_log_no_delete", "audit_chain_no_update", "audit_chain_no_delete",
			"audit_checkpoints_no_update", "audit_checkpoints_no_delete"} {
			pre = append(pre, "DROP TRIGGER IF EXISTS "+tr)
		}
	}
	for _, s := range append(append(pre, stmts...), post...) {
		if _, err := db.SQL.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func linkOf(t *testing.T, db *store.DB, auditID string) (seq int64, prev, hash string) {
	t.Helper()
	if err := db.SQL.QueryRow(`SELECT seq, prev_hash, hash FROM audit_chain WHERE audit_id = $1`, auditID).Scan(&seq, &prev, &hash); err != nil {
		t.Fatal(err)
	}
	return
}

func q(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestVerifyNamesTheFirstTamperedRow(t *testing.T) {
	cases := []struct {
		name string
		// tamper changes the six chained rows; it returns the row verify must name
		tamper    func(t *testing.T, db *store.DB, org string, ids []string) string
		reason    string
		unchained int
	}{
		{"edit", func(t *testing.T, db *store.DB, org string, ids []string) string {
			tamper(t, db, `UPDATE audit_log SET actor = 'someone-else' WHERE id = `+q(ids[2]))
			return ids[2]
		}, "edited", 0},
		{"delete the row", func(t *testing.T, db *store.DB, org string, ids []string) string {
			tamper(t, db, `DELETE FROM audit_log WHERE id = `+q(ids[2]))
			return ids[2]
		}, "row deleted", 0},
		{"delete the row and its link", func(t *testing.T, db *store.DB, org string, ids []string) string {
			tamper(t, db, `DELETE FROM audit_log WHERE id = `+q(ids[2]), `DELETE FROM audit_chain WHERE audit_id = `+q(ids[2]))
			return ids[3]
		}, "sequence gap", 0},
		{"delete the tail", func(t *testing.T, db *store.DB, org string, ids []string) string {
			tamper(t, db, `DELETE FROM audit_log WHERE id IN (`+q(ids[4])+`,`+q(ids[5])+`)`,
				`DELETE FROM audit_chain WHERE audit_id IN (`+q(ids[4])+`,`+q(ids[5])+`)`)
			return ""
		}, "beyond the chain head", 0},
		{"insert", func(t *testing.T, db *store.DB, org string, ids []string) string {
			// A forged row linked correctly after ids[1] (seq 2), the rest shifted up one.
			_, _, h2 := linkOf(t, db, ids[1])
			forged := store.AuditFor(context.Background(), org, "device.wipe", "device", "d1", nil, nil)
			forged.ID, forged.At = domain.NewID(), domain.Now().Truncate(1000)
			if err := store.WriteAudit(context.Background(), db.SQL, forged); err != nil {
				t.Fatal(err)
			}
			got, _, err := db.ListAudit(context.Background(), org, store.AuditFilter{Action: "device.wipe"}, store.Page{Limit: 1})
			if err != nil || len(got) != 1 {
				t.Fatalf("%v %v", got, err)
			}
			tamper(t, db, `DELETE FROM audit_unchained WHERE audit_id = `+q(forged.ID),
				`UPDATE audit_chain SET seq = seq + 1000 WHERE seq >= 3 AND org_id = `+q(org),
				`UPDATE audit_chain SET seq = seq - 999 WHERE seq >= 1000 AND org_id = `+q(org),
				`INSERT INTO audit_chain (org_id, seq, audit_id, prev_hash, hash, chained_at) VALUES (`+q(org)+`, 3, `+q(forged.ID)+`, `+q(h2)+`, `+
					q(auditchain.LinkHash(h2, got[0]))+`, CURRENT_TIMESTAMP)`)
			return ids[2]
		}, "inserted", 0},
		{"reorder", func(t *testing.T, db *store.DB, org string, ids []string) string {
			tamper(t, db, `UPDATE audit_chain SET seq = 1003 WHERE audit_id = `+q(ids[2]),
				`UPDATE audit_chain SET seq = 3 WHERE audit_id = `+q(ids[3]),
				`UPDATE audit_chain SET seq = 4 WHERE audit_id = `+q(ids[2]))
			return ids[3]
		}, "moved", 0},
		{"edit and rewrite the chain after it", func(t *testing.T, db *store.DB, org string, ids []string) string {
			// The attacker knows the hash function: only the signed checkpoint catches this.
			tamper(t, db, `UPDATE audit_log SET actor = 'someone-else' WHERE id = `+q(ids[2]))
			all, _, err := db.ListAudit(context.Background(), org, store.AuditFilter{}, store.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]domain.AuditEntry{}
			for _, e := range all {
				byID[e.ID] = e
			}
			_, _, prev := linkOf(t, db, ids[1])
			var stmts []string
			for _, id := range ids[2:] {
				h := auditchain.LinkHash(prev, byID[id])
				stmts = append(stmts, `UPDATE audit_chain SET prev_hash = `+q(prev)+`, hash = `+q(h)+` WHERE audit_id = `+q(id))
				prev = h
			}
			tamper(t, db, stmts...)
			return ids[3] // the first checkpoint after the edit (seq 3) is at seq 4
		}, "checkpoint does not match", 0},
		{"forged checkpoint", func(t *testing.T, db *store.DB, org string, ids []string) string {
			_, _, h5 := linkOf(t, db, ids[4])
			tamper(t, db, `INSERT INTO audit_checkpoints (org_id, seq, head_hash, signed_at, key_id, signature)
				SELECT org_id, 5, `+q(h5)+`, signed_at, key_id, signature FROM audit_checkpoints WHERE seq = 4 AND org_id = `+q(org))
			return ids[4]
		}, "signature is invalid", 0},
		{"row not chained yet", func(t *testing.T, db *store.DB, org string, ids []string) string {
			writeAudit(t, db, org, 1)
			return ""
		}, "", 1},
	}
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		c := newChainer(t, db) // one server key for the database, as on a server
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				org := storetest.Org(t, db, domain.PlanPro).ID
				var ids []string
				for i := 0; i < 3; i++ { // checkpoints at 2, 4 and 6: ids[k] is at seq k+1
					ids = append(ids, writeAudit(t, db, org, 2)...)
					if err := c.ChainOrg(ctx, org); err != nil {
						t.Fatal(err)
					}
				}
				before, err := c.Verify(ctx, org)
				if err != nil {
					t.Fatal(err)
				}
				if !before.OK || before.Rows != 6 || before.Checkpoints != 3 || before.Unchained != 0 {
					t.Fatalf("before tampering: %+v %+v", before, before.FirstBad)
				}
				want := tc.tamper(t, db, org, ids)
				got, err := c.Verify(ctx, org)
				if err != nil {
					t.Fatal(err)
				}
				if got.Unchained != tc.unchained {
					t.Errorf("unchained %d, want %d", got.Unchained, tc.unchained)
				}
				if tc.reason == "" {
					if !got.OK {
						t.Fatalf("want ok: %+v", got.FirstBad)
					}
					return
				}
				if got.OK || got.FirstBad.RowID != want || !strings.Contains(got.FirstBad.Reason, tc.reason) {
					t.Fatalf("first bad %+v, want row %q with %q", got.FirstBad, want, tc.reason)
				}
			})
		}
	})
}
