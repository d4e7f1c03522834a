package auditchain

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"
)

// Source is what the verifier reads; *store.DB implements it. Rows come in (seq, id)
// order a page at a time, so a chain of any length is walked in constant memory.
type Source interface {
	AuditChainRows(ctx context.Context, orgID string, afterSeq int64, afterID string, limit int) ([]Row, error)
	AuditUnchained(ctx context.Context, orgID string, limit int) ([]Row, error)
	AuditChainHead(ctx context.Context, orgID string) (Head, bool, error)
	AuditCheckpoints(ctx context.Context, orgID string, afterSeq int64, limit int) ([]Checkpoint, error)
}

// Kind classifies the first problem found.
type Kind string

const (
	// Edited: a row's content no longer matches its stored hash.
	Edited Kind = "edited"
	// Rewritten: a row was changed and its hash recomputed; the next row, the chain head or
	// a signed checkpoint still holds the original hash.
	Rewritten Kind = "rewritten"
	// Deleted: a seq is missing from the middle of the chain.
	Deleted Kind = "deleted"
	// Inserted: a row that the writer did not put there (duplicate seq, past the head, or
	// no chain position at all).
	Inserted Kind = "inserted"
	// Reordered: a row sits at a seq other than the one it was hashed at.
	Reordered Kind = "reordered"
	// Truncated: rows after the last one present were removed (a checkpoint or the head
	// names a seq beyond the end).
	Truncated Kind = "truncated"
	// BadSignature: a checkpoint's signature does not verify with any trusted key.
	BadSignature Kind = "bad_signature"
)

// Problem is the first thing in a chain that does not check out.
type Problem struct {
	Kind         Kind   `json:"kind"`
	Seq          int64  `json:"seq"`
	RowID        string `json:"row_id,omitempty"`
	CheckpointID string `json:"checkpoint_id,omitempty"`
	Detail       string `json:"detail"`
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s", p.Kind, p.Detail)
}

// Report is the outcome of verifying one org.
type Report struct {
	OrgID       string   `json:"org_id"`
	OK          bool     `json:"ok"`
	Rows        int64    `json:"rows"`
	Checkpoints int64    `json:"checkpoints"`
	LastSeq     int64    `json:"last_seq"`
	LastHash    string   `json:"last_hash,omitempty"`
	Problem     *Problem `json:"problem,omitempty"`
}

// String is the one line the CLI prints.
func (r Report) String() string {
	if r.OK {
		return fmt.Sprintf("audit chain ok: org %s: %d rows, %d signed checkpoints, head seq %d", r.OrgID, r.Rows, r.Checkpoints, r.LastSeq)
	}
	return fmt.Sprintf("audit chain BROKEN: org %s: %s", r.OrgID, r.Problem)
}

// Verifier walks chains. Keys are the trusted checkpoint public keys by KeyID.
type Verifier struct {
	Src  Source
	Keys map[string]ed25519.PublicKey
	// PageSize is rows (and checkpoints) per read (1000 when zero).
	PageSize int
	// ReorderWindow is how far from its position a row's original seq is searched for, to
	// tell a reordered row from an edited one (1024 when zero).
	ReorderWindow int64
}

// Verify walks orgID's whole chain from genesis.
func (v *Verifier) Verify(ctx context.Context, orgID string) (Report, error) {
	return v.VerifyFrom(ctx, orgID, Head{Seq: 0, Hash: GenesisHash})
}

// VerifyFrom walks orgID's chain after a position already trusted (a checkpoint the
// caller verified), so the checkpoint writer checks only what it is about to sign.
func (v *Verifier) VerifyFrom(ctx context.Context, orgID string, from Head) (Report, error) {
	w := &walk{v: v, org: orgID, rep: Report{OrgID: orgID, LastSeq: from.Seq, LastHash: from.Hash}}
	if err := w.run(ctx, from); err != nil {
		return Report{}, fmt.Errorf("verify audit chain of org %s: %w", orgID, err)
	}
	w.rep.OK = w.rep.Problem == nil
	return w.rep, nil
}

type walk struct {
	v   *Verifier
	org string
	rep Report

	rows    []Row
	rowsEnd bool
	cps     []Checkpoint
	cpsEnd  bool
	cpAfter int64

	head     Head
	haveHead bool
}

func (v *Verifier) page() int {
	if v.PageSize <= 0 {
		return 1000
	}
	return v.PageSize
}

// peekRow returns the next row without consuming it; ok false at the end.
func (w *walk) peekRow(ctx context.Context, afterSeq int64, afterID string) (Row, bool, error) {
	if len(w.rows) == 0 && !w.rowsEnd {
		rs, err := w.v.Src.AuditChainRows(ctx, w.org, afterSeq, afterID, w.v.page())
		if err != nil {
			return Row{}, false, err
		}
		w.rows, w.rowsEnd = rs, len(rs) < w.v.page()
	}
	if len(w.rows) == 0 {
		return Row{}, false, nil
	}
	return w.rows[0], true, nil
}

func (w *walk) peekCheckpoint(ctx context.Context) (Checkpoint, bool, error) {
	if len(w.cps) == 0 && !w.cpsEnd {
		cs, err := w.v.Src.AuditCheckpoints(ctx, w.org, w.cpAfter, w.v.page())
		if err != nil {
			return Checkpoint{}, false, err
		}
		w.cps, w.cpsEnd = cs, len(cs) < w.v.page()
	}
	if len(w.cps) == 0 {
		return Checkpoint{}, false, nil
	}
	return w.cps[0], true, nil
}

func (w *walk) popCheckpoint() {
	w.cpAfter = w.cps[0].Seq
	w.cps = w.cps[1:]
	w.rep.Checkpoints++
}

func (w *walk) fail(p Problem) { w.rep.Problem = &p }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// The walk reads without a transaction while writers go on appending. A writer commits a
// row and the advanced head together, so: a row past the head read earlier is checked
// against a fresh head before it is called inserted; when the rows run out while the head
// is ahead, the rows committed meanwhile are read before anything is called truncated;
// and a checkpoint that appears behind the walk's position is checked against its row.

// refetchRounds bounds how often the walk catches up with writers at its end.
const refetchRounds = 1000

func (w *walk) readHead(ctx context.Context) error {
	h, ok, err := w.v.Src.AuditChainHead(ctx, w.org)
	if err != nil {
		return err
	}
	w.head, w.haveHead = h, ok
	return nil
}

// pastHead reports whether seq is beyond the chain head, re-reading the head first.
func (w *walk) pastHead(ctx context.Context, seq int64) (bool, error) {
	if !w.haveHead || seq <= w.head.Seq {
		return false, nil
	}
	if err := w.readHead(ctx); err != nil {
		return false, err
	}
	return w.haveHead && seq > w.head.Seq, nil
}

func (w *walk) badSignature(c Checkpoint) {
	w.fail(Problem{Kind: BadSignature, Seq: c.Seq, CheckpointID: c.ID,
		Detail: fmt.Sprintf("checkpoint %s at seq %d (signed %s, key %s) has an invalid signature", c.ID, c.Seq, stamp(c.At), c.KeyID)})
}

func (w *walk) run(ctx context.Context, from Head) error {
	if err := w.readHead(ctx); err != nil {
		return err
	}
	w.cpAfter = from.Seq
	prev := from // position and hash of the last row accepted
	var prevRow *Row
	prevPrevHash := ""
	lastCP := Head{Seq: from.Seq}
	rounds := 0
	for {
		r, ok, err := w.peekRow(ctx, prev.Seq, idOf(prevRow))
		if err != nil {
			return err
		}
		if !ok {
			if err := w.readHead(ctx); err != nil {
				return err
			}
			if !w.haveHead || w.head.Seq <= prev.Seq || rounds >= refetchRounds {
				break
			}
			rounds++
			w.rowsEnd = false
			if r, ok, err = w.peekRow(ctx, prev.Seq, idOf(prevRow)); err != nil {
				return err
			} else if !ok {
				break
			}
		}
		w.rows = w.rows[1:]
		w.rep.Rows++
		p, err := w.checkRow(ctx, r, prev, prevRow, prevPrevHash)
		if err != nil {
			return err
		}
		if p != nil {
			w.fail(*p)
			return nil
		}
		// Checkpoints up to this seq: a signature first, then does it name this row's hash.
		for {
			c, ok, err := w.peekCheckpoint(ctx)
			if err != nil {
				return err
			}
			if !ok || c.Seq > r.Seq {
				break
			}
			if !VerifySignature(c, w.v.Keys) {
				w.badSignature(c)
				return nil
			}
			at, atOK := r, true
			if c.Seq < r.Seq {
				// Signed after the walk passed its seq: compare with that row.
				rs, err := w.v.Src.AuditChainRows(ctx, w.org, c.Seq-1, "", 1)
				if err != nil {
					return err
				}
				atOK = len(rs) == 1 && rs[0].Seq == c.Seq
				if atOK {
					at = rs[0]
				}
			}
			if !atOK {
				w.fail(Problem{Kind: Deleted, Seq: c.Seq, CheckpointID: c.ID,
					Detail: fmt.Sprintf("checkpoint %s names seq %d, which is not in the log (deleted)", c.ID, c.Seq)})
				return nil
			}
			if c.Hash != at.Hash {
				w.fail(Problem{Kind: Rewritten, Seq: at.Seq, RowID: at.Entry.ID, CheckpointID: c.ID,
					Detail: fmt.Sprintf("row %s (seq %d) does not match checkpoint %s signed %s: the chain between seq %d and %d was rewritten",
						at.Entry.ID, at.Seq, c.ID, stamp(c.At), lastCP.Seq+1, at.Seq)})
				return nil
			}
			lastCP = Head{Seq: c.Seq, Hash: c.Hash}
			w.popCheckpoint()
		}
		prevPrevHash = prev.Hash
		rr := r
		prevRow = &rr
		prev = Head{Seq: r.Seq, Hash: r.Hash}
	}
	w.rep.LastSeq, w.rep.LastHash = prev.Seq, prev.Hash
	// Checkpoints past the end: the log lost rows it once had.
	if c, ok, err := w.peekCheckpoint(ctx); err != nil {
		return err
	} else if ok {
		if !VerifySignature(c, w.v.Keys) {
			w.badSignature(c)
			return nil
		}
		w.fail(Problem{Kind: Truncated, Seq: prev.Seq + 1, CheckpointID: c.ID,
			Detail: fmt.Sprintf("checkpoint %s signed %s names seq %d but the log ends at seq %d: rows after seq %d were deleted",
				c.ID, stamp(c.At), c.Seq, prev.Seq, prev.Seq)})
		return nil
	}
	if w.haveHead && w.head.Seq > prev.Seq && rounds < refetchRounds {
		w.fail(Problem{Kind: Truncated, Seq: prev.Seq + 1,
			Detail: fmt.Sprintf("the chain head is at seq %d but the log ends at seq %d: rows after seq %d were deleted", w.head.Seq, prev.Seq, prev.Seq)})
		return nil
	}
	if w.haveHead && w.head.Seq == prev.Seq && prevRow != nil && w.head.Hash != prev.Hash {
		w.fail(Problem{Kind: Rewritten, Seq: prev.Seq, RowID: prevRow.Entry.ID,
			Detail: fmt.Sprintf("row %s (seq %d) was rewritten: its hash differs from the chain head's", prevRow.Entry.ID, prev.Seq)})
		return nil
	}
	un, err := w.v.Src.AuditUnchained(ctx, w.org, 1)
	if err != nil {
		return err
	}
	if len(un) > 0 {
		e := un[0].Entry
		w.fail(Problem{Kind: Inserted, RowID: e.ID,
			Detail: fmt.Sprintf("row %s (%s %s/%s at %s) has no chain position: inserted outside the audit writer",
				e.ID, e.Action, e.TargetType, e.TargetID, stamp(e.At))})
	}
	return nil
}

func idOf(r *Row) string {
	if r == nil {
		return ""
	}
	return r.Entry.ID
}

// checkRow checks r against the row before it (prev; prevRow nil at the start).
func (w *walk) checkRow(ctx context.Context, r Row, prev Head, prevRow *Row, prevPrevHash string) (*Problem, error) {
	id := r.Entry.ID
	selfOK := Hash(r.PrevHash, r.Seq, r.Entry) == r.Hash
	if prevRow != nil && r.Seq == prev.Seq {
		// Two rows at one position: prevRow already checked out against the chain, so the
		// genuine one is whichever the following row links to.
		inserted := r
		if selfOK && r.PrevHash == prevPrevHash {
			if next, ok, err := w.peekRow(ctx, r.Seq, id); err == nil && ok && next.PrevHash == r.Hash {
				inserted = *prevRow
			}
		}
		return &Problem{Kind: Inserted, Seq: r.Seq, RowID: inserted.Entry.ID,
			Detail: fmt.Sprintf("row %s was inserted: it duplicates seq %d (%s %s/%s at %s)", inserted.Entry.ID, r.Seq,
				inserted.Entry.Action, inserted.Entry.TargetType, inserted.Entry.TargetID, stamp(inserted.Entry.At))}, nil
	}
	if past, err := w.pastHead(ctx, r.Seq); err != nil {
		return nil, err
	} else if past {
		return &Problem{Kind: Inserted, Seq: r.Seq, RowID: id,
			Detail: fmt.Sprintf("row %s at seq %d is past the chain head (seq %d): appended outside the audit writer", id, r.Seq, w.head.Seq)}, nil
	}
	if r.Seq > prev.Seq+1 {
		missing := fmt.Sprintf("seq %d", prev.Seq+1)
		if r.Seq > prev.Seq+2 {
			missing = fmt.Sprintf("seq %d-%d", prev.Seq+1, r.Seq-1)
		}
		after := "the start"
		if prevRow != nil {
			after = fmt.Sprintf("row %s (seq %d)", prevRow.Entry.ID, prev.Seq)
		}
		return &Problem{Kind: Deleted, Seq: prev.Seq + 1, RowID: id,
			Detail: fmt.Sprintf("%s deleted: the chain jumps from %s to row %s (seq %d)", missing, after, id, r.Seq)}, nil
	}
	if !selfOK {
		// A bad row sharing its seq with the next one is the intruder at that position.
		if next, ok, err := w.peekRow(ctx, r.Seq, id); err != nil {
			return nil, err
		} else if ok && next.Seq == r.Seq {
			return &Problem{Kind: Inserted, Seq: r.Seq, RowID: id,
				Detail: fmt.Sprintf("row %s was inserted: it duplicates seq %d (%s %s/%s at %s)", id, r.Seq,
					r.Entry.Action, r.Entry.TargetType, r.Entry.TargetID, stamp(r.Entry.At))}, nil
		}
		if orig, ok := w.originalSeq(r); ok {
			return &Problem{Kind: Reordered, Seq: r.Seq, RowID: id,
				Detail: fmt.Sprintf("row %s was reordered: it sits at seq %d but was written at seq %d", id, r.Seq, orig)}, nil
		}
		return &Problem{Kind: Edited, Seq: r.Seq, RowID: id,
			Detail: fmt.Sprintf("row %s (seq %d, %s %s/%s at %s) was edited: its content does not match its hash", id, r.Seq,
				r.Entry.Action, r.Entry.TargetType, r.Entry.TargetID, stamp(r.Entry.At))}, nil
	}
	if r.PrevHash != prev.Hash {
		if prevRow == nil {
			return &Problem{Kind: Edited, Seq: r.Seq, RowID: id,
				Detail: fmt.Sprintf("row %s (seq %d) was edited: it does not link to seq %d", id, r.Seq, prev.Seq)}, nil
		}
		return &Problem{Kind: Rewritten, Seq: prev.Seq, RowID: prevRow.Entry.ID,
			Detail: fmt.Sprintf("row %s (seq %d, %s %s/%s) was rewritten: its hash was recomputed but row %s (seq %d) still links to the original",
				prevRow.Entry.ID, prev.Seq, prevRow.Entry.Action, prevRow.Entry.TargetType, prevRow.Entry.TargetID, id, r.Seq)}, nil
	}
	return nil, nil
}

// originalSeq looks for the seq r was hashed at, near where it sits.
func (w *walk) originalSeq(r Row) (int64, bool) {
	win := w.v.ReorderWindow
	if win <= 0 {
		win = 1024
	}
	for d := int64(1); d <= win; d++ {
		for _, s := range []int64{r.Seq - d, r.Seq + d} {
			if s > 0 && Hash(r.PrevHash, s, r.Entry) == r.Hash {
				return s, true
			}
		}
	}
	return 0, false
}
