package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen follows Postgres notifications on channels until the returned stop is called:
// one dedicated connection (not a pool slot: LISTEN state must not leak into queries),
// reconnecting with backoff when it drops. onConnect runs each time LISTEN takes effect
// (whatever committed before was announced to nobody, so the caller looks now); onNote
// gets each notification with this connection's schema, so callers sharing a server with
// other schemas (tests) can ignore the others' rows. Notifications are wake-ups only:
// callers keep a poll for what was announced while the connection was down. On SQLite
// (no Pool) Listen does nothing; use AfterCommit.
func (db *DB) Listen(ctx context.Context, log *slog.Logger, channels []string, onConnect func(), onNote func(channel, payload, schema string)) (stop func()) {
	if db.Pool == nil {
		return func() {}
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		backoff := 100 * time.Millisecond
		for lctx.Err() == nil {
			err := db.listenOnce(lctx, channels, onConnect, onNote)
			if lctx.Err() != nil {
				return
			}
			log.Warn("notification listener stopped; reconnecting (the poll covers the gap)", "err", err, "in", backoff)
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

func (db *DB) listenOnce(ctx context.Context, channels []string, onConnect func(), onNote func(channel, payload, schema string)) error {
	conn, err := pgx.ConnectConfig(ctx, db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	onConnect()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		onNote(n.Channel, n.Payload, schema)
	}
}
