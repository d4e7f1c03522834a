package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// The audit hash chain's persistence (controlplane/auditchain computes and checks it).
// Only the chainer writes audit_chain and audit_checkpoints, in its own transaction after
// the audited business transactions committed; business code keeps calling WriteAudit,
// which takes no shared lock (see docs/adr/2026-12-02_audit-hash-chain.md).

// AuditLink is one audit row's place in its org's chain.
type AuditLink struct {
	OrgID     string
	Seq       int64
	AuditID   string
	RowHash   string // hex sha256 of the row's canonical content
	ChainHash string // hex sha256 over the previous link's ChainHash and RowHash
	ChainedAt time.Time
}

// AuditCheckpoint is a signed statement of an org's chain head at Seq.
type AuditCheckpoint struct {
	OrgID     string
	Seq       int64
	HeadHash  string
	SignedAt  time.Time
	Signature string // hex ed25519 signature
}

// auditChainLockKey is the Postgres advisory lock serialising chainers across replicas. Only
// chainer transactions take it, and they lock no business row, so it cannot join a cycle.
const auditChainLockKey = 0x4c_41_4e_59_41_55_44 // "LANYAUD"

// InAuditChainTx runs fn in a transaction that holds the chain lock: a transaction-scoped
// advisory lock on Postgres, the single writer (BEGIN IMMEDIATE) on SQLite.
func (db *DB) InAuditChainTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if db.Dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(auditChainLockKey)); err != nil {
				return fmt.Errorf("audit chain lock: %w", err)
			}
		}
		return fn(tx)
	})
}

// AuditHead is an org's last link with the time of the audit row it links.
type AuditHead struct {
	AuditLink
	RowAt time.Time
}

// AuditChainHeads returns every org's last link, keyed by org.
func AuditChainHeads(ctx context.Context, q Querier) (map[string]AuditHead, error) {
	heads := map[string]AuditHead{}
	err := queryEach(ctx, q, "audit chain heads", func(s rowScanner) error {
		var h AuditHead
		var at *time.Time
		if err := s.Scan(&h.OrgID, &h.Seq, &h.AuditID, &h.RowHash, &h.ChainHash, &h.ChainedAt, &at); err != nil {
			return err
		}
		if at != nil {
			h.RowAt = *at
		}
		heads[h.OrgID] = h
		return nil
	}, `SELECT c.org_id, c.seq, c.audit_id, c.row_hash, c.chain_hash, c.chained_at, a.at
		FROM audit_chain c JOIN (SELECT org_id, MAX(seq) AS seq FROM audit_chain GROUP BY org_id) h ON h.org_id = c.org_id AND h.seq = c.seq
		LEFT JOIN audit_log a ON a.id = c.audit_id`)
	return heads, err
}

// UnchainedAudit returns up to limit audit rows of any org that have no link yet, were
// written at or after since and have an id after `after`, in id order (ids are
// time-ordered UUIDv7, so this is roughly write order).
func UnchainedAudit(ctx context.Context, q Querier, since time.Time, after string, limit int) ([]domain.AuditEntry, error) {
	return queryAll(ctx, q, "unchained audit", scanAudit, `SELECT a.id, a.org_id, a.actor, a.action, a.target_type, a.target_id,
		a.before_json, a.after_json, a.request_id, a.at FROM audit_log a
		WHERE a.at >= $1 AND a.id > $2 AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id)
		ORDER BY a.id LIMIT $3`, since.UTC(), after, limit)
}

// InsertAuditLink appends a link; a duplicate (org, seq) or audit id is ErrConflict.
func InsertAuditLink(ctx context.Context, q Querier, l AuditLink) error {
	_, err := q.ExecContext(ctx, `INSERT INTO audit_chain (org_id, seq, audit_id, row_hash, chain_hash, chained_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, l.OrgID, l.Seq, l.AuditID, l.RowHash, l.ChainHash, l.ChainedAt.UTC())
	if IsUniqueViolation(err) {
		return fmt.Errorf("audit link %s/%d: %w", l.OrgID, l.Seq, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert audit link %s/%d: %w", l.OrgID, l.Seq, err)
	}
	return nil
}

// InsertAuditCheckpoint appends a signed checkpoint.
func InsertAuditCheckpoint(ctx context.Context, q Querier, c AuditCheckpoint) error {
	_, err := q.ExecContext(ctx, `INSERT INTO audit_checkpoints (org_id, seq, head_hash, signed_at, signature)
		VALUES ($1, $2, $3, $4, $5)`, c.OrgID, c.Seq, c.HeadHash, c.SignedAt.UTC(), c.Signature)
	if err != nil {
		return fmt.Errorf("insert audit checkpoint %s/%d: %w", c.OrgID, c.Seq, err)
	}
	return nil
}

// LastAuditCheckpoints returns every org's latest checkpoint, keyed by org.
func LastAuditCheckpoints(ctx context.Context, q Querier) (map[string]AuditCheckpoint, error) {
	out := map[string]AuditCheckpoint{}
	cps, err := queryAll(ctx, q, "last audit checkpoints", scanAuditCheckpoint, `SELECT c.org_id, c.seq, c.head_hash, c.signed_at, c.signature
		FROM audit_checkpoints c JOIN (SELECT org_id, MAX(seq) AS seq FROM audit_checkpoints GROUP BY org_id) m ON m.org_id = c.org_id AND m.seq = c.seq`)
	for _, c := range cps {
		out[c.OrgID] = c
	}
	return out, err
}

// ListAuditCheckpoints returns an org's checkpoints in sequence order.
func ListAuditCheckpoints(ctx context.Context, q Querier, orgID string) ([]AuditCheckpoint, error) {
	return queryAll(ctx, q, "list audit checkpoints", scanAuditCheckpoint, `SELECT org_id, seq, head_hash, signed_at, signature
		FROM audit_checkpoints WHERE org_id = $1 ORDER BY seq`, orgID)
}

func scanAuditCheckpoint(s rowScanner) (AuditCheckpoint, error) {
	var c AuditCheckpoint
	err := s.Scan(&c.OrgID, &c.Seq, &c.HeadHash, &c.SignedAt, &c.Signature)
	return c, err
}

// ChainedAudit is a link with the audit row it names (nil when the row is gone).
type ChainedAudit struct {
	Link  AuditLink
	Entry *domain.AuditEntry
}

// WalkAuditChain calls fn for each of an org's links in sequence order, with its audit row.
// fn must not query the database (the cursor is open); returning an error stops the walk.
func WalkAuditChain(ctx context.Context, q Querier, orgID string, fn func(ChainedAudit) error) error {
	return queryEach(ctx, q, "walk audit chain", func(s rowScanner) error {
		var c ChainedAudit
		var id, org, actor, action, ttype, tid, reqID *string
		var before, after *string
		var at *time.Time
		if err := s.Scan(&c.Link.OrgID, &c.Link.Seq, &c.Link.AuditID, &c.Link.RowHash, &c.Link.ChainHash, &c.Link.ChainedAt,
			&id, &org, &actor, &action, &ttype, &tid, &before, &after, &reqID, &at); err != nil {
			return err
		}
		if id != nil {
			e := &domain.AuditEntry{ID: *id, OrgID: *org, Actor: *actor, Action: *action, TargetType: *ttype, TargetID: *tid,
				RequestID: *reqID, At: *at}
			if before != nil {
				e.Before = []byte(*before)
			}
			if after != nil {
				e.After = []byte(*after)
			}
			c.Entry = e
		}
		return fn(c)
	}, `SELECT c.org_id, c.seq, c.audit_id, c.row_hash, c.chain_hash, c.chained_at,
		a.id, a.org_id, a.actor, a.action, a.target_type, a.target_id, a.before_json, a.after_json, a.request_id, a.at
		FROM audit_chain c LEFT JOIN audit_log a ON a.id = c.audit_id WHERE c.org_id = $1 ORDER BY c.seq`, orgID)
}

// UnchainedAuditOf counts an org's rows without a link and returns the first (by id)
// written before the given time, if any: such a row appeared after the chain had passed it.
func UnchainedAuditOf(ctx context.Context, q Querier, orgID string, before time.Time) (int, string, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log a WHERE a.org_id = $1
		AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id)`, orgID).Scan(&n); err != nil {
		return 0, "", fmt.Errorf("count unchained audit: %w", err)
	}
	if n == 0 || before.IsZero() {
		return n, "", nil
	}
	var id string
	err := q.QueryRowContext(ctx, `SELECT a.id FROM audit_log a WHERE a.org_id = $1 AND a.at < $2
		AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id) ORDER BY a.id LIMIT 1`, orgID, before.UTC()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return n, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("find late audit row: %w", err)
	}
	return n, id, nil
}

// AuditOrgs lists the orgs that have audit rows.
func AuditOrgs(ctx context.Context, q Querier) ([]string, error) {
	ids, err := QueryStrings(ctx, q, `SELECT DISTINCT org_id FROM audit_log ORDER BY org_id`)
	if err != nil {
		return nil, fmt.Errorf("list audit orgs: %w", err)
	}
	return ids, nil
}

const auditSigningKeyID = "default"

// LoadAuditSigningKey returns the sealed checkpoint key, or ErrNotFound before the first start.
func (db *DB) LoadAuditSigningKey(ctx context.Context) (string, error) {
	var sealed string
	err := db.SQL.QueryRowContext(ctx, `SELECT private_key_sealed FROM audit_signing_key WHERE id = $1`, auditSigningKeyID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("audit signing key: %w", ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("load audit signing key: %w", err)
	}
	return sealed, nil
}

// InsertAuditSigningKey stores the sealed key made at first start; a concurrent first start
// elsewhere makes this ErrConflict and the caller loads the winner's.
func (db *DB) InsertAuditSigningKey(ctx context.Context, sealed string, at time.Time) error {
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_signing_key (id, private_key_sealed, created_at) VALUES ($1, $2, $3)`,
		auditSigningKeyID, sealed, at.UTC())
	if IsUniqueViolation(err) {
		return fmt.Errorf("audit signing key exists: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert audit signing key: %w", err)
	}
	return nil
}
