// Package enrollment mints and checks per-org agent enrollment secrets. A secret is shown
// once, at creation; only its SHA-256 is stored. The installers capability mints one secret
// per package build through MintPackageSecret.
package enrollment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/installers"
)

// Prefix starts every enrollment secret, so leaked secrets are easy to scan for.
const Prefix = "lyes_"

// Store is what minting needs; *store.DB implements it.
type Store interface {
	CreateEnrollmentSecret(ctx context.Context, s *store.EnrollmentSecret, hash string) error
}

// Options limit a secret.
type Options struct {
	Name      string
	ExpiresAt *time.Time // nil: never expires
	MaxUses   int        // 0: unlimited
}

// ErrInvalid is returned for options that cannot be honoured.
var ErrInvalid = errors.New("enrollment: invalid secret options")

// Hash returns the stored form of a plaintext secret.
func Hash(plaintext string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(plaintext)))
	return hex.EncodeToString(sum[:])
}

// Generate returns a new random plaintext secret.
func Generate() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return Prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Mint creates a secret for an org and returns its plaintext, which is never stored.
func Mint(ctx context.Context, st Store, orgID string, o Options) (string, store.EnrollmentSecret, error) {
	if o.MaxUses < 0 {
		return "", store.EnrollmentSecret{}, fmt.Errorf("%w: max_uses must be >= 0", ErrInvalid)
	}
	if o.ExpiresAt != nil && !o.ExpiresAt.After(domain.Now()) {
		return "", store.EnrollmentSecret{}, fmt.Errorf("%w: expires_at is in the past", ErrInvalid)
	}
	if o.Name == "" {
		o.Name = "enrollment secret"
	}
	plain := Generate()
	s := store.EnrollmentSecret{OrgID: orgID, Name: o.Name, Prefix: plain[:len(Prefix)+6], ExpiresAt: o.ExpiresAt, MaxUses: o.MaxUses}
	if err := st.CreateEnrollmentSecret(ctx, &s, Hash(plain)); err != nil {
		return "", s, err
	}
	return plain, s, nil
}

// Minter adapts Mint to the installers capability (installers.SecretMinter and
// installers.CAFingerprinter).
type Minter struct {
	Store Store
	// Fingerprint returns the hex SHA-256 of the agent CA root (pki.CA.RootFingerprint).
	Fingerprint func() string
}

// MintPackageSecret mints one secret for one package build.
func (m Minter) MintPackageSecret(ctx context.Context, orgID string, o installers.SecretOptions) (installers.MintedSecret, error) {
	plain, s, err := Mint(ctx, m.Store, orgID, Options{Name: o.Name, ExpiresAt: o.ExpiresAt, MaxUses: o.MaxUses})
	if err != nil {
		return installers.MintedSecret{}, err
	}
	return installers.MintedSecret{ID: s.ID, Plaintext: plain}, nil
}

// CAFingerprint returns the pinned root fingerprint (one CA for all orgs).
func (m Minter) CAFingerprint(context.Context, string) (string, error) {
	if m.Fingerprint == nil {
		return "", errors.New("enrollment: no CA configured")
	}
	return m.Fingerprint(), nil
}

var (
	_ installers.SecretMinter    = Minter{}
	_ installers.CAFingerprinter = Minter{}
)
