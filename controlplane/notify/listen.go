package notify

import "context"

// How the engine hears of new outbox rows without waiting for its poll: on Postgres the
// outbox trigger of migration 00402 NOTIFYs lanyard_outbox (payload: the schema) when
// rows commit, and each replica LISTENs (store.DB.Listen); on SQLite one process owns the
// file, so store.DB.AfterCommit signals every commit of this process. Either is only a
// wake-up: the poll (Config.Poll) covers a missed one.
const outboxChannel = "lanyard_outbox"

func (e *Engine) listen(ctx context.Context) (stop func()) {
	if e.db.Pool == nil {
		return e.db.AfterCommit(e.Notify)
	}
	return e.db.Listen(ctx, e.log, []string{outboxChannel}, func() { signal(e.kick) }, func(_, payload, schema string) {
		if payload == schema {
			signal(e.kick)
		}
	})
}
