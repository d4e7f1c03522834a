package auditchain

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Keyring seals the checkpoint keys at rest (secrets.Keyring).
type Keyring interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// KeyStore keeps the sealed checkpoint keys.
type KeyStore interface {
	ListAuditSigningKeys(ctx context.Context) ([]store.AuditSigningKey, error)
	InsertAuditSigningKey(ctx context.Context, k store.AuditSigningKey) error
}

func keyAAD(id string) string { return "audit:signing-key:" + id }

func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "a" + hex.EncodeToString(sum[:6])
}

// keys are the opened checkpoint keys: the newest signs, all verify.
type keys struct {
	active string
	priv   map[string]ed25519.PrivateKey
}

// loadKeys opens every stored key. A key the keyring cannot open is an error, not a
// skip: a row an attacker planted without the keyring must not verify anything.
func loadKeys(ctx context.Context, ks KeyStore, kr Keyring) (*keys, error) {
	list, err := ks.ListAuditSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	k := &keys{priv: map[string]ed25519.PrivateKey{}}
	for _, sk := range list {
		seed, err := kr.Open(sk.PrivateSealed, keyAAD(sk.ID))
		if err != nil {
			return nil, fmt.Errorf("open audit signing key %s: %w", sk.ID, err)
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("audit signing key %s: bad seed length %d", sk.ID, len(seed))
		}
		priv := ed25519.NewKeyFromSeed(seed)
		if got := keyID(priv.Public().(ed25519.PublicKey)); got != sk.ID {
			return nil, fmt.Errorf("audit signing key %s: its key is %s", sk.ID, got)
		}
		k.priv[sk.ID] = priv
		k.active = sk.ID
	}
	return k, nil
}

// loadOrCreateKeys opens the stored keys, creating the first on first use. Two replicas
// creating one each at once is harmless: both verify, the newest signs.
func loadOrCreateKeys(ctx context.Context, ks KeyStore, kr Keyring) (*keys, error) {
	k, err := loadKeys(ctx, ks, kr)
	if err != nil || k.active != "" {
		return k, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate audit signing key: %w", err)
	}
	id := keyID(priv.Public().(ed25519.PublicKey))
	sealed, err := kr.Seal(priv.Seed(), keyAAD(id))
	if err != nil {
		return nil, fmt.Errorf("seal audit signing key: %w", err)
	}
	if err := ks.InsertAuditSigningKey(ctx, store.AuditSigningKey{ID: id, PrivateSealed: sealed, CreatedAt: domain.Now()}); err != nil {
		return nil, err
	}
	return loadKeys(ctx, ks, kr)
}
