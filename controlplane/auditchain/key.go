package auditchain

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Sealer encrypts the key at rest; *secrets.Keyring implements it.
type Sealer interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// KeyStore keeps the sealed checkpoint key; *store.DB implements it.
type KeyStore interface {
	LoadAuditSigningKey(ctx context.Context) (string, error)
	InsertAuditSigningKey(ctx context.Context, sealed string, at time.Time) error
}

const keyAAD = "audit:checkpoint-key"

// OpenKey loads the checkpoint signing key, creating it on the first start. The public key
// is never read from the database: it is derived from the private key, which only the
// keyring file can open, so someone who can write the database cannot swap in their own.
func OpenKey(ctx context.Context, st KeyStore, sealer Sealer) (ed25519.PrivateKey, error) {
	sealed, err := st.LoadAuditSigningKey(ctx)
	if errors.Is(err, store.ErrNotFound) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("generate audit checkpoint key: %w", gerr)
		}
		s, serr := sealer.Seal(priv.Seed(), keyAAD)
		if serr != nil {
			return nil, fmt.Errorf("seal audit checkpoint key: %w", serr)
		}
		if ierr := st.InsertAuditSigningKey(ctx, s, time.Now()); ierr != nil && !errors.Is(ierr, store.ErrConflict) {
			return nil, ierr
		}
		sealed, err = st.LoadAuditSigningKey(ctx)
	}
	if err != nil {
		return nil, err
	}
	seed, err := sealer.Open(sealed, keyAAD)
	if err != nil {
		return nil, fmt.Errorf("open audit checkpoint key (is this the server's key file?): %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("audit checkpoint key: malformed seed")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
