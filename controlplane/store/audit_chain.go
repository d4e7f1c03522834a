package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// AuditLink is one audit row's place in its org's hash chain.
type AuditLink struct {
	OrgID    string
	Seq      int64
	AuditID  string
	PrevHash string // hex
	Hash     string // hex
	// Entry is the audit row the link names; Missing is set when that row is gone.
	Entry   domain.AuditEntry
	Missing bool
}

// AuditHead is the last link of an org's chain (Seq 0 and Hash "" before the first).
type AuditHead struct {
	Seq  int64
	Hash string
}

// AuditCheckpoint is a signed statement of an org's chain head at Seq.
type AuditCheckpoint struct {
	OrgID     string
	Seq       int64
	HeadHash  string
	SignedAt  time.Time
	KeyID     string
	Signature string // base64
}

// AuditSigningKey is a checkpoint key; the private half is sealed by the keyring.
type AuditSigningKey struct {
	ID            string
	PrivateSealed string
	CreatedAt     time.Time
}

// AuditOrgsToChain returns the orgs with audit rows waiting for the chainer.
func (db *DB) AuditOrgsToChain(ctx context.Context) ([]string, error) {
	ids, err := QueryStrings(ctx, db.SQL, `SELECT DISTINCT org_id FROM audit_unchained ORDER BY org_id`)
	if err != nil {
		return nil, fmt.Errorf("audit orgs to chain: %w", err)
	}
	return ids, nil
}

// ChainAudit links up to limit of orgID's queued audit rows, in id order, after the
// chain head, and returns the new head and how many it linked. hash computes a link from
// the previous link's hash and the row. It runs in its own transaction, serialised per
// org by a Postgres advisory lock (SQLite has a single writer): business transactions
// never take that lock nor touch audit_chain, so a chainer can wait for nobody who waits
// for it (the deadlock of the synchronous design, docs/adr/2026-12-02_audit-hash-chain.md).
func (db *DB) ChainAudit(ctx context.Context, orgID string, limit int, hash func(prevHash string, e domain.AuditEntry) string) (AuditHead, int, error) {
	var head AuditHead
	var n int
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if db.Dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('lanyard.audit_chain:' || $1, 0))`, orgID); err != nil {
				return fmt.Errorf("lock audit chain: %w", err)
			}
		}
		var err error
		if head, err = auditHead(ctx, tx, orgID); err != nil {
			return err
		}
		batch, err := queryAll(ctx, tx, "queued audit", scanAudit, `SELECT a.id, a.org_id, a.actor, a.action, a.target_type, a.target_id, a.before_json, a.after_json, a.request_id, a.at
			FROM audit_unchained u JOIN audit_log a ON a.id = u.audit_id
			WHERE u.org_id = $1 ORDER BY a.id LIMIT $2`, orgID, limit)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		// One INSERT and one DELETE per batch: the transaction is a few round trips however
		// many rows it links.
		now := domain.Now()
		var ins, del strings.Builder
		insArgs := make([]any, 0, 6*len(batch))
		delArgs := make([]any, 0, len(batch))
		for i, e := range batch {
			h := hash(head.Hash, e)
			if i > 0 {
				ins.WriteString(", ")
				del.WriteString(", ")
			}
			p := len(insArgs)
			fmt.Fprintf(&ins, "($%d, $%d, $%d, $%d, $%d, $%d)", p+1, p+2, p+3, p+4, p+5, p+6)
			insArgs = append(insArgs, orgID, head.Seq+1, e.ID, head.Hash, h, now)
			fmt.Fprintf(&del, "$%d", i+1)
			delArgs = append(delArgs, e.ID)
			head = AuditHead{Seq: head.Seq + 1, Hash: h}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_chain (org_id, seq, audit_id, prev_hash, hash, chained_at) VALUES `+ins.String(), insArgs...); err != nil {
			return fmt.Errorf("chain %d audit rows: %w", len(batch), err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_unchained WHERE audit_id IN (`+del.String()+`)`, delArgs...); err != nil {
			return fmt.Errorf("dequeue %d audit rows: %w", len(batch), err)
		}
		n = len(batch)
		return nil
	})
	return head, n, err
}

func auditHead(ctx context.Context, q Querier, orgID string) (AuditHead, error) {
	var h AuditHead
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_chain WHERE org_id = $1 ORDER BY seq DESC LIMIT 1`, orgID).Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, nil
	}
	if err != nil {
		return h, fmt.Errorf("audit chain head: %w", err)
	}
	return h, nil
}

// AuditChainHead returns orgID's chain head.
func (db *DB) AuditChainHead(ctx context.Context, orgID string) (AuditHead, error) {
	return auditHead(ctx, db.SQL, orgID)
}

// EachAuditLink calls fn for every link of orgID's chain in sequence order, with the
// audit row it names (Missing when the row was deleted).
func (db *DB) EachAuditLink(ctx context.Context, orgID string, fn func(AuditLink) error) error {
	rows, err := db.SQL.QueryContext(ctx, `SELECT c.seq, c.audit_id, c.prev_hash, c.hash,
			a.id, a.org_id, a.actor, a.action, a.target_type, a.target_id, a.before_json, a.after_json, a.request_id, a.at
		FROM audit_chain c LEFT JOIN audit_log a ON a.id = c.audit_id
		WHERE c.org_id = $1 ORDER BY c.seq`, orgID)
	if err != nil {
		return fmt.Errorf("read audit chain: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		l := AuditLink{OrgID: orgID}
		var id, org, actor, action, tt, tid, reqID *string
		var before, after *string
		var at *time.Time
		if err := rows.Scan(&l.Seq, &l.AuditID, &l.PrevHash, &l.Hash, &id, &org, &actor, &action, &tt, &tid, &before, &after, &reqID, &at); err != nil {
			return fmt.Errorf("read audit chain: %w", err)
		}
		if id == nil {
			l.Missing = true
		} else {
			l.Entry = domain.AuditEntry{ID: *id, OrgID: *org, Actor: *actor, Action: *action, TargetType: *tt, TargetID: *tid, RequestID: *reqID, At: *at}
			if before != nil {
				l.Entry.Before = []byte(*before)
			}
			if after != nil {
				l.Entry.After = []byte(*after)
			}
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read audit chain: %w", err)
	}
	return nil
}

// CountUnchainedAudit counts orgID's audit rows that have no chain link yet: the queued
// ones and any inserted with the queue trigger bypassed.
func (db *DB) CountUnchainedAudit(ctx context.Context, orgID string) (int, error) {
	var n int
	err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM audit_log a
		WHERE a.org_id = $1 AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id)`, orgID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unchained audit: %w", err)
	}
	return n, nil
}

// InsertAuditCheckpoint stores a signed checkpoint; one already stored for the same seq
// (another replica's chainer got there first) is ErrConflict.
func (db *DB) InsertAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_checkpoints (org_id, seq, head_hash, signed_at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.OrgID, c.Seq, c.HeadHash, c.SignedAt.UTC(), c.KeyID, c.Signature)
	if IsUniqueViolation(err) {
		return fmt.Errorf("audit checkpoint %s/%d: %w", c.OrgID, c.Seq, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert audit checkpoint: %w", err)
	}
	return nil
}

// ListAuditCheckpoints returns orgID's checkpoints in sequence order.
func (db *DB) ListAuditCheckpoints(ctx context.Context, orgID string) ([]AuditCheckpoint, error) {
	return queryAll(ctx, db.SQL, "list audit checkpoints", func(s rowScanner) (AuditCheckpoint, error) {
		var c AuditCheckpoint
		err := s.Scan(&c.OrgID, &c.Seq, &c.HeadHash, &c.SignedAt, &c.KeyID, &c.Signature)
		return c, err
	}, `SELECT org_id, seq, head_hash, signed_at, key_id, signature FROM audit_checkpoints WHERE org_id = $1 ORDER BY seq`, orgID)
}

// LastAuditCheckpoint returns orgID's latest checkpoint, or ErrNotFound.
func (db *DB) LastAuditCheckpoint(ctx context.Context, orgID string) (AuditCheckpoint, error) {
	var c AuditCheckpoint
	err := db.SQL.QueryRowContext(ctx, `SELECT org_id, seq, head_hash, signed_at, key_id, signature FROM audit_checkpoints
		WHERE org_id = $1 ORDER BY seq DESC LIMIT 1`, orgID).Scan(&c.OrgID, &c.Seq, &c.HeadHash, &c.SignedAt, &c.KeyID, &c.Signature)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("audit checkpoint: %w", ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("last audit checkpoint: %w", err)
	}
	return c, nil
}

// ListAuditSigningKeys returns every checkpoint key, oldest first.
func (db *DB) ListAuditSigningKeys(ctx context.Context) ([]AuditSigningKey, error) {
	return queryAll(ctx, db.SQL, "list audit signing keys", func(s rowScanner) (AuditSigningKey, error) {
		var k AuditSigningKey
		err := s.Scan(&k.ID, &k.PrivateSealed, &k.CreatedAt)
		return k, err
	}, `SELECT id, private_sealed, created_at FROM audit_signing_keys ORDER BY created_at, id`)
}

// InsertAuditSigningKey stores a new checkpoint key.
func (db *DB) InsertAuditSigningKey(ctx context.Context, k AuditSigningKey) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_signing_keys (id, private_sealed, created_at) VALUES ($1, $2, $3)`, k.ID, k.PrivateSealed, k.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("insert audit signing key: %w", err)
	}
	return nil
}
