package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"

	"go.step.sm/crypto/jose"

	"github.com/lanyardhq/lanyard/pki/identity"
)

// FuzzParseCSR: ParseCSR accepts only a well-signed ECDSA P-256 request, and
// what it returns carries no subject or SAN of the requester's choosing (the
// token decides those).
func FuzzParseCSR(f *testing.F) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	u, _ := url.Parse("spiffe://lanyard/org/evil/agent/evil")
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "laptop"}, DNSNames: []string{"admin.example.com"},
		URIs: []*url.URL{u}, EmailAddresses: []string{"root@example.com"}}
	for _, k := range []any{p256, p384, ed} {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
		bad := append([]byte{}, der...)
		bad[len(bad)-1] ^= 1 // signature bit flip
		f.Add(bad)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := ParseCSR(der)
		if err != nil {
			if csr != nil || !errors.Is(err, ErrBadCSR) {
				t.Fatalf("ParseCSR error %v (csr %v) is not a bare ErrBadCSR", err, csr != nil)
			}
			return
		}
		pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Fatalf("accepted a %T key", csr.PublicKey)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature fails: %v", err)
		}
		if csr.Subject.String() != "" || len(csr.DNSNames)+len(csr.URIs)+len(csr.EmailAddresses)+len(csr.IPAddresses) != 0 {
			t.Fatalf("requester-chosen names survived: %v %v %v %v %v", csr.Subject, csr.DNSNames, csr.URIs, csr.EmailAddresses, csr.IPAddresses)
		}
	})
}

// FuzzPeekToken: the identity read from an (unverified) token is always a
// valid agent identity named by the token's subject, or ErrTokenRejected.
func FuzzPeekToken(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		f.Fatal(err)
	}
	a := identity.Agent{OrgID: "org_1", AgentID: "agt_1"}
	for _, sans := range [][]string{{a.URI().String(), a.DNSName()}, {"spiffe://lanyard/org/x/agent/other"}, {"%zz", "spiffe://lanyard/org/../agent/agt_1"}} {
		tok, err := jose.Signed(signer).Claims(struct {
			jose.Claims
			SANs []string `json:"sans"`
		}{jose.Claims{Subject: "agt_1"}, sans}).CompactSerialize()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := PeekToken(tok)
		if err != nil {
			if got != (identity.Agent{}) || !errors.Is(err, ErrTokenRejected) {
				t.Fatalf("PeekToken error %v (agent %+v) is not a bare ErrTokenRejected", err, got)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("PeekToken returned an invalid identity %+v: %v", got, err)
		}
		if !strings.Contains(got.URI().String(), "/agent/"+got.AgentID) {
			t.Fatalf("identity %+v does not round-trip through its URI %s", got, got.URI())
		}
		back, err := identity.ParseURI(got.URI())
		if err != nil || back != got {
			t.Fatalf("URI of %+v parses back as %+v, %v", got, back, err)
		}
	})
}
