// Package auditchain is the arithmetic of Lanyard's tamper-evident audit log (docs/audit.md):
// the canonical encoding and hash of one audit row, the signed checkpoint statement, and the
// Verifier that walks an organisation's chain and names the first row that does not check
// out. It knows nothing of SQL: the store writes rows with Link and the verifier reads them
// through the Source interface it declares.
package auditchain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// GenesisHash is the prev_hash of an organisation's first row (seq 1): 32 zero bytes.
var GenesisHash = hex.EncodeToString(make([]byte, sha256.Size))

// rowDomain separates row hashes from every other SHA-256 in the system, and versions the
// encoding: a future change gets a new tag, never a silent reinterpretation.
const rowDomain = "lanyard.audit.row.v1"

// Truncate is the precision the chain commits to: Postgres keeps microseconds, so a row
// hashed with nanoseconds would not verify after a round trip.
func Truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Hash returns hex(SHA-256(prev || canonical(e, seq))). prevHex is the previous row's hash
// (GenesisHash for seq 1). The encoding is length-prefixed field by field, so no two
// different rows encode alike (no delimiter to smuggle), and before/after distinguish
// absent (NULL) from present.
func Hash(prevHex string, seq int64, e domain.AuditEntry) string {
	h := sha256.New()
	prev, err := hex.DecodeString(prevHex)
	if err != nil || len(prev) != sha256.Size {
		// A malformed stored prev_hash still hashes deterministically (as its text), so the
		// row fails verification instead of the verifier failing.
		prev = []byte(prevHex)
	}
	h.Write(prev)
	buf := make([]byte, 0, 256)
	buf = appendString(buf, rowDomain)
	buf = appendString(buf, e.OrgID)
	buf = binary.BigEndian.AppendUint64(buf, uint64(seq))
	buf = appendString(buf, e.ID)
	buf = binary.BigEndian.AppendUint64(buf, uint64(Truncate(e.At).UnixMicro()))
	buf = appendString(buf, e.Actor)
	buf = appendString(buf, e.Action)
	buf = appendString(buf, e.TargetType)
	buf = appendString(buf, e.TargetID)
	buf = appendOptional(buf, e.Before)
	buf = appendOptional(buf, e.After)
	buf = appendString(buf, e.RequestID)
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendOptional encodes JSON that the store keeps as NULL when empty: a presence byte,
// then the bytes.
func appendOptional(b []byte, v []byte) []byte {
	if len(v) == 0 {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}
