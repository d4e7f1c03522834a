package pgmove

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// NanoMDM moves nanomdm's state (Apple MDM enrollments' push tokens, identity
// certificate associations, queued MDM commands), which SQLite keeps in mdm_kv and
// Postgres in nanomdm's own schema; apple.NanoMDMMove implements it. It writes outside
// the copy's transaction, so it returns an undo for when that transaction fails.
type NanoMDM interface {
	Move(ctx context.Context, src, dst *store.DB) (summary string, undo func(context.Context) error, err error)
}

// moveNanoMDM runs o.NanoMDM, refusing an installation with nanomdm state when none is
// given rather than moving it without.
func moveNanoMDM(ctx context.Context, stx *sql.Tx, src, dst *store.DB, o Options) (func(context.Context) error, error) {
	if o.NanoMDM == nil {
		var n int64
		if err := stx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mdm_kv`).Scan(&n); err != nil {
			return nil, fmt.Errorf("count mdm_kv: %w", err)
		}
		if n > 0 {
			return nil, fmt.Errorf("this installation has Apple MDM state (%d nanomdm records) and no nanomdm mover was given; nothing was written", n)
		}
		return nil, nil
	}
	summary, undo, err := o.NanoMDM.Move(ctx, src, dst)
	if err != nil {
		return nil, fmt.Errorf("move nanomdm state: %w", err)
	}
	if o.Progress != nil {
		o.Progress("nanomdm: "+summary, -1)
	}
	return undo, nil
}
