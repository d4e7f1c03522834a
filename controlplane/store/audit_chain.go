package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// chainAudits gives entries their positions in their orgs' hash chains, in order: per org
// it advances the chain head by the number of entries in one upsert (which locks the head
// row on Postgres until the transaction ends, so an org's writers queue there and two can
// never take the same seq), hashes each entry onto the one before it, and stores the new
// head hash. q must be a transaction; the caller inserts the returned rows in it.
func chainAudits(ctx context.Context, q Querier, entries []domain.AuditEntry) ([]auditchain.Row, error) {
	now := domain.Now()
	rows := make([]auditchain.Row, len(entries))
	byOrg := map[string][]int{}
	var orgs []string
	for i, e := range entries {
		if e.ID == "" {
			e.ID = domain.NewID()
		}
		if e.At.IsZero() {
			e.At = now
		}
		e.At = auditchain.Truncate(e.At)
		if e.Actor == "" {
			e.Actor = domain.ActorFrom(ctx).ID
		}
		rows[i].Entry = e
		if _, ok := byOrg[e.OrgID]; !ok {
			orgs = append(orgs, e.OrgID)
		}
		byOrg[e.OrgID] = append(byOrg[e.OrgID], i)
	}
	for _, org := range orgs {
		idx := byOrg[org]
		n := int64(len(idx))
		var last int64
		var prev string
		// A new org starts at seq n after genesis; an existing one moves from seq to seq+n.
		// RETURNING gives the advanced seq and the hash still unchanged: the previous head.
		err := q.QueryRowContext(ctx, `INSERT INTO audit_chain_heads (org_id, seq, hash) VALUES ($1, $2, $3)
			ON CONFLICT (org_id) DO UPDATE SET seq = audit_chain_heads.seq + excluded.seq RETURNING seq, hash`,
			org, n, auditchain.GenesisHash).Scan(&last, &prev)
		if err != nil {
			return nil, fmt.Errorf("advance audit chain head of org %s: %w", org, err)
		}
		seq := last - n
		for _, i := range idx {
			seq++
			rows[i].Seq, rows[i].PrevHash = seq, prev
			rows[i].Hash = auditchain.Hash(prev, seq, rows[i].Entry)
			prev = rows[i].Hash
		}
		if _, err := q.ExecContext(ctx, `UPDATE audit_chain_heads SET hash = $1 WHERE org_id = $2`, prev, org); err != nil {
			return nil, fmt.Errorf("store audit chain head of org %s: %w", org, err)
		}
	}
	return rows, nil
}

// backfillPage is how many pre-chain rows the backfill reads per query.
const backfillPage = 500

// BackfillAuditChain chains the audit rows written before the chain existed (migration
// 00630), once: each org's unchained rows are appended to its chain in (at, id) order,
// and audit_chain_state records that it ran, so a row that appears later without a seq
// is reported by the verifier as inserted rather than silently adopted. Migrate calls it;
// it is safe to run from several replicas at once (the state row is locked).
func (db *DB) BackfillAuditChain(ctx context.Context) error {
	var done *time.Time
	if err := db.SQL.QueryRowContext(ctx, `SELECT backfilled_at FROM audit_chain_state WHERE id = 1`).Scan(&done); err != nil {
		return fmt.Errorf("read audit chain state: %w", err)
	}
	if done != nil {
		return nil
	}
	lock := ""
	if db.Dialect == Postgres {
		lock = " FOR UPDATE"
	}
	var chained int64
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT backfilled_at FROM audit_chain_state WHERE id = 1`+lock).Scan(&done); err != nil {
			return fmt.Errorf("lock audit chain state: %w", err)
		}
		if done != nil {
			return nil // another replica did it while we waited
		}
		orgs, err := QueryStrings(ctx, tx, `SELECT DISTINCT org_id FROM audit_log WHERE seq IS NULL ORDER BY org_id`)
		if err != nil {
			return fmt.Errorf("list orgs to backfill: %w", err)
		}
		for _, org := range orgs {
			n, err := backfillOrg(ctx, tx, org)
			if err != nil {
				return err
			}
			chained += n
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_chain_state SET backfilled_at = $1 WHERE id = 1`, domain.Now()); err != nil {
			return fmt.Errorf("mark audit chain backfilled: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("backfill audit chain: %w", err)
	}
	if chained > 0 {
		slog.Default().Info("audit chain backfilled", "component", "store", "rows", chained)
	}
	return nil
}

// backfillOrg chains one org's unchained rows, paging by (at, id) so a large log is never
// held in memory.
func backfillOrg(ctx context.Context, tx *sql.Tx, org string) (int64, error) {
	var total int64
	var afterAt time.Time
	afterID := ""
	for {
		page, err := queryAll(ctx, tx, "read unchained audit", scanAudit, `SELECT `+auditCols+` FROM audit_log
			WHERE org_id = $1 AND seq IS NULL AND (at > $2 OR (at = $2 AND id > $3)) ORDER BY at, id LIMIT $4`,
			org, afterAt, afterID, backfillPage)
		if err != nil {
			return total, err
		}
		if len(page) == 0 {
			return total, nil
		}
		afterAt, afterID = page[len(page)-1].At, page[len(page)-1].ID
		var last int64
		var prev string
		n := int64(len(page))
		if err := tx.QueryRowContext(ctx, `INSERT INTO audit_chain_heads (org_id, seq, hash) VALUES ($1, $2, $3)
			ON CONFLICT (org_id) DO UPDATE SET seq = audit_chain_heads.seq + excluded.seq RETURNING seq, hash`,
			org, n, auditchain.GenesisHash).Scan(&last, &prev); err != nil {
			return total, fmt.Errorf("advance audit chain head of org %s: %w", org, err)
		}
		seq := last - n
		for _, e := range page {
			seq++
			h := auditchain.Hash(prev, seq, e)
			if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET seq = $1, prev_hash = $2, hash = $3 WHERE id = $4`, seq, prev, h, e.ID); err != nil {
				return total, fmt.Errorf("chain audit row %s: %w", e.ID, err)
			}
			prev = h
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_chain_heads SET hash = $1 WHERE org_id = $2`, prev, org); err != nil {
			return total, fmt.Errorf("store audit chain head of org %s: %w", org, err)
		}
		total += n
	}
}

const auditCols = `id, org_id, actor, action, target_type, target_id, before_json, after_json, request_id, at`

func scanChainRow(s rowScanner) (auditchain.Row, error) {
	var r auditchain.Row
	var before, after, prev, hash *string
	if err := s.Scan(&r.Entry.ID, &r.Entry.OrgID, &r.Entry.Actor, &r.Entry.Action, &r.Entry.TargetType, &r.Entry.TargetID,
		&before, &after, &r.Entry.RequestID, &r.Entry.At, &r.Seq, &prev, &hash); err != nil {
		return r, err
	}
	if before != nil {
		r.Entry.Before = []byte(*before)
	}
	if after != nil {
		r.Entry.After = []byte(*after)
	}
	if prev != nil {
		r.PrevHash = *prev
	}
	if hash != nil {
		r.Hash = *hash
	}
	return r, nil
}

// AuditChainRows returns up to limit of an org's chained rows after position (seq, id), in
// chain order; (seq, id) rather than seq alone so duplicated positions are all seen. An
// empty afterID means after every row at afterSeq.
func (db *DB) AuditChainRows(ctx context.Context, orgID string, afterSeq int64, afterID string, limit int) ([]auditchain.Row, error) {
	const sel = `SELECT ` + auditCols + `, seq, prev_hash, hash FROM audit_log WHERE org_id = $1 AND seq IS NOT NULL AND `
	if afterID == "" {
		return queryAll(ctx, db.SQL, "read audit chain", scanChainRow, sel+`seq > $2 ORDER BY seq, id LIMIT $3`, orgID, afterSeq, limit)
	}
	return queryAll(ctx, db.SQL, "read audit chain", scanChainRow, sel+`(seq > $2 OR (seq = $2 AND id > $3)) ORDER BY seq, id LIMIT $4`,
		orgID, afterSeq, afterID, limit)
}

// AuditUnchained returns up to limit of an org's rows that have no chain position, oldest
// first: after the backfill, rows inserted without going through WriteAudit.
func (db *DB) AuditUnchained(ctx context.Context, orgID string, limit int) ([]auditchain.Row, error) {
	return queryAll(ctx, db.SQL, "read unchained audit", func(s rowScanner) (auditchain.Row, error) {
		e, err := scanAudit(s)
		return auditchain.Row{Entry: e}, err
	}, `SELECT `+auditCols+` FROM audit_log WHERE org_id = $1 AND seq IS NULL ORDER BY at, id LIMIT $2`, orgID, limit)
}

// AuditChainHead returns the head the writers advance: the last seq and its hash. ok is
// false for an org that never wrote an audit row.
func (db *DB) AuditChainHead(ctx context.Context, orgID string) (auditchain.Head, bool, error) {
	var h auditchain.Head
	err := db.SQL.QueryRowContext(ctx, `SELECT seq, hash FROM audit_chain_heads WHERE org_id = $1`, orgID).Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("read audit chain head: %w", err)
	}
	return h, true, nil
}

// AuditChainOrgs lists every org that has audit rows, a chain head or checkpoints.
func (db *DB) AuditChainOrgs(ctx context.Context) ([]string, error) {
	ids, err := QueryStrings(ctx, db.SQL, `SELECT org_id FROM audit_chain_heads UNION SELECT DISTINCT org_id FROM audit_log
		UNION SELECT DISTINCT org_id FROM audit_checkpoints ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list audited orgs: %w", err)
	}
	return ids, nil
}

// InsertAuditCheckpoint stores a signed checkpoint; ErrConflict when the org already has
// one at that seq.
func (db *DB) InsertAuditCheckpoint(ctx context.Context, c auditchain.Checkpoint) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_checkpoints (id, org_id, seq, hash, at, key_id, signature)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, c.ID, c.OrgID, c.Seq, c.Hash, c.At.UTC(), c.KeyID, c.Signature)
	if IsUniqueViolation(err) {
		return fmt.Errorf("insert audit checkpoint at seq %d: %w", c.Seq, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert audit checkpoint: %w", err)
	}
	return nil
}

func scanCheckpoint(s rowScanner) (auditchain.Checkpoint, error) {
	var c auditchain.Checkpoint
	err := s.Scan(&c.ID, &c.OrgID, &c.Seq, &c.Hash, &c.At, &c.KeyID, &c.Signature)
	return c, err
}

// AuditCheckpoints returns up to limit of an org's checkpoints with seq > afterSeq, in seq order.
func (db *DB) AuditCheckpoints(ctx context.Context, orgID string, afterSeq int64, limit int) ([]auditchain.Checkpoint, error) {
	return queryAll(ctx, db.SQL, "list audit checkpoints", scanCheckpoint, `SELECT id, org_id, seq, hash, at, key_id, signature
		FROM audit_checkpoints WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, orgID, afterSeq, limit)
}

// LatestAuditCheckpoint returns an org's newest checkpoint; ok is false when it has none.
func (db *DB) LatestAuditCheckpoint(ctx context.Context, orgID string) (auditchain.Checkpoint, bool, error) {
	cs, err := queryAll(ctx, db.SQL, "latest audit checkpoint", scanCheckpoint, `SELECT id, org_id, seq, hash, at, key_id, signature
		FROM audit_checkpoints WHERE org_id = $1 ORDER BY seq DESC LIMIT 1`, orgID)
	if err != nil || len(cs) == 0 {
		return auditchain.Checkpoint{}, false, err
	}
	return cs[0], true, nil
}

// AuditSigningKey is a checkpoint signing key as stored: the private key sealed by the
// server keyring.
type AuditSigningKey struct {
	ID         string
	Generation int
	PublicKey  string // base64 of the raw Ed25519 public key
	Sealed     string
	CreatedAt  time.Time
}

// ListAuditSigningKeys returns every signing key, newest generation first.
func (db *DB) ListAuditSigningKeys(ctx context.Context) ([]AuditSigningKey, error) {
	return queryAll(ctx, db.SQL, "list audit signing keys", func(s rowScanner) (AuditSigningKey, error) {
		var k AuditSigningKey
		err := s.Scan(&k.ID, &k.Generation, &k.PublicKey, &k.Sealed, &k.CreatedAt)
		return k, err
	}, `SELECT id, generation, public_key, private_key_sealed, created_at FROM audit_signing_keys ORDER BY generation DESC`)
}

// InsertAuditSigningKey stores a new key; ErrConflict when another replica created that
// generation first (reload and use theirs).
func (db *DB) InsertAuditSigningKey(ctx context.Context, k AuditSigningKey) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_signing_keys (id, generation, public_key, private_key_sealed, created_at)
		VALUES ($1, $2, $3, $4, $5)`, k.ID, k.Generation, k.PublicKey, k.Sealed, k.CreatedAt.UTC())
	if IsUniqueViolation(err) {
		return fmt.Errorf("insert audit signing key generation %d: %w", k.Generation, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert audit signing key: %w", err)
	}
	return nil
}
