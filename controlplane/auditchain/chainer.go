package auditchain

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Options tune chaining and checking; the zero value gives the defaults. The server and
// the CLI must agree on CheckpointEvery and Grace, so they are not configuration.
type Options struct {
	// CheckpointEvery signs a checkpoint at every multiple of this sequence number (1000).
	// Verify insists on each of them, so deleting a checkpoint is caught too.
	CheckpointEvery int64
	// CheckpointInterval also signs the head when the last checkpoint is older (1 h).
	CheckpointInterval time.Duration
	// Grace is the longest a transaction may hold an audit row before committing (10 min).
	// A row that turns up unchained more than Grace before its org's chain head is not
	// chained: it was inserted after the fact, and Verify reports it.
	Grace time.Duration
	// Batch is how many rows one chainer transaction links (500), to keep it short.
	Batch  int
	Now    func() time.Time
	Logger *slog.Logger
}

func (o *Options) init() {
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 1000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Hour
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Chainer links committed audit rows into their org's chain. Several may run (one per
// replica, plus on-demand passes from verify): the chain lock serialises them.
type Chainer struct {
	db  *store.DB
	key ed25519.PrivateKey
	o   Options

	mu sync.Mutex
	// passStart is when the last complete pass began: every row committed since was written
	// after passStart-Grace, so the next pass need not look further back. Zero means scan
	// everything (the first pass of this process).
	passStart time.Time
}

// NewChainer builds a chainer signing checkpoints with key.
func NewChainer(db *store.DB, key ed25519.PrivateKey, o Options) *Chainer {
	o.init()
	return &Chainer{db: db, key: key, o: o}
}

// ChainOnce links every unchained row and signs the checkpoints due; it returns how many
// rows it linked.
func (c *Chainer) ChainOnce(ctx context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.o.Now()
	var since time.Time
	if !c.passStart.IsZero() {
		since = c.passStart.Add(-c.o.Grace)
	}
	total, after := 0, ""
	for {
		n, last, more, err := c.batch(ctx, since, after)
		total += n
		if err != nil {
			return total, err
		}
		if !more {
			break
		}
		after = last
	}
	c.passStart = start
	if total > 0 {
		c.o.Logger.DebugContext(ctx, "audit rows chained", "component", "auditchain", "rows", total)
	}
	return total, nil
}

// batch links up to Batch rows with ids after `after` in one transaction.
func (c *Chainer) batch(ctx context.Context, since time.Time, after string) (linked int, last string, more bool, err error) {
	err = c.db.InAuditChainTx(ctx, func(tx *sql.Tx) error {
		linked = 0
		heads, err := store.AuditChainHeads(ctx, tx)
		if err != nil {
			return err
		}
		cps, err := store.LastAuditCheckpoints(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := store.UnchainedAudit(ctx, tx, since, after, c.o.Batch)
		if err != nil {
			return err
		}
		more = len(rows) == c.o.Batch
		now := c.o.Now().UTC()
		for _, e := range rows {
			last = e.ID
			h, ok := heads[e.OrgID]
			if ok && e.At.Before(h.RowAt.Add(-c.o.Grace)) {
				continue // inserted behind the chain; Verify names it
			}
			prev := genesis
			if ok {
				prev = h.ChainHash
			}
			l := store.AuditLink{OrgID: e.OrgID, Seq: h.Seq + 1, AuditID: e.ID, RowHash: RowHash(e), ChainedAt: now}
			l.ChainHash = LinkHash(prev, l.RowHash)
			if err := store.InsertAuditLink(ctx, tx, l); err != nil {
				return err
			}
			heads[e.OrgID] = store.AuditHead{AuditLink: l, RowAt: e.At}
			linked++
			if l.Seq%c.o.CheckpointEvery == 0 {
				cp := c.sign(l.OrgID, l.Seq, l.ChainHash, now)
				if err := store.InsertAuditCheckpoint(ctx, tx, cp); err != nil {
					return err
				}
				cps[l.OrgID] = cp
			}
		}
		for org, h := range heads {
			cp, ok := cps[org]
			if ok && (cp.Seq >= h.Seq || now.Sub(cp.SignedAt) < c.o.CheckpointInterval) {
				continue
			}
			if err := store.InsertAuditCheckpoint(ctx, tx, c.sign(org, h.Seq, h.ChainHash, now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, "", false, fmt.Errorf("chain audit rows: %w", err)
	}
	return linked, last, more, nil
}

func (c *Chainer) sign(orgID string, seq int64, head string, at time.Time) store.AuditCheckpoint {
	at = at.UTC().Truncate(time.Microsecond)
	sig := ed25519.Sign(c.key, checkpointMessage(orgID, seq, head, at))
	return store.AuditCheckpoint{OrgID: orgID, Seq: seq, HeadHash: head, SignedAt: at, Signature: hex.EncodeToString(sig)}
}
