package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-100 * time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return testCA{cert, key, pool}
}

// leaf issues an agent certificate for a that expired long ago (results may be delivered
// after the certificate that signed them expired).
func (ca testCA) leaf(t *testing.T, a Agent) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: a.AgentID}, URIs: []*url.URL{a.URI()},
		DNSNames: []string{a.DNSName()}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func TestVerifyResult(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	a := Agent{OrgID: "o1", AgentID: "a1"}
	key, der := ca.leaf(t, a)
	_, otherDER := other.leaf(t, a)
	_, wrongAgentDER := ca.leaf(t, Agent{OrgID: "o1", AgentID: "a2"})
	ev := []byte("evidence bytes")
	sig, err := SignResult(key, "cmd1", "COMMAND_STATE_DONE", ev)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		cmd       string
		state     string
		evidence  []byte
		sig, cert []byte
		want      error
	}{
		{"valid", "cmd1", "COMMAND_STATE_DONE", ev, sig, der, nil},
		{"unsigned", "cmd1", "COMMAND_STATE_DONE", ev, nil, der, ErrResultUnsigned},
		{"no certificate", "cmd1", "COMMAND_STATE_DONE", ev, sig, nil, ErrResultUnsigned},
		{"other command", "cmd2", "COMMAND_STATE_DONE", ev, sig, der, ErrResultSignature},
		{"other state", "cmd1", "COMMAND_STATE_FAILED", ev, sig, der, ErrResultSignature},
		{"edited evidence", "cmd1", "COMMAND_STATE_DONE", []byte("evidence bytez"), sig, der, ErrResultSignature},
		{"another CA", "cmd1", "COMMAND_STATE_DONE", ev, sig, otherDER, ErrResultSigner},
		{"another agent's certificate", "cmd1", "COMMAND_STATE_DONE", ev, sig, wrongAgentDER, ErrResultSigner},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyResult(a, tc.cmd, tc.state, tc.evidence, tc.sig, tc.cert, ca.pool, nil)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
