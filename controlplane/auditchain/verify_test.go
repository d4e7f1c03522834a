package auditchain_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// chainFixture is an org with six audit rows written through the writer, and a signing key.
type chainFixture struct {
	db   *store.DB
	org  string
	rows []auditchain.Row // by seq-1
	priv ed25519.PrivateKey
	keys map[string]ed25519.PublicKey
}

func newFixture(t *testing.T, db *store.DB) *chainFixture {
	t.Helper()
	ctx := context.Background()
	o := storetest.Org(t, db, domain.PlanPro)
	// Org creation may write audit rows of its own; the fixture's rows follow them.
	for i := 0; i < 6; i++ {
		e := domain.AuditEntry{OrgID: o.ID, Actor: "token:t1", Action: fmt.Sprintf("device.test_%d", i), TargetType: "device",
			TargetID: fmt.Sprintf("d%d", i), After: []byte(fmt.Sprintf(`{"n":%d}`, i)), RequestID: "req-1"}
		if err := db.InTx(ctx, func(tx *sql.Tx) error { return store.WriteAudit(ctx, tx, e) }); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.AuditChainRows(ctx, o.ID, 0, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return &chainFixture{db: db, org: o.ID, rows: rows, priv: priv, keys: map[string]ed25519.PublicKey{auditchain.KeyID(pub): pub}}
}

// row returns the row at seq n counted from the end of the chain (last = 1).
func (f *chainFixture) fromEnd(n int) auditchain.Row { return f.rows[len(f.rows)-n] }

func (f *chainFixture) verify(t *testing.T) auditchain.Report {
	t.Helper()
	v := &auditchain.Verifier{Src: f.db, Keys: f.keys, PageSize: 2}
	rep, err := v.Verify(context.Background(), f.org)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (f *chainFixture) checkpoint(t *testing.T, r auditchain.Row) auditchain.Checkpoint {
	t.Helper()
	c := auditchain.Sign(auditchain.Checkpoint{ID: domain.NewID(), OrgID: f.org, Seq: r.Seq, Hash: r.Hash, At: domain.Now()}, f.priv)
	if err := f.db.InsertAuditCheckpoint(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// exec runs raw SQL as an attacker with database access would, after removing the
// append-only guards (the trigger, and for duplicates the unique position index).
func (f *chainFixture) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := f.db.SQL.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func dropGuards(t *testing.T, f *chainFixture) {
	t.Helper()
	if f.db.Dialect == store.Postgres {
		f.exec(t, `DROP TRIGGER audit_log_no_change ON audit_log`)
		f.exec(t, `DROP TRIGGER audit_checkpoints_no_change ON audit_checkpoints`)
	} else {
		f.exec(t, `DROP TRIGGER audit_log_no_update`)
		f.exec(t, `DROP TRIGGER audit_log_no_delete`)
		f.exec(t, `DROP TRIGGER audit_checkpoints_no_update`)
	}
	f.exec(t, `DROP INDEX audit_log_chain`)
}

func insertRaw(t *testing.T, f *chainFixture, id string, seq any, prev, hash any) {
	t.Helper()
	f.exec(t, `INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, before_json, after_json, request_id, at, seq, prev_hash, hash)
		VALUES ($1, $2, 'token:evil', 'device.deleted', 'device', 'd9', NULL, NULL, '', $3, $4, $5, $6)`,
		id, f.org, auditchain.Truncate(domain.Now()), seq, prev, hash)
}

func TestVerifyNamesEachKindOfTampering(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		cases := []struct {
			name   string
			tamper func(t *testing.T, f *chainFixture) (kind auditchain.Kind, rowID string)
		}{
			{"edited", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				r := f.fromEnd(3)
				f.exec(t, `UPDATE audit_log SET after_json = '{"n":99}' WHERE id = $1`, r.Entry.ID)
				return auditchain.Edited, r.Entry.ID
			}},
			{"edited actor", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				r := f.fromEnd(6)
				f.exec(t, `UPDATE audit_log SET actor = 'system:nobody' WHERE id = $1`, r.Entry.ID)
				return auditchain.Edited, r.Entry.ID
			}},
			{"edited and rehashed", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				r := f.fromEnd(3)
				r.Entry.Action = "device.nothing_happened"
				f.exec(t, `UPDATE audit_log SET action = $1, hash = $2 WHERE id = $3`, r.Entry.Action,
					auditchain.Hash(r.PrevHash, r.Seq, r.Entry), r.Entry.ID)
				return auditchain.Rewritten, r.Entry.ID
			}},
			{"deleted", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				f.exec(t, `DELETE FROM audit_log WHERE id = $1`, f.fromEnd(3).Entry.ID)
				return auditchain.Deleted, f.fromEnd(2).Entry.ID // named: the row after the gap
			}},
			{"inserted with a duplicate seq", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				r := f.fromEnd(3)
				insertRaw(t, f, "zzzz-forged", r.Seq, r.PrevHash, "00")
				return auditchain.Inserted, "zzzz-forged"
			}},
			{"inserted with a duplicate seq, sorting first", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				r := f.fromEnd(3)
				insertRaw(t, f, "0000-forged", r.Seq, r.PrevHash, "00")
				return auditchain.Inserted, "0000-forged"
			}},
			{"inserted with a duplicate seq and a valid hash", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				r := f.fromEnd(3)
				forged := domain.AuditEntry{ID: "0000-forged", OrgID: f.org, Actor: "token:evil", Action: "device.deleted", TargetType: "device",
					TargetID: "d9", At: auditchain.Truncate(domain.Now())}
				f.exec(t, `INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, request_id, at, seq, prev_hash, hash)
					VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8, $9, $10)`, forged.ID, f.org, forged.Actor, forged.Action, forged.TargetType,
					forged.TargetID, forged.At, r.Seq, r.PrevHash, auditchain.Hash(r.PrevHash, r.Seq, forged))
				return auditchain.Inserted, "0000-forged"
			}},
			{"inserted past the head", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				last := f.fromEnd(1)
				forged := domain.AuditEntry{ID: "forged-tail", OrgID: f.org, Actor: "token:evil", Action: "device.deleted", TargetType: "device",
					TargetID: "d9", At: auditchain.Truncate(domain.Now())}
				f.exec(t, `INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, request_id, at, seq, prev_hash, hash)
					VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8, $9, $10)`, forged.ID, f.org, forged.Actor, forged.Action, forged.TargetType,
					forged.TargetID, forged.At, last.Seq+1, last.Hash, auditchain.Hash(last.Hash, last.Seq+1, forged))
				return auditchain.Inserted, "forged-tail"
			}},
			{"inserted without a chain position", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				insertRaw(t, f, "raw-insert", nil, nil, nil)
				return auditchain.Inserted, "raw-insert"
			}},
			{"reordered", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				a, b := f.fromEnd(4), f.fromEnd(3)
				f.exec(t, `UPDATE audit_log SET seq = -1 WHERE id = $1`, a.Entry.ID)
				f.exec(t, `UPDATE audit_log SET seq = $1 WHERE id = $2`, a.Seq, b.Entry.ID)
				f.exec(t, `UPDATE audit_log SET seq = $1 WHERE id = $2`, b.Seq, a.Entry.ID)
				return auditchain.Reordered, b.Entry.ID // b now sits first, at a's seq
			}},
			{"truncated (head)", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				f.exec(t, `DELETE FROM audit_log WHERE id = $1`, f.fromEnd(1).Entry.ID)
				return auditchain.Truncated, ""
			}},
			{"truncated after the last checkpoint", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				f.checkpoint(t, f.fromEnd(2))
				keep := f.fromEnd(3)
				f.exec(t, `DELETE FROM audit_log WHERE org_id = $1 AND seq > $2`, f.org, keep.Seq)
				// The attacker also winds the head back; the signed checkpoint still names seq 5.
				f.exec(t, `UPDATE audit_chain_heads SET seq = $1, hash = $2 WHERE org_id = $3`, keep.Seq, keep.Hash, f.org)
				return auditchain.Truncated, ""
			}},
			{"checkpoint signature invalid", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				c := f.checkpoint(t, f.fromEnd(2))
				f.exec(t, `UPDATE audit_checkpoints SET seq = $1 WHERE id = $2`, f.fromEnd(1).Seq, c.ID)
				f.exec(t, `UPDATE audit_checkpoints SET hash = $1 WHERE id = $2`, f.fromEnd(1).Hash, c.ID)
				return auditchain.BadSignature, ""
			}},
			{"checkpoint forged with another key", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				_, other, _ := ed25519.GenerateKey(rand.Reader)
				r := f.fromEnd(2)
				c := auditchain.Sign(auditchain.Checkpoint{ID: domain.NewID(), OrgID: f.org, Seq: r.Seq, Hash: r.Hash, At: domain.Now()}, other)
				if err := f.db.InsertAuditCheckpoint(context.Background(), c); err != nil {
					t.Fatal(err)
				}
				return auditchain.BadSignature, ""
			}},
			{"suffix rewritten under a checkpoint", func(t *testing.T, f *chainFixture) (auditchain.Kind, string) {
				f.checkpoint(t, f.fromEnd(2))
				// Rewrite from seq n-3 on and recompute every hash and the head: only the
				// signed checkpoint still remembers.
				prev := f.fromEnd(4).Hash
				for i := 3; i >= 1; i-- {
					r := f.fromEnd(i)
					if i == 3 {
						r.Entry.Action = "device.nothing_happened"
					}
					h := auditchain.Hash(prev, r.Seq, r.Entry)
					f.exec(t, `UPDATE audit_log SET action = $1, prev_hash = $2, hash = $3 WHERE id = $4`, r.Entry.Action, prev, h, r.Entry.ID)
					prev = h
				}
				f.exec(t, `UPDATE audit_chain_heads SET hash = $1 WHERE org_id = $2`, prev, f.org)
				return auditchain.Rewritten, f.fromEnd(2).Entry.ID
			}},
		}
		for i, tc := range cases {
			if i > 0 {
				// Each case drops the guards of its database; the next one gets a fresh one.
				db = freshLike(t, db)
			}
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, db)
				if rep := f.verify(t); !rep.OK {
					t.Fatalf("untouched chain: %s", rep)
				}
				dropGuards(t, f)
				kind, rowID := tc.tamper(t, f)
				rep := f.verify(t)
				if rep.OK || rep.Problem == nil {
					t.Fatalf("tampering not detected: %s", rep)
				}
				if rep.Problem.Kind != kind || (rowID != "" && rep.Problem.RowID != rowID) {
					t.Fatalf("got %s (row %q), want %s naming row %q", rep, rep.Problem.RowID, kind, rowID)
				}
				t.Log(rep)
			})
		}
	})
}

// freshLike returns a new migrated database of db's dialect.
func freshLike(t *testing.T, db *store.DB) *store.DB {
	if db.Dialect == store.Postgres {
		return storetest.NewPostgres(t)
	}
	return storetest.NewSQLite(t)
}

func TestVerifyCleanChainWithCheckpoints(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.checkpoint(t, f.fromEnd(4))
		f.checkpoint(t, f.fromEnd(1))
		rep := f.verify(t)
		if !rep.OK || rep.Rows != int64(len(f.rows)) || rep.Checkpoints != 2 || rep.LastSeq != f.fromEnd(1).Seq {
			t.Fatalf("report %+v", rep)
		}
		// From the first checkpoint on, only the rows after it are walked.
		v := &auditchain.Verifier{Src: db, Keys: f.keys}
		from := f.fromEnd(4)
		rep, err := v.VerifyFrom(context.Background(), f.org, auditchain.Head{Seq: from.Seq, Hash: from.Hash})
		if err != nil || !rep.OK || rep.Rows != 3 || rep.Checkpoints != 1 {
			t.Fatalf("verify from checkpoint: %+v %v", rep, err)
		}
	})
}

// Concurrent writers of one org never fork the chain: each takes the head lock in turn.
func TestConcurrentWritersKeepOneChain(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		o := storetest.Org(t, db, domain.PlanPro)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					e := domain.AuditEntry{OrgID: o.ID, Actor: fmt.Sprintf("token:w%d", w), Action: "device.updated", TargetType: "device",
						TargetID: fmt.Sprintf("d%d-%d", w, i)}
					// Half the writes go through a caller's transaction, half through the pool.
					var err error
					if i%2 == 0 {
						err = db.InTx(ctx, func(tx *sql.Tx) error { return store.WriteAudit(ctx, tx, e) })
					} else {
						err = store.WriteAudit(ctx, db.SQL, e)
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		// A verifier walking the chain while it grows must not mistake new rows for
		// tampering (rows past the head it read, or a head past the rows it read).
		done := make(chan struct{})
		verified := make(chan error, 1)
		go func() {
			for {
				rep, err := (&auditchain.Verifier{Src: db, PageSize: 7}).Verify(ctx, o.ID)
				if err == nil && !rep.OK {
					err = fmt.Errorf("verify during writes: %s", rep)
				}
				select {
				case <-done:
					verified <- err
					return
				default:
				}
				if err != nil {
					verified <- err
					return
				}
			}
		}()
		wg.Wait()
		close(done)
		if err := <-verified; err != nil {
			t.Fatal(err)
		}
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rep, err := (&auditchain.Verifier{Src: db}).Verify(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := db.AuditChainHead(ctx, o.ID)
		if !rep.OK || rep.Rows < writers*each || head.Seq != rep.Rows {
			t.Fatalf("after concurrent writes: %s (head %d)", rep, head.Seq)
		}
	})
}

// Rows from before the chain are chained once, in (at, id) order; a row without a
// position that appears after that is reported, not adopted.
func TestBackfillChainsOldRowsOnce(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		o := storetest.Org(t, db, domain.PlanPro)
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		// Written out of time order, as an old binary would have left them.
		for i, off := range []int{3, 1, 2, 0} {
			_, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, request_id, at)
				VALUES ($1, $2, 'token:t', $3, 'device', 'd', '', $4)`, fmt.Sprintf("old-%d", i), o.ID, fmt.Sprintf("a%d", off),
				base.Add(time.Duration(off)*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.SQL.ExecContext(ctx, `UPDATE audit_chain_state SET backfilled_at = NULL`); err != nil {
			t.Fatal(err)
		}
		if err := db.BackfillAuditChain(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.WriteAudit(ctx, db.SQL, domain.AuditEntry{OrgID: o.ID, Actor: "token:t", Action: "after", TargetType: "device", TargetID: "d"}); err != nil {
			t.Fatal(err)
		}
		rows, err := db.AuditChainRows(ctx, o.ID, 0, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.Entry.Action)
		}
		want := "[a0 a1 a2 a3 after]"
		if n := len(got); n < 5 || fmt.Sprint(got[n-5:]) != want {
			t.Fatalf("chain order %v, want it to end %s", got, want)
		}
		if rep, err := (&auditchain.Verifier{Src: db}).Verify(ctx, o.ID); err != nil || !rep.OK {
			t.Fatalf("after backfill: %s %v", rep, err)
		}
		// A second run adopts nothing new.
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, request_id, at)
			VALUES ('late', $1, 'token:t', 'late', 'device', 'd', '', $2)`, o.ID, base); err != nil {
			t.Fatal(err)
		}
		if err := db.BackfillAuditChain(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err := (&auditchain.Verifier{Src: db}).Verify(ctx, o.ID)
		if err != nil || rep.OK || rep.Problem.Kind != auditchain.Inserted || rep.Problem.RowID != "late" {
			t.Fatalf("late unchained row: %s %v", rep, err)
		}
	})
}

// The HR import's batched audit rows join the chain like single writes.
func TestHRBatchAuditIsChained(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		o := storetest.Org(t, db, domain.PlanPro)
		var audits []domain.AuditEntry
		for i := 0; i < 5; i++ {
			audits = append(audits, domain.AuditEntry{OrgID: o.ID, Actor: "system:hrsync", Action: "employee.imported", TargetType: "employee",
				TargetID: fmt.Sprintf("e%d", i), After: []byte(`{"ok":true}`)})
		}
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if err := store.WriteAudit(ctx, tx, audits[0]); err != nil {
				return err
			}
			return db.InsertHRBatch(ctx, tx, nil, nil, audits[1:], nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := (&auditchain.Verifier{Src: db}).Verify(ctx, o.ID)
		if err != nil || !rep.OK || rep.Rows < 5 {
			t.Fatalf("hr batch chain: %s %v", rep, err)
		}
	})
}
