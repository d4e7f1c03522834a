package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/securefs"
)

// State directory layout (0700; every file 0600 / SYSTEM-only):
//
//	identity.pem   device private key (PKCS#8) followed by the certificate chain, leaf first;
//	               one file so a renewal replaces key and certificate atomically
//	roots.pem      the control plane's root CA certificate(s)
//	identity.json  agent id, org id, certificate lifetime, endpoints
//	status.json    what `lanyard-agent status` prints, rewritten by the running agent
//	results/       command results: pending/ (not yet confirmed delivered), delivered/
const (
	identityPEM  = "identity.pem"
	rootsPEM     = "roots.pem"
	identityJSON = "identity.json"
	statusJSON   = "status.json"
)

// ErrNotEnrolled is returned when the state directory holds no identity.
var ErrNotEnrolled = errors.New("client: agent is not enrolled")

// Identity is identity.json.
type Identity struct {
	AgentID          string    `json:"agent_id"`
	OrgID            string    `json:"org_id"`
	CertSerial       string    `json:"cert_serial"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	RenewAfter       time.Time `json:"renew_after"`
	GRPCAddress      string    `json:"grpc_address"`
	GRPCAddresses    []string  `json:"grpc_addresses,omitempty"`
	EnrolledAt       time.Time `json:"enrolled_at"`
	RootFingerprints []string  `json:"root_fingerprints_sha256"`
}

// Credentials are the device's key, chain and trusted roots.
type Credentials struct {
	Key   crypto.Signer
	Chain [][]byte // DER, leaf first
	Roots [][]byte // DER
}

// TLSCertificate returns the chain and key as a tls.Certificate.
func (c *Credentials) TLSCertificate() (*tls.Certificate, error) {
	if len(c.Chain) == 0 {
		return nil, errors.New("client: empty certificate chain")
	}
	leaf, err := x509.ParseCertificate(c.Chain[0])
	if err != nil {
		return nil, fmt.Errorf("client: parse leaf: %w", err)
	}
	return &tls.Certificate{Certificate: c.Chain, PrivateKey: c.Key, Leaf: leaf}, nil
}

// RootPool returns the trusted roots as a pool.
func (c *Credentials) RootPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, der := range c.Roots {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("client: parse root: %w", err)
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

// Store reads and writes the state directory.
type Store struct{ Dir string }

func (s Store) path(name string) string { return filepath.Join(s.Dir, name) }

// Init creates the state directory with owner-only permissions.
func (s Store) Init() error { return securefs.MkdirAll(s.Dir) }

// SaveCredentials writes identity.pem and roots.pem.
func (s Store) SaveCredentials(c *Credentials) error {
	if err := s.Init(); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return fmt.Errorf("client: marshal key: %w", err)
	}
	buf := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, der := range c.Chain {
		buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := securefs.WriteFile(s.path(identityPEM), buf); err != nil {
		return err
	}
	var roots []byte
	for _, der := range c.Roots {
		roots = append(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return securefs.WriteFile(s.path(rootsPEM), roots)
}

// LoadCredentials reads identity.pem and roots.pem.
func (s Store) LoadCredentials() (*Credentials, error) {
	b, err := os.ReadFile(s.path(identityPEM))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Credentials{}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("client: parse key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, errors.New("client: device key is not ECDSA")
			}
			c.Key = ek
		case "CERTIFICATE":
			c.Chain = append(c.Chain, blk.Bytes)
		}
	}
	if c.Key == nil || len(c.Chain) == 0 {
		return nil, fmt.Errorf("client: %s is incomplete", s.path(identityPEM))
	}
	r, err := os.ReadFile(s.path(rootsPEM))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for {
		var blk *pem.Block
		blk, r = pem.Decode(r)
		if blk == nil {
			break
		}
		c.Roots = append(c.Roots, blk.Bytes)
	}
	if len(c.Roots) == 0 {
		return nil, fmt.Errorf("client: %s holds no root", s.path(rootsPEM))
	}
	return c, nil
}

// SaveIdentity writes identity.json.
func (s Store) SaveIdentity(id Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return securefs.WriteFile(s.path(identityJSON), append(b, '\n'))
}

// LoadIdentity reads identity.json.
func (s Store) LoadIdentity() (Identity, error) {
	var id Identity
	b, err := os.ReadFile(s.path(identityJSON))
	if errors.Is(err, os.ErrNotExist) {
		return id, ErrNotEnrolled
	}
	if err != nil {
		return id, fmt.Errorf("client: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("client: parse %s: %w", identityJSON, err)
	}
	return id, nil
}

// Fingerprint is the hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
