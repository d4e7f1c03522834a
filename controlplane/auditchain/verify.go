package auditchain

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Result is one org's verification. When OK is false, BadRowID (and BadSeq, when the row
// has a place in the chain) name the first row found bad and Reason says how.
type Result struct {
	OrgID string `json:"org_id"`
	OK    bool   `json:"ok"`
	// Rows is how many chained rows were checked.
	Rows        int64 `json:"rows"`
	Checkpoints int   `json:"checkpoints"`
	// Unchained counts rows written too recently to be chained yet (the window the chain
	// does not cover; see the ADR).
	Unchained int    `json:"unchained"`
	BadRowID  string `json:"bad_row_id,omitempty"`
	BadSeq    int64  `json:"bad_seq,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

func (r Result) String() string {
	if r.OK {
		return fmt.Sprintf("audit chain ok: org %s, %d rows, %d checkpoints, %d not chained yet", r.OrgID, r.Rows, r.Checkpoints, r.Unchained)
	}
	where := "row " + r.BadRowID
	if r.BadRowID == "" {
		where = "chain"
	}
	if r.BadSeq > 0 {
		where += fmt.Sprintf(" (seq %d)", r.BadSeq)
	}
	return fmt.Sprintf("audit chain broken: org %s: %s: %s", r.OrgID, where, r.Reason)
}

// errStop ends the chain walk at the first bad row.
var errStop = errors.New("stop")

// Verify recomputes an org's chain in sequence order and checks, row by row: no sequence
// gap (a link deleted), the row still exists (a row deleted), its content hash (edited),
// its link to the previous hash (inserted or reordered), and each checkpoint's signature
// and head; then that no checkpoint lies beyond the chain's end (tail truncated) and that
// no unchained row predates the chain head by more than Grace (inserted behind the chain).
func Verify(ctx context.Context, q store.Querier, pub ed25519.PublicKey, orgID string, o Options) (Result, error) {
	o.init()
	r := Result{OrgID: orgID}
	cps, err := store.ListAuditCheckpoints(ctx, q, orgID)
	if err != nil {
		return r, err
	}
	r.Checkpoints = len(cps)
	bySeq := make(map[int64]store.AuditCheckpoint, len(cps))
	for _, cp := range cps {
		bySeq[cp.Seq] = cp
	}
	prev, want := genesis, int64(1)
	var head store.AuditHead
	bad := func(c store.ChainedAudit, reason string) error {
		r.BadRowID, r.BadSeq, r.Reason = c.Link.AuditID, c.Link.Seq, reason
		return errStop
	}
	err = store.WalkAuditChain(ctx, q, orgID, func(c store.ChainedAudit) error {
		l := c.Link
		switch {
		case l.Seq != want:
			return bad(c, fmt.Sprintf("links %d..%d are missing before this row: rows were deleted", want, l.Seq-1))
		case c.Entry == nil:
			return bad(c, "the row was deleted from audit_log")
		case RowHash(*c.Entry) != l.RowHash:
			return bad(c, "the row was edited: its content no longer matches its hash")
		case LinkHash(prev, l.RowHash) != l.ChainHash:
			return bad(c, "the row is not linked to the one before it: a row was inserted, or rows were reordered")
		}
		cp, hasCP := bySeq[l.Seq]
		if !hasCP && l.Seq%o.CheckpointEvery == 0 {
			return bad(c, fmt.Sprintf("the checkpoint due at seq %d is missing: checkpoints were deleted", l.Seq))
		}
		if hasCP {
			if reason := checkCheckpoint(pub, cp, l.ChainHash); reason != "" {
				return bad(c, reason)
			}
		}
		prev, want = l.ChainHash, l.Seq+1
		head = store.AuditHead{AuditLink: l, RowAt: c.Entry.At}
		r.Rows++
		return nil
	})
	if errors.Is(err, errStop) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if n := len(cps); n > 0 && cps[n-1].Seq > head.Seq {
		r.BadSeq, r.Reason = head.Seq+1, fmt.Sprintf("the chain ends at seq %d but a signed checkpoint covers seq %d: rows were deleted from the end", head.Seq, cps[n-1].Seq)
		return r, nil
	}
	var before = head.RowAt
	if !before.IsZero() {
		before = before.Add(-o.Grace)
	}
	unchained, late, err := store.UnchainedAuditOf(ctx, q, orgID, before)
	if err != nil {
		return r, err
	}
	r.Unchained = unchained
	if late != "" {
		r.BadRowID, r.Reason = late, "the row is not in the chain but is dated well before rows that are: it was inserted after the fact"
		return r, nil
	}
	r.OK = true
	return r, nil
}

func checkCheckpoint(pub ed25519.PublicKey, cp store.AuditCheckpoint, chainHash string) string {
	sig, err := hex.DecodeString(cp.Signature)
	if err != nil || !ed25519.Verify(pub, checkpointMessage(cp.OrgID, cp.Seq, cp.HeadHash, cp.SignedAt), sig) {
		return fmt.Sprintf("the checkpoint at seq %d has a bad signature: it was forged or altered", cp.Seq)
	}
	if cp.HeadHash != chainHash {
		return fmt.Sprintf("the chain differs from the signed checkpoint at seq %d: it was rewritten", cp.Seq)
	}
	return ""
}
