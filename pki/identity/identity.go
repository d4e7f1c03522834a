// Package identity defines how a Lanyard agent's identity is written into and read from its
// X.509 client certificate. It has no dependencies beyond the standard library so the agent
// (which must not link the CA) and the control plane share one definition.
//
// An agent certificate carries exactly one URI SAN of the form
//
//	spiffe://lanyard/org/<org-id>/agent/<agent-id>
//
// (grpc-go fills credentials.TLSInfo.SPIFFEID from it) and one DNS SAN
// <agent-id>.agents.lanyard.internal.
package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// TrustDomain is the SPIFFE trust domain of agent certificates.
const TrustDomain = "lanyard"

// DNSSuffix is appended to the agent id to form the certificate's DNS SAN.
const DNSSuffix = ".agents.lanyard.internal"

// Agent is the identity bound to a client certificate.
type Agent struct {
	OrgID   string
	AgentID string
}

// ErrNoIdentity is returned when a certificate carries no valid agent identity.
var ErrNoIdentity = errors.New("identity: certificate carries no agent identity")

// URI returns the SPIFFE URI SAN for the identity.
func (a Agent) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: "/org/" + a.OrgID + "/agent/" + a.AgentID}
}

// DNSName returns the DNS SAN for the identity.
func (a Agent) DNSName() string { return a.AgentID + DNSSuffix }

// Validate checks that both ids are non-empty and contain only URL-safe id characters.
func (a Agent) Validate() error {
	if !validID(a.OrgID) || !validID(a.AgentID) {
		return fmt.Errorf("identity: invalid org %q or agent %q", a.OrgID, a.AgentID)
	}
	return nil
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// ParseURI parses a SPIFFE URI written by Agent.URI.
func ParseURI(u *url.URL) (Agent, error) {
	if u == nil || u.Scheme != "spiffe" || u.Host != TrustDomain {
		return Agent{}, ErrNoIdentity
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "org" || parts[2] != "agent" {
		return Agent{}, ErrNoIdentity
	}
	a := Agent{OrgID: parts[1], AgentID: parts[3]}
	if a.Validate() != nil {
		return Agent{}, ErrNoIdentity
	}
	return a, nil
}

// FromCertificate extracts the agent identity from a certificate. It requires exactly one
// spiffe:// URI SAN in Lanyard's trust domain and the matching DNS SAN.
func FromCertificate(c *x509.Certificate) (Agent, error) {
	if c == nil {
		return Agent{}, ErrNoIdentity
	}
	var found []Agent
	for _, u := range c.URIs {
		if u.Scheme != "spiffe" {
			continue
		}
		a, err := ParseURI(u)
		if err != nil {
			return Agent{}, err
		}
		found = append(found, a)
	}
	if len(found) != 1 {
		return Agent{}, ErrNoIdentity
	}
	return found[0], nil
}

// NewKeyAndCSR generates an ECDSA P-256 key and a DER CSR for it. The CSR's subject is
// informational: the server sets subject and SANs itself.
func NewKeyAndCSR(commonName string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: create CSR: %w", err)
	}
	return key, csr, nil
}
