package pgmove

import (
	"context"
	"database/sql"
	"fmt"
)

// moveNanoMDM carries nanomdm's state (Apple MDM enrollments' push tokens, identity
// certificate associations, queued MDM commands), which SQLite keeps in mdm_kv and
// Postgres in nanomdm's own schema.
//
// TODO(issue 14): replay mdm_kv into nanomdm's pgsql storage (RetrieveMigrationCheckins,
// cert hashes, push certificates, the queue). Until then an installation with Apple MDM
// state is refused rather than moved without it.
func moveNanoMDM(ctx context.Context, stx, _ *sql.Tx, _ string) error {
	var n int64
	if err := stx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mdm_kv`).Scan(&n); err != nil {
		return fmt.Errorf("count mdm_kv: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("this installation has Apple MDM state (%d nanomdm records) that move-to-postgres cannot carry yet; nothing was written", n)
	}
	return nil
}
