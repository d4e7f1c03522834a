package jobs_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

type pingArgs struct{ N int }

func (pingArgs) Kind() string { return "test.ping" }

type pingWorker struct {
	river.WorkerDefaults[pingArgs]
	done chan int
}

func (w *pingWorker) Work(ctx context.Context, j *river.Job[pingArgs]) error {
	w.done <- j.Args.N
	return nil
}

// A job enqueued inside the caller's transaction runs once the transaction commits, on
// both dialects.
func TestJobInsertedInTxRuns(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		reg := jobs.NewRegistry()
		w := &pingWorker{done: make(chan int, 1)}
		jobs.Add(reg, w)
		c, err := jobs.NewClient(db, reg, jobs.Options{PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Stop(context.Background()) }()
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := c.InsertTx(ctx, tx, pingArgs{N: 7}, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-w.done:
			if n != 7 {
				t.Fatalf("worked job with N=%d, want 7", n)
			}
		case <-ctx.Done():
			t.Fatal("job never ran")
		}
	})
}
