// Package pki is Lanyard's embedded certificate authority for agents, built on smallstep's
// authority.NewEmbedded. One root and one intermediate (ECDSA P-256) are created at the
// first start and kept in the database with their keys sealed by controlplane/secrets. A
// JWK provisioner ("agents") signs device certificates; the server mints its one-time
// tokens itself after checking an enrollment secret. Device certificates last 24 h by
// default and are renewed over mTLS at 2/3 of their life. Revocation is passive in step-ca
// (it only blocks renewal); the agent API enforces it on every handshake and message.
//
// Only the control plane imports this package; the agent uses pki/identity.
package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"go.step.sm/crypto/jose"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki/identity"
)

// Store is the persistence the CA needs; *store.DB implements it.
type Store interface {
	LoadPKIAuthority(ctx context.Context) (store.PKIAuthority, error)
	InsertPKIAuthority(ctx context.Context, a store.PKIAuthority) error
	UsePKIToken(ctx context.Context, jti string, at time.Time) (bool, error)
	InsertAgentCert(ctx context.Context, c store.AgentCert) error
	GetAgentCert(ctx context.Context, serial string) (store.AgentCert, error)
	IsAgentCertRevoked(ctx context.Context, serial string) (bool, error)
	RevokeAgentCert(ctx context.Context, serial, reason string, at time.Time) error
}

// Sealer encrypts key material at rest; *secrets.Keyring implements it.
type Sealer interface {
	Seal(plaintext []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
}

// Config tunes the CA. Zero values take the defaults.
type Config struct {
	// CertLifetime of device certificates (default 24 h, at least 5 min).
	CertLifetime time.Duration
	// TokenLifetime of one-time enrollment tokens (default 5 min).
	TokenLifetime time.Duration
	Logger        *slog.Logger
}

func (c *Config) init() {
	if c.CertLifetime <= 0 {
		c.CertLifetime = 24 * time.Hour
	}
	if c.CertLifetime < 5*time.Minute {
		c.CertLifetime = 5 * time.Minute
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Errors callers map to protocol codes.
var (
	// ErrTokenRejected: the one-time token is malformed, expired, forged or already used.
	ErrTokenRejected = errors.New("pki: enrollment token rejected")
	// ErrBadCSR: the CSR does not parse, its signature is wrong or its key is not P-256.
	ErrBadCSR = errors.New("pki: malformed certificate request")
	// ErrRevoked: the certificate is revoked (renewal refused).
	ErrRevoked = errors.New("pki: certificate revoked")
)

// ProvisionerName is the JWK provisioner that signs agent certificates.
const ProvisionerName = "agents"

const tokenAudience = "step-certificate-authority"

// CA is the embedded authority.
type CA struct {
	cfg      Config
	st       Store
	auth     *authority.Authority
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey crypto.Signer
	jwk      *jose.JSONWebKey
	signer   jose.Signer
	pool     *x509.CertPool
	inters   *x509.CertPool
}

// Issued is a freshly signed agent certificate.
type Issued struct {
	Chain    []*x509.Certificate // leaf first, then the intermediate
	Identity identity.Agent
}

// Leaf returns the agent certificate.
func (i Issued) Leaf() *x509.Certificate { return i.Chain[0] }

// RenewAfter is when the agent should renew: at 2/3 of the lifetime.
func RenewAfter(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life * 2 / 3)
}

// SerialHex formats a certificate serial the way Lanyard stores it.
func SerialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// Open loads the CA from st, creating root, intermediate and provisioner key on the first
// start. Concurrent first starts on several replicas converge on one CA.
func Open(ctx context.Context, st Store, sealer Sealer, cfg Config) (*CA, error) {
	cfg.init()
	mat, err := st.LoadPKIAuthority(ctx)
	if errors.Is(err, store.ErrNotFound) {
		created, cerr := createMaterial(sealer)
		if cerr != nil {
			return nil, cerr
		}
		if ierr := st.InsertPKIAuthority(ctx, created); ierr != nil && !errors.Is(ierr, store.ErrConflict) {
			return nil, ierr
		}
		mat, err = st.LoadPKIAuthority(ctx)
		if err == nil {
			cfg.Logger.Info("certificate authority ready", "component", "pki", "created_at", mat.CreatedAt)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pki: load authority: %w", err)
	}
	ca := &CA{cfg: cfg, st: st}
	if err := ca.load(mat, sealer); err != nil {
		return nil, err
	}
	if err := ca.start(); err != nil {
		return nil, err
	}
	return ca, nil
}

func createMaterial(sealer Sealer) (store.PKIAuthority, error) {
	now := time.Now().UTC()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return store.PKIAuthority{}, fmt.Errorf("pki: root key: %w", err)
	}
	root := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: "Lanyard Agent Root CA", Organization: []string{"Lanyard"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return store.PKIAuthority{}, fmt.Errorf("pki: root cert: %w", err)
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return store.PKIAuthority{}, fmt.Errorf("pki: intermediate key: %w", err)
	}
	inter := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: "Lanyard Agent Intermediate CA", Organization: []string{"Lanyard"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: 0, MaxPathLenZero: true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, inter, rootCert, &interKey.PublicKey, rootKey)
	if err != nil {
		return store.PKIAuthority{}, fmt.Errorf("pki: intermediate cert: %w", err)
	}
	jwk, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		return store.PKIAuthority{}, fmt.Errorf("pki: provisioner key: %w", err)
	}
	m := store.PKIAuthority{RootDER: rootDER, IntermediateDER: interDER, CreatedAt: now}
	if m.RootKeySealed, err = sealKey(sealer, rootKey, "pki:root"); err != nil {
		return m, err
	}
	if m.IntermediateKeySealed, err = sealKey(sealer, interKey, "pki:intermediate"); err != nil {
		return m, err
	}
	jwkJSON, err := json.Marshal(jwk)
	if err != nil {
		return m, fmt.Errorf("pki: encode provisioner key: %w", err)
	}
	if m.JWKSealed, err = sealer.Seal(jwkJSON, "pki:jwk"); err != nil {
		return m, fmt.Errorf("pki: seal provisioner key: %w", err)
	}
	return m, nil
}

func sealKey(sealer Sealer, k *ecdsa.PrivateKey, aad string) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("pki: encode %s key: %w", aad, err)
	}
	s, err := sealer.Seal(der, aad)
	if err != nil {
		return "", fmt.Errorf("pki: seal %s key: %w", aad, err)
	}
	return s, nil
}

func openKey(sealer Sealer, sealed, aad string) (crypto.Signer, error) {
	der, err := sealer.Open(sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("pki: open %s key: %w", aad, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse %s key: %w", aad, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s key is not a signer", aad)
	}
	return s, nil
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func (ca *CA) load(m store.PKIAuthority, sealer Sealer) error {
	var err error
	if ca.root, err = x509.ParseCertificate(m.RootDER); err != nil {
		return fmt.Errorf("pki: parse root: %w", err)
	}
	if ca.inter, err = x509.ParseCertificate(m.IntermediateDER); err != nil {
		return fmt.Errorf("pki: parse intermediate: %w", err)
	}
	if ca.interKey, err = openKey(sealer, m.IntermediateKeySealed, "pki:intermediate"); err != nil {
		return err
	}
	// The root key is only needed to re-issue an intermediate; check that it still opens.
	if _, err := openKey(sealer, m.RootKeySealed, "pki:root"); err != nil {
		return err
	}
	raw, err := sealer.Open(m.JWKSealed, "pki:jwk")
	if err != nil {
		return fmt.Errorf("pki: open provisioner key: %w", err)
	}
	ca.jwk = new(jose.JSONWebKey)
	if err := json.Unmarshal(raw, ca.jwk); err != nil {
		return fmt.Errorf("pki: parse provisioner key: %w", err)
	}
	ca.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ca.jwk.Key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", ca.jwk.KeyID))
	if err != nil {
		return fmt.Errorf("pki: token signer: %w", err)
	}
	ca.pool = x509.NewCertPool()
	ca.pool.AddCert(ca.root)
	ca.inters = x509.NewCertPool()
	ca.inters.AddCert(ca.inter)
	return nil
}

func (ca *CA) start() error {
	pub := ca.jwk.Public()
	life := &provisioner.Duration{Duration: ca.cfg.CertLifetime}
	jwkProv := &provisioner.JWK{
		Type: "JWK", Name: ProvisionerName, Key: &pub,
		Claims: &provisioner.Claims{
			MinTLSDur: &provisioner.Duration{Duration: 5 * time.Minute}, MaxTLSDur: life, DefaultTLSDur: life,
		},
	}
	cfg := &config.Config{
		AuthorityConfig: &config.AuthConfig{
			Provisioners: provisioner.List{jwkProv},
			// Tokens are minted by any replica and may be used on another one that started
			// later; replay is stopped by the used-token table instead.
			DisableIssuedAtCheck: true,
		},
	}
	auth, err := authority.NewEmbedded(
		authority.WithConfig(cfg),
		authority.WithX509RootCerts(ca.root),
		authority.WithX509Signer(ca.inter, ca.interKey),
		authority.WithDatabase(&authDB{ca: ca}),
		authority.WithQuietInit(),
	)
	if err != nil {
		return fmt.Errorf("pki: start authority: %w", err)
	}
	ca.auth = auth
	return nil
}

// Shutdown stops the embedded authority.
func (ca *CA) Shutdown() error { return ca.auth.Shutdown() }

// Root returns the root certificate agents trust.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Intermediate returns the issuing certificate.
func (ca *CA) Intermediate() *x509.Certificate { return ca.inter }

// RootPool returns a pool holding the root, for verifying client certificates.
func (ca *CA) RootPool() *x509.CertPool { return ca.pool }

// IntermediatePool returns a pool holding the issuing intermediate, for verifying a
// bare agent leaf (a result's signer certificate) up to the root.
func (ca *CA) IntermediatePool() *x509.CertPool { return ca.inters }

// RootFingerprint is the hex SHA-256 of the root certificate, which an agent can pin for
// its first (enrollment) connection.
func (ca *CA) RootFingerprint() string {
	sum := sha256.Sum256(ca.root.Raw)
	return hex.EncodeToString(sum[:])
}

// MintToken creates a one-time enrollment token for an agent identity.
func (ca *CA) MintToken(a identity.Agent) (string, time.Time, error) {
	if err := a.Validate(); err != nil {
		return "", time.Time{}, err
	}
	now := time.Now()
	exp := now.Add(ca.cfg.TokenLifetime)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, err
	}
	claims := struct {
		jose.Claims
		SANs []string `json:"sans"`
	}{
		Claims: jose.Claims{
			ID: hex.EncodeToString(jti), Issuer: ProvisionerName, Subject: a.AgentID,
			Audience: jose.Audience{tokenAudience}, IssuedAt: jose.NewNumericDate(now),
			NotBefore: jose.NewNumericDate(now.Add(-time.Second)), Expiry: jose.NewNumericDate(exp),
		},
		SANs: []string{a.URI().String(), a.DNSName()},
	}
	tok, err := jose.Signed(ca.signer).Claims(claims).CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("pki: sign token: %w", err)
	}
	return tok, exp, nil
}

// ParseCSR parses and checks a DER CSR: valid signature and an ECDSA P-256 key. Its subject
// and SANs are dropped: the token decides them.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: key must be ECDSA P-256", ErrBadCSR)
	}
	csr.Subject = pkix.Name{}
	csr.DNSNames, csr.URIs, csr.EmailAddresses, csr.IPAddresses = nil, nil, nil, nil
	return csr, nil
}

// Sign exchanges a one-time token and a CSR for a certificate chain. The token is consumed
// even when signing fails afterwards.
func (ca *CA) Sign(ctx context.Context, token string, csrDER []byte) (Issued, error) {
	csr, err := ParseCSR(csrDER)
	if err != nil {
		return Issued{}, err
	}
	opts, err := ca.auth.Authorize(provisioner.NewContextWithMethod(ctx, provisioner.SignMethod), token)
	if err != nil {
		return Issued{}, fmt.Errorf("%w: %v", ErrTokenRejected, err)
	}
	chain, err := ca.auth.SignWithContext(ctx, csr, provisioner.SignOptions{}, opts...)
	if err != nil {
		if statusOf(err) == http.StatusUnauthorized || statusOf(err) == http.StatusForbidden {
			return Issued{}, fmt.Errorf("%w: %v", ErrTokenRejected, err)
		}
		return Issued{}, fmt.Errorf("pki: sign: %w", err)
	}
	return issued(chain)
}

func statusOf(err error) int {
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		return sc.StatusCode()
	}
	return 0
}

func issued(chain []*x509.Certificate) (Issued, error) {
	if len(chain) == 0 {
		return Issued{}, errors.New("pki: empty chain")
	}
	id, err := identity.FromCertificate(chain[0])
	if err != nil {
		return Issued{}, err
	}
	return Issued{Chain: chain, Identity: id}, nil
}

// Renew issues a new certificate for the holder of leaf (taken from a verified mTLS chain).
// With a CSR the key is rotated. A revoked certificate is refused with ErrRevoked.
func (ca *CA) Renew(ctx context.Context, leaf *x509.Certificate, csrDER []byte) (Issued, error) {
	if revoked, err := ca.st.IsAgentCertRevoked(ctx, SerialHex(leaf)); err != nil {
		return Issued{}, err
	} else if revoked {
		return Issued{}, ErrRevoked
	}
	var chain []*x509.Certificate
	var err error
	if len(csrDER) > 0 {
		csr, perr := ParseCSR(csrDER)
		if perr != nil {
			return Issued{}, perr
		}
		chain, err = ca.auth.RenewContext(provisioner.NewContextWithMethod(ctx, provisioner.RenewMethod), leaf, csr.PublicKey)
	} else {
		chain, err = ca.auth.RenewContext(provisioner.NewContextWithMethod(ctx, provisioner.RenewMethod), leaf, nil)
	}
	if err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			return Issued{}, fmt.Errorf("%w: %v", ErrRevoked, err)
		}
		return Issued{}, fmt.Errorf("pki: renew: %w", err)
	}
	return issued(chain)
}

// Revoke revokes one certificate serial (hex).
func (ca *CA) Revoke(ctx context.Context, serial, reason string) error {
	return ca.st.RevokeAgentCert(ctx, serial, reason, time.Now())
}

// IssueServerCert issues the TLS server certificate of the agent API listeners.
func (ca *CA) IssueServerCert(dnsNames []string, ips []net.IP, lifetime time.Duration) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cn := "lanyard agent api"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(lifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: dnsNames, IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, &key.PublicKey, ca.interKey)
	if err != nil {
		return nil, fmt.Errorf("pki: server cert: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	// The root is included so an enrolling agent can pin its fingerprint.
	return &tls.Certificate{Certificate: [][]byte{der, ca.inter.Raw, ca.root.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// SignPayload signs data with the intermediate key (ECDSA P-256, SHA-256, ASN.1), for the
// second confirmation of destructive commands; verify with VerifyPayload.
func (ca *CA) SignPayload(data []byte) ([]byte, [][]byte, error) {
	sum := sha256.Sum256(data)
	sig, err := ca.interKey.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign payload: %w", err)
	}
	return sig, [][]byte{ca.inter.Raw}, nil
}

// VerifyPayload checks a SignPayload signature against roots (see identity.VerifySignature).
func VerifyPayload(data, sig []byte, chain [][]byte, roots *x509.CertPool) error {
	return identity.VerifySignature(data, sig, chain, roots)
}

// PeekToken reads the identity a one-time token was minted for, without verifying it
// (Sign verifies). It lets the enrollment endpoint refuse a revoked agent before signing.
func PeekToken(token string) (identity.Agent, error) {
	jwt, err := jose.ParseSigned(token)
	if err != nil {
		return identity.Agent{}, fmt.Errorf("%w: %v", ErrTokenRejected, err)
	}
	var claims struct {
		jose.Claims
		SANs []string `json:"sans"`
	}
	if err := jwt.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return identity.Agent{}, fmt.Errorf("%w: %v", ErrTokenRejected, err)
	}
	for _, s := range claims.SANs {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		if a, err := identity.ParseURI(u); err == nil && a.AgentID == claims.Subject {
			return a, nil
		}
	}
	return identity.Agent{}, fmt.Errorf("%w: no agent identity", ErrTokenRejected)
}
