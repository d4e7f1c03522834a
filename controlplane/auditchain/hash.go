// Package auditchain makes each organisation's audit log tamper-evident: a chainer links
// committed audit rows into a per-org sha256 hash chain after the business transaction
// that wrote them, signs periodic checkpoints of the chain head with an ed25519 server
// key, and Verify walks the chain to name the first edited, deleted, inserted or
// reordered row. Why chaining is asynchronous: docs/adr/2026-12-02_audit-hash-chain.md.
package auditchain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// hashDomain separates audit link hashes from any other sha256 use.
const hashDomain = "lanyard-audit-link-v1"

// LinkHash is the hex sha256 over the previous link's hash and the row's canonical
// content. Every field is length-prefixed so no two rows share an encoding.
func LinkHash(prevHash string, e domain.AuditEntry) string {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(hashDomain)
	field(prevHash)
	field(e.ID)
	field(e.OrgID)
	field(e.Actor)
	field(e.Action)
	field(e.TargetType)
	field(e.TargetID)
	field(string(e.Before))
	field(string(e.After))
	field(e.RequestID)
	// Microseconds, UTC: what both stores keep (Postgres truncates to microseconds).
	field(strconv.FormatInt(e.At.UTC().Truncate(time.Microsecond).UnixMicro(), 10))
	return hex.EncodeToString(h.Sum(nil))
}

// checkpointMessage is what a checkpoint signs.
func checkpointMessage(orgID string, seq int64, head string, at time.Time) []byte {
	return []byte("lanyard-audit-checkpoint-v1\n" + orgID + "\n" + strconv.FormatInt(seq, 10) + "\n" + head + "\n" +
		strconv.FormatInt(at.UTC().UnixMicro(), 10))
}
