package auditchain

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Store is what the chainer and Verify read and write.
type Store interface {
	KeyStore
	AuditOrgsToChain(ctx context.Context) ([]string, error)
	ChainAudit(ctx context.Context, orgID string, limit int, hash func(prevHash string, e domain.AuditEntry) string) (store.AuditHead, int, error)
	AuditChainHead(ctx context.Context, orgID string) (store.AuditHead, error)
	EachAuditLink(ctx context.Context, orgID string, fn func(store.AuditLink) error) error
	CountUnchainedAudit(ctx context.Context, orgID string) (int, error)
	InsertAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error
	ListAuditCheckpoints(ctx context.Context, orgID string) ([]store.AuditCheckpoint, error)
	LastAuditCheckpoint(ctx context.Context, orgID string) (store.AuditCheckpoint, error)
}

// Options configure a Chainer; zero values take the defaults.
type Options struct {
	Store   Store
	Keyring Keyring
	Logger  *slog.Logger
	Clock   domain.Clock
	// Interval is how often the background loop chains queued rows (default 5s): the
	// longest a committed row stays outside the chain while the server runs.
	Interval time.Duration
	// CheckpointEvery signs a checkpoint after this many new links (default 1000)…
	CheckpointEvery int64
	// …or once this long has passed since the last one, if the chain grew (default 1h).
	CheckpointInterval time.Duration
	// Batch is how many rows one chaining transaction links (default 500), which keeps
	// each transaction short.
	Batch int
}

type systemClock struct{}

func (systemClock) Now() time.Time { return domain.Now() }

// Chainer links audit rows into their org's chain and signs checkpoints.
type Chainer struct {
	o Options
}

// New builds a chainer.
func New(o Options) *Chainer {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 1000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Hour
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	return &Chainer{o: o}
}

// Start chains in the background until ctx ends. Every replica may run it: the store
// serialises chainers per org, so a second replica finds nothing left to link.
func (c *Chainer) Start(ctx context.Context) error {
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		if err := c.ChainAll(ctx); err != nil && ctx.Err() == nil {
			c.o.Logger.Warn("audit chaining failed; retrying", "component", "auditchain", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ChainAll chains every org's queued rows.
func (c *Chainer) ChainAll(ctx context.Context) error {
	orgs, err := c.o.Store.AuditOrgsToChain(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, org := range orgs {
		if err := c.ChainOrg(ctx, org); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ChainOrg links all of orgID's queued rows, then signs a checkpoint when one is due.
func (c *Chainer) ChainOrg(ctx context.Context, orgID string) error {
	for {
		_, n, err := c.o.Store.ChainAudit(ctx, orgID, c.o.Batch, LinkHash)
		if err != nil {
			return fmt.Errorf("chain audit of org %s: %w", orgID, err)
		}
		if n < c.o.Batch {
			break
		}
	}
	return c.checkpoint(ctx, orgID)
}

func (c *Chainer) checkpoint(ctx context.Context, orgID string) error {
	head, err := c.o.Store.AuditChainHead(ctx, orgID)
	if err != nil {
		return err
	}
	if head.Seq == 0 {
		return nil
	}
	now := c.o.Clock.Now().UTC().Truncate(time.Microsecond)
	last, err := c.o.Store.LastAuditCheckpoint(ctx, orgID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	case head.Seq <= last.Seq:
		return nil
	case head.Seq-last.Seq < c.o.CheckpointEvery && now.Sub(last.SignedAt) < c.o.CheckpointInterval:
		return nil
	}
	k, err := loadOrCreateKeys(ctx, c.o.Store, c.o.Keyring)
	if err != nil {
		return err
	}
	sig := ed25519.Sign(k.priv[k.active], checkpointMessage(orgID, head.Seq, head.Hash, now))
	err = c.o.Store.InsertAuditCheckpoint(ctx, store.AuditCheckpoint{OrgID: orgID, Seq: head.Seq, HeadHash: head.Hash, SignedAt: now,
		KeyID: k.active, Signature: base64.StdEncoding.EncodeToString(sig)})
	if errors.Is(err, store.ErrConflict) {
		return nil // another replica signed this head first
	}
	return err
}
