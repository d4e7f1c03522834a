package auditchain_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// Writers that lock employee rows in a consistent order and write audit between the
// locks, as HR sync does, while the chainer runs flat out. With the reverted synchronous
// chain head this interleaving deadlocked on Postgres (A holds employee 2 and waits for
// the head, B holds the head and waits for employee 2: SQLSTATE 40P01); now the only
// shared thing is the chainer's own lock, which no business transaction takes.
func TestConcurrentAuditedWritesWhileChaining(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro).ID
		var emps []domain.Employee
		for i := 0; i < 4; i++ {
			emps = append(emps, storetest.Employee(t, db, org, fmt.Sprintf("E%d", i)))
		}
		c := newChainer(t, db)
		const writers, txs = 8, 25
		stop := make(chan struct{})
		chainErr := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					chainErr <- nil
					return
				default:
				}
				if err := c.ChainAll(ctx); err != nil {
					chainErr <- err
					return
				}
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, writers*txs)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < txs; i++ {
					a, b := (w+i)%3, (w+i)%3+1 // always lower index first: no deadlock among employees
					errs <- db.InTx(ctx, func(tx *sql.Tx) error {
						for _, k := range []int{a, b} {
							e, err := store.GetEmployee(ctx, tx, org, emps[k].ID)
							if err != nil {
								return err
							}
							e.Notes = fmt.Sprintf("w%d tx%d", w, i)
							if err := store.UpdateEmployee(ctx, tx, &e); err != nil {
								return err
							}
							if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, org, "employee.updated", "employee", e.ID, nil, e.Notes)); err != nil {
								return err
							}
						}
						return nil
					})
				}
			}(w)
		}
		wg.Wait()
		close(stop)
		close(errs)
		var failed []error
		for err := range errs {
			if err != nil {
				failed = append(failed, err)
			}
		}
		if err := <-chainErr; err != nil {
			failed = append(failed, fmt.Errorf("chainer: %w", err))
		}
		if len(failed) > 0 {
			t.Fatalf("%d failures, first: %v", len(failed), errors.Join(failed...))
		}
		rep, err := c.ChainAndVerify(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		if err := db.SQL.QueryRow(`SELECT count(*) FROM audit_log WHERE org_id = $1`, org).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Unchained != 0 || rep.Rows != total || total < writers*txs*2 {
			t.Fatalf("report %+v %+v, %d audit rows", rep, rep.FirstBad, total)
		}
	})
}
