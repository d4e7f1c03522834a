package auditchain

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Report is the outcome of verifying one org's chain.
type Report struct {
	OrgID string `json:"org_id"`
	OK    bool   `json:"ok"`
	// Rows is how many links were checked before the first problem (all of them when OK).
	Rows        int64 `json:"rows"`
	Checkpoints int   `json:"checkpoints"`
	// Unchained counts rows not linked yet: written within the chaining window, so the
	// chain does not vouch for them (docs/adr/2026-12-02_audit-hash-chain.md).
	Unchained int      `json:"unchained"`
	FirstBad  *Problem `json:"first_bad,omitempty"`
}

// Problem names the first row (or checkpoint) where the chain does not hold.
type Problem struct {
	// RowID is the audit row at fault ("" when only a checkpoint names it).
	RowID  string `json:"row_id,omitempty"`
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

func (p *Problem) String() string {
	if p.RowID == "" {
		return fmt.Sprintf("seq %d: %s", p.Seq, p.Reason)
	}
	return fmt.Sprintf("row %s (seq %d): %s", p.RowID, p.Seq, p.Reason)
}

// errStop ends the walk at the first problem.
var errStop = errors.New("stop")

// Verify recomputes orgID's chain in sequence order and checks, row by row: no gap in the
// sequence (a deletion), the row still exists (a deletion), its stored previous hash is
// the hash of the link before it (an insertion or a reorder), its content still hashes to
// its link (an edit); and that every checkpoint is signed by a server key and matches the
// recomputed head at its sequence (a rewritten chain, a truncated tail).
func (c *Chainer) Verify(ctx context.Context, orgID string) (Report, error) {
	r := Report{OrgID: orgID}
	k, err := loadKeys(ctx, c.o.Store, c.o.Keyring)
	if err != nil {
		return r, err
	}
	cps, err := c.o.Store.ListAuditCheckpoints(ctx, orgID)
	if err != nil {
		return r, err
	}
	r.Checkpoints = len(cps)
	if r.Unchained, err = c.o.Store.CountUnchainedAudit(ctx, orgID); err != nil {
		return r, err
	}
	next := 0 // the next checkpoint to match
	prev := ""
	var seq int64
	fail := func(p Problem) error { r.FirstBad = &p; return errStop }
	err = c.o.Store.EachAuditLink(ctx, orgID, func(l store.AuditLink) error {
		seq++
		switch {
		case l.Seq != seq:
			return fail(Problem{RowID: l.AuditID, Seq: l.Seq, Reason: fmt.Sprintf("sequence gap: expected seq %d before it: rows were deleted", seq)})
		case l.Missing:
			return fail(Problem{RowID: l.AuditID, Seq: l.Seq, Reason: "row deleted: the chain links it but the audit log no longer has it"})
		case l.PrevHash != prev:
			return fail(Problem{RowID: l.AuditID, Seq: l.Seq, Reason: "broken link: its previous hash is not the row before it: a row was inserted or moved before it"})
		case LinkHash(prev, l.Entry) != l.Hash:
			return fail(Problem{RowID: l.AuditID, Seq: l.Seq, Reason: "content does not match its hash: the row was edited"})
		}
		prev = l.Hash
		for ; next < len(cps) && cps[next].Seq <= l.Seq; next++ {
			if p := checkCheckpoint(k, cps[next], l.Seq, l.Hash); p != nil {
				p.RowID = l.AuditID
				return fail(*p)
			}
		}
		r.Rows = seq
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return r, err
	}
	if r.FirstBad == nil && next < len(cps) {
		cp := cps[next]
		if p := checkCheckpoint(k, cp, cp.Seq, cp.HeadHash); p != nil {
			r.FirstBad = p
		} else {
			r.FirstBad = &Problem{Seq: cp.Seq, Reason: fmt.Sprintf("a signed checkpoint is beyond the chain head (seq %d): rows were deleted from the end", seq)}
		}
	}
	r.OK = r.FirstBad == nil
	return r, nil
}

// checkCheckpoint checks cp's signature and that it names the head at seq.
func checkCheckpoint(k *keys, cp store.AuditCheckpoint, seq int64, head string) *Problem {
	priv, ok := k.priv[cp.KeyID]
	if !ok {
		return &Problem{Seq: cp.Seq, Reason: fmt.Sprintf("checkpoint signed by unknown key %q", cp.KeyID)}
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Signature)
	if err != nil || !ed25519.Verify(priv.Public().(ed25519.PublicKey), checkpointMessage(cp.OrgID, cp.Seq, cp.HeadHash, cp.SignedAt), sig) {
		return &Problem{Seq: cp.Seq, Reason: "checkpoint signature is invalid: the checkpoint was forged or altered"}
	}
	if cp.Seq != seq || cp.HeadHash != head {
		return &Problem{Seq: cp.Seq, Reason: "checkpoint does not match the chain: rows at or before it were rewritten"}
	}
	return nil
}

// ChainAndVerify links orgID's queued rows first, so the report covers everything
// committed so far, then verifies.
func (c *Chainer) ChainAndVerify(ctx context.Context, orgID string) (Report, error) {
	if err := c.ChainOrg(ctx, orgID); err != nil {
		return Report{OrgID: orgID}, err
	}
	return c.Verify(ctx, orgID)
}
