package auditchain

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Row is one audit row with its chain position as stored.
type Row struct {
	Entry    domain.AuditEntry
	Seq      int64
	PrevHash string
	Hash     string
}

// Head is the writers' view of the chain's end: its last seq and that row's hash.
type Head struct {
	Seq  int64
	Hash string
}

// Checkpoint is a signed statement that an org's chain had Hash at Seq. Exported off the
// box, checkpoints pin history even against someone who can rewrite the database.
type Checkpoint struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	At        time.Time `json:"at"`
	KeyID     string    `json:"key_id"`
	Signature string    `json:"signature"` // base64 Ed25519 signature of CheckpointMessage
}

const checkpointDomain = "lanyard.audit.checkpoint.v1"

// CheckpointMessage is the byte string a checkpoint's signature covers.
func CheckpointMessage(c Checkpoint) []byte {
	b := appendString(nil, checkpointDomain)
	b = appendString(b, c.OrgID)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Seq))
	b = appendString(b, c.Hash)
	b = binary.BigEndian.AppendUint64(b, uint64(Truncate(c.At).UnixMicro()))
	b = appendString(b, c.KeyID)
	return b
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// Sign fills c.KeyID and c.Signature (c.At is truncated to the stored precision first).
func Sign(c Checkpoint, priv ed25519.PrivateKey) Checkpoint {
	c.At = Truncate(c.At)
	c.KeyID = KeyID(priv.Public().(ed25519.PublicKey))
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, CheckpointMessage(c)))
	return c
}

// VerifySignature checks c against keys (by key id); false for an unknown key or a bad
// signature.
func VerifySignature(c Checkpoint, keys map[string]ed25519.PublicKey) bool {
	pub, ok := keys[c.KeyID]
	if !ok {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil {
		return false
	}
	return ed25519.Verify(pub, CheckpointMessage(c), sig)
}
