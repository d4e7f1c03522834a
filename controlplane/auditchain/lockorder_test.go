package auditchain_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The transaction shape that deadlocked the reverted synchronous chain head: each writer
// locks two employees in a fixed order (so they cannot deadlock among themselves) and
// writes audit between the two locks, as HR sync does. Under a shared head, A holds
// employee 2 and waits for the head while B holds the head and waits for employee 2
// (40P01). TestChainerBesideConcurrentWriters locks one employee per transaction, which
// never formed that cycle; this one would have.
//
// Postgres only: SQLite has one writer, so there is no lock order to get wrong.
func TestAuditBetweenOrderedLocksBesideChainer(t *testing.T) {
	db := storetest.NewPostgres(t)
	ctx := context.Background()
	org := storetest.Org(t, db, domain.PlanPro).ID
	var emps []domain.Employee
	for i := 0; i < 4; i++ {
		emps = append(emps, storetest.Employee(t, db, org, fmt.Sprintf("E%d", i)))
	}
	besideChainer(t, db, org, 8, 20, func(w, i int) error {
		first := (w + i) % (len(emps) - 1)
		return db.InTx(ctx, func(tx *sql.Tx) error {
			for _, e := range emps[first : first+2] { // lower index first
				cur, err := store.GetEmployee(ctx, tx, org, e.ID)
				if err != nil {
					return err
				}
				cur.Notes = fmt.Sprintf("w%d i%d", w, i)
				if err := store.UpdateEmployee(ctx, tx, &cur); err != nil {
					return err
				}
				if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, org, "employee.updated", "employee", cur.ID, nil, cur.Notes)); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// besideChainer runs writers goroutines calling write each times while a chainer links
// rows after every write, fails on any writer error (naming a deadlock), then chains the rest and
// checks the org's chain verifies and covers every audit row.
func besideChainer(t *testing.T, db *store.DB, org string, writers, each int, write func(w, i int) error) {
	t.Helper()
	ctx := context.Background()
	key := newKey(t)
	o := auditchain.Options{CheckpointEvery: 16, Batch: 7}
	chainer := auditchain.NewChainer(db, key, o)
	// Each write kicks the chainer, so it runs as often as it can without spinning: a
	// spinning chainer holds the SQLite writer so often that writers hit SQLITE_BUSY.
	done, kick := make(chan struct{}), make(chan struct{}, 1)
	chainErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-done:
				chainErr <- nil
				return
			case <-kick:
			}
			if _, err := chainer.ChainOnce(ctx); err != nil {
				chainErr <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := write(w, i); err != nil {
					errs <- err
				}
				select {
				case kick <- struct{}{}:
				default:
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
	if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log WHERE org_id = $1`, org).Scan(&total); err != nil {
		t.Fatal(err)
	}
	r, err := auditchain.Verify(ctx, db.SQL, key.Public().(ed25519.PublicKey), org, o)
	if err != nil || !r.OK || r.Rows != total || r.Unchained != 0 || total < int64(writers*each) {
		t.Fatalf("verify after concurrent writes: %+v %v (audit rows %d)", r, err, total)
	}
}
