package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/pki/identity"
)

var (
	// ErrNotExpired: the certificate is still valid; renew it over mTLS instead.
	ErrNotExpired = errors.New("pki: certificate has not expired; renew over mTLS")
	// ErrExpiredTooLong: the certificate expired before the grace period; only a new
	// enrollment (a fresh installer or secret) gives the device a certificate again.
	ErrExpiredTooLong = errors.New("pki: certificate expired too long ago")
	// ErrNotOurs: the chain does not lead to this CA, or the CSR's key is not the
	// certificate's key.
	ErrNotOurs = errors.New("pki: certificate or key not accepted")
)

// RenewExpired issues a new certificate for a device whose certificate expired while it
// was off (a laptop closed for a holiday outlives a 24 h certificate). The caller cannot
// use mTLS, so it proves what mTLS would have: chainDER leads to this CA and was valid
// until it expired, less than grace ago; the CSR is signed with the certificate's own key
// (the key never leaves the device); and the certificate is not revoked. The new
// certificate keeps the identity and the key.
//
// allow, when not nil, is the caller's say on the identity (is the agent itself revoked?),
// asked only once all of that is proven: an unauthenticated caller learns nothing about
// an identity it merely names. Its error is returned as it is.
func (ca *CA) RenewExpired(ctx context.Context, chainDER [][]byte, csrDER []byte, grace time.Duration, now time.Time,
	allow func(context.Context, identity.Agent) error) (Issued, error) {
	if len(chainDER) == 0 {
		return Issued{}, fmt.Errorf("%w: no certificate", ErrNotOurs)
	}
	certs := make([]*x509.Certificate, len(chainDER))
	for i, der := range chainDER {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return Issued{}, fmt.Errorf("%w: %v", ErrNotOurs, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// Verified as of its last valid second: the chain must have been good then.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.pool, Intermediates: inter, CurrentTime: leaf.NotAfter.Add(-time.Second),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return Issued{}, fmt.Errorf("%w: %v", ErrNotOurs, err)
	}
	switch {
	case !now.After(leaf.NotAfter):
		return Issued{}, ErrNotExpired
	case now.Sub(leaf.NotAfter) > grace:
		return Issued{}, fmt.Errorf("%w: expired %s, more than %s ago", ErrExpiredTooLong, leaf.NotAfter.UTC().Format(time.RFC3339), grace)
	}
	csr, err := ParseCSR(csrDER)
	if err != nil {
		return Issued{}, err
	}
	if !samePublicKey(csr.PublicKey, leaf.PublicKey) {
		return Issued{}, fmt.Errorf("%w: the request is not signed with the certificate's key", ErrNotOurs)
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return Issued{}, fmt.Errorf("%w: %v", ErrNotOurs, err)
	}
	if allow != nil {
		if err := allow(ctx, id); err != nil {
			return Issued{}, err
		}
	}
	if revoked, err := ca.st.IsAgentCertRevoked(ctx, SerialHex(leaf)); err != nil {
		return Issued{}, err
	} else if revoked {
		return Issued{}, ErrRevoked
	}
	tok, _, err := ca.MintToken(id)
	if err != nil {
		return Issued{}, err
	}
	return ca.Sign(ctx, tok, csrDER)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}
