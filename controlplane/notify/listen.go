package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// How the engine hears of new outbox rows without waiting for its poll: on Postgres the
// outbox trigger of migration 00402 NOTIFYs lanyard_outbox (payload: the schema) when
// rows commit, and each replica LISTENs on a dedicated connection; on SQLite one process
// owns the file, so store.DB.AfterCommit signals every commit of this process. Either is
// only a wake-up: the poll (Config.Poll) covers a missed one.
const outboxChannel = "lanyard_outbox"

func (e *Engine) listen(ctx context.Context) (stop func()) {
	if e.db.Pool == nil {
		return e.db.AfterCommit(e.Notify)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		backoff := 100 * time.Millisecond
		for lctx.Err() == nil {
			err := e.listenOnce(lctx)
			if lctx.Err() != nil {
				return
			}
			e.log.Warn("outbox listener stopped; reconnecting (the poll covers the gap)", "err", err, "in", backoff)
			select {
			case <-lctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func (e *Engine) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, e.db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+outboxChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	signal(e.kick) // rows committed before LISTEN took effect were announced to nobody
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == schema {
			signal(e.kick)
		}
	}
}
