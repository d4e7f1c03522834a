// Package auditchain makes each organisation's audit log tamper-evident: a chainer links
// committed audit rows into a per-org sha256 chain and signs periodic checkpoints with an
// ed25519 server key; Verify recomputes the chain and names the first row that was edited,
// deleted, inserted or reordered. Chaining runs after commit, in its own transaction, so
// the business transactions that write audit rows never wait on it (the synchronous
// design deadlocked HR sync on Postgres; docs/adr/2026-12-02_audit-hash-chain.md).
//
// The server wires it (controlplane/server); cmd/lanyard's `admin audit verify` uses it on
// the database directly.
package auditchain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// genesis is the "previous hash" of an org's first link.
var genesis = hex.EncodeToString(make([]byte, sha256.Size))

// RowHash is the hex sha256 of an audit row's canonical content. Every field is length
// prefixed (an absent JSON document differs from an empty one), and the time is cut to
// microseconds, the precision both stores keep.
func RowHash(e domain.AuditEntry) string {
	h := sha256.New()
	h.Write([]byte("lanyard-audit-row-v1"))
	field := func(b []byte, present bool) {
		var n [8]byte
		if !present {
			binary.BigEndian.PutUint64(n[:], ^uint64(0))
			h.Write(n[:])
			return
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, s := range []string{e.ID, e.OrgID, e.Actor, e.Action, e.TargetType, e.TargetID, e.RequestID, canonicalTime(e.At)} {
		field([]byte(s), true)
	}
	field(e.Before, e.Before != nil)
	field(e.After, e.After != nil)
	return hex.EncodeToString(h.Sum(nil))
}

// LinkHash chains a row hash to the previous link's hash.
func LinkHash(prev, rowHash string) string {
	h := sha256.New()
	h.Write([]byte("lanyard-audit-link-v1"))
	h.Write([]byte(prev))
	h.Write([]byte(rowHash))
	return hex.EncodeToString(h.Sum(nil))
}

// checkpointMessage is what a checkpoint signature covers.
func checkpointMessage(orgID string, seq int64, head string, at time.Time) []byte {
	return []byte("lanyard-audit-checkpoint-v1\n" + orgID + "\n" + strconv.FormatInt(seq, 10) + "\n" + head + "\n" + canonicalTime(at))
}

func canonicalTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}
