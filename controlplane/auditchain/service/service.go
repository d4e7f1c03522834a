// Package service is the audit chain capability (docs/audit.md): it keeps the Ed25519 key
// that signs checkpoints (sealed by the server keyring, like the CA key), writes signed
// checkpoints from a River job (every N rows or T minutes) and on demand, and serves
// verification and the public key over the admin API.
package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Store is the persistence the capability needs; *store.DB implements it.
type Store interface {
	auditchain.Source
	AuditChainOrgs(ctx context.Context) ([]string, error)
	InsertAuditCheckpoint(ctx context.Context, c auditchain.Checkpoint) error
	LatestAuditCheckpoint(ctx context.Context, orgID string) (auditchain.Checkpoint, bool, error)
	ListAuditSigningKeys(ctx context.Context) ([]store.AuditSigningKey, error)
	InsertAuditSigningKey(ctx context.Context, k store.AuditSigningKey) error
}

// Sealer encrypts key material at rest; *secrets.Keyring implements it.
type Sealer interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// Config tunes the capability; zero values take the defaults.
type Config struct {
	Store  Store
	Sealer Sealer
	Logger *slog.Logger
	// EveryRows: a checkpoint once this many rows follow the last one (default 1000).
	EveryRows int64
	// Every: a checkpoint once the last one is this old and rows follow it (default 10 min).
	Every time.Duration
	// Tick is how often the River job looks for orgs due a checkpoint (default 1 min).
	Tick time.Duration
	Now  func() time.Time
	// ReadOnly opens the keys without creating one (verification tools): the service can
	// then verify but, on an installation without a key, not sign.
	ReadOnly bool
}

// Service signs and verifies audit chains.
type Service struct {
	cfg   Config
	log   *slog.Logger
	priv  ed25519.PrivateKey
	keyID string
	// keys are the public keys the keyring vouches for: each one's sealed private key
	// opens with this server's keyring and matches it. A key row someone added to the
	// database without the keyring is not among them.
	keys map[string]ed25519.PublicKey
	list []PublicKey
}

// PublicKey is a checkpoint verification key.
type PublicKey struct {
	ID         string            `json:"id"`
	Generation int               `json:"generation"`
	Key        ed25519.PublicKey `json:"-"`
	PublicKey  string            `json:"public_key"` // base64 raw Ed25519
	PEM        string            `json:"pem"`        // PKIX "PUBLIC KEY"
	CreatedAt  time.Time         `json:"created_at"`
}

func aad(id string) string { return "audit_signing_key:" + id }

// Open loads the signing keys, creating the first on a fresh installation. Replicas that
// start together converge on one key (the generation is unique; the loser reloads).
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.EveryRows <= 0 {
		cfg.EveryRows = 1000
	}
	if cfg.Every <= 0 {
		cfg.Every = 10 * time.Minute
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = domain.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "auditchain")}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	if s.priv == nil && !cfg.ReadOnly {
		if err := s.create(ctx, 1); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		if err := s.load(ctx); err != nil {
			return nil, err
		}
		if s.priv == nil {
			return nil, errors.New("audit signing key: none usable after creating one")
		}
	}
	return s, nil
}

func (s *Service) create(ctx context.Context, gen int) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate audit signing key: %w", err)
	}
	id := auditchain.KeyID(pub)
	sealed, err := s.cfg.Sealer.Seal(priv.Seed(), aad(id))
	if err != nil {
		return fmt.Errorf("seal audit signing key: %w", err)
	}
	return s.cfg.Store.InsertAuditSigningKey(ctx, store.AuditSigningKey{ID: id, Generation: gen,
		PublicKey: base64.StdEncoding.EncodeToString(pub), Sealed: sealed, CreatedAt: s.cfg.Now()})
}

// load opens every stored key; the newest that opens signs. A key that does not open or
// does not match its public half is left out of the trusted set, with a warning.
func (s *Service) load(ctx context.Context) error {
	rows, err := s.cfg.Store.ListAuditSigningKeys(ctx)
	if err != nil {
		return err
	}
	s.keys, s.list, s.priv = map[string]ed25519.PublicKey{}, nil, nil
	for _, k := range rows {
		seed, err := s.cfg.Sealer.Open(k.Sealed, aad(k.ID))
		if err != nil || len(seed) != ed25519.SeedSize {
			s.log.WarnContext(ctx, "audit signing key does not open with this keyring; checkpoints it signed are not trusted", "key_id", k.ID, "err", err)
			continue
		}
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		if auditchain.KeyID(pub) != k.ID || base64.StdEncoding.EncodeToString(pub) != k.PublicKey {
			s.log.WarnContext(ctx, "audit signing key does not match its stored public key; not trusted", "key_id", k.ID)
			continue
		}
		s.keys[k.ID] = pub
		p, err := publicKey(k.ID, k.Generation, pub, k.CreatedAt)
		if err != nil {
			return err
		}
		s.list = append(s.list, p)
		if s.priv == nil { // rows come newest generation first
			s.priv, s.keyID = priv, k.ID
		}
	}
	return nil
}

func publicKey(id string, gen int, pub ed25519.PublicKey, created time.Time) (PublicKey, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return PublicKey{}, fmt.Errorf("marshal audit public key: %w", err)
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Key-Id": id}, Bytes: der})
	return PublicKey{ID: id, Generation: gen, Key: pub, PublicKey: base64.StdEncoding.EncodeToString(pub), PEM: string(block), CreatedAt: created}, nil
}

// ParsePublicKeys reads PEM "PUBLIC KEY" blocks (as `lanyard admin audit public-key`
// prints them) into a trusted key set, for verifying with keys kept off the box.
func ParsePublicKeys(b []byte) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want Ed25519", k)
		}
		keys[auditchain.KeyID(pub)] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("no Ed25519 PUBLIC KEY block found")
	}
	return keys, nil
}

// PublicKeys returns the trusted verification keys, newest first.
func (s *Service) PublicKeys() []PublicKey { return s.list }

// Keys returns the trusted key set by key id.
func (s *Service) Keys() map[string]ed25519.PublicKey { return s.keys }

// Verifier returns a chain verifier trusting this server's keys.
func (s *Service) Verifier() *auditchain.Verifier {
	return &auditchain.Verifier{Src: s.cfg.Store, Keys: s.keys}
}

// Verify walks one org's chain and checkpoints.
func (s *Service) Verify(ctx context.Context, orgID string) (auditchain.Report, error) {
	return s.Verifier().Verify(ctx, orgID)
}

// ErrBroken is returned by Checkpoint when the rows it would sign do not verify: a
// checkpoint must never vouch for tampered history.
var ErrBroken = errors.New("audit chain broken")

// Checkpoint signs orgID's current chain position if rows follow the last checkpoint and
// (unless force) it is due. Before signing it verifies every row since the last checkpoint.
// It returns the new checkpoint, or nil when there was nothing (due) to sign.
func (s *Service) Checkpoint(ctx context.Context, orgID string, force bool) (*auditchain.Checkpoint, error) {
	head, ok, err := s.cfg.Store.AuditChainHead(ctx, orgID)
	if err != nil || !ok {
		return nil, err
	}
	last, hasLast, err := s.cfg.Store.LatestAuditCheckpoint(ctx, orgID)
	if err != nil {
		return nil, err
	}
	from := auditchain.Head{Seq: 0, Hash: auditchain.GenesisHash}
	if hasLast {
		if !auditchain.VerifySignature(last, s.keys) {
			return nil, fmt.Errorf("%w: org %s: checkpoint %s at seq %d has an invalid signature", ErrBroken, orgID, last.ID, last.Seq)
		}
		from = auditchain.Head{Seq: last.Seq, Hash: last.Hash}
	}
	if head.Seq <= from.Seq {
		return nil, nil
	}
	if !force && hasLast && head.Seq-from.Seq < s.cfg.EveryRows && s.cfg.Now().Sub(last.At) < s.cfg.Every {
		return nil, nil
	}
	rep, err := s.Verifier().VerifyFrom(ctx, orgID, from)
	if err != nil {
		return nil, err
	}
	if !rep.OK {
		return nil, fmt.Errorf("%w: org %s: %s", ErrBroken, orgID, rep.Problem)
	}
	if rep.LastSeq <= from.Seq {
		return nil, nil
	}
	if s.priv == nil {
		return nil, errors.New("no audit signing key opens with this keyring")
	}
	c := auditchain.Sign(auditchain.Checkpoint{ID: domain.NewID(), OrgID: orgID, Seq: rep.LastSeq, Hash: rep.LastHash, At: s.cfg.Now()}, s.priv)
	if err := s.cfg.Store.InsertAuditCheckpoint(ctx, c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nil // another replica or the CLI signed this position first
		}
		return nil, err
	}
	s.log.DebugContext(ctx, "audit checkpoint signed", "org_id", orgID, "seq", c.Seq, "key_id", c.KeyID)
	return &c, nil
}

// CheckpointDue signs a checkpoint for every org that is due one. A broken chain is logged
// as an error and skipped (the other orgs still get theirs); it returns the first error.
func (s *Service) CheckpointDue(ctx context.Context, force bool) (int, error) {
	orgs, err := s.cfg.Store.AuditChainOrgs(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var first error
	for _, org := range orgs {
		c, err := s.Checkpoint(ctx, org, force)
		if err != nil {
			if errors.Is(err, ErrBroken) {
				s.log.ErrorContext(ctx, "audit chain does not verify; not signing a checkpoint", "org_id", org, "err", err)
			}
			if first == nil {
				first = err
			}
			continue
		}
		if c != nil {
			n++
		}
	}
	return n, first
}
