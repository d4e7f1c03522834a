package pki_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
)

func keyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestCALifecycle(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		kr := keyring(t)
		ca, err := pki.Open(ctx, db, kr, pki.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer ca.Shutdown()

		// A second start loads the same CA; a wrong keyring cannot open its keys.
		ca2, err := pki.Open(ctx, db, kr, pki.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if !ca2.Root().Equal(ca.Root()) {
			t.Fatal("second start created a new root")
		}
		if _, err := pki.Open(ctx, db, keyring(t), pki.Config{}); err == nil {
			t.Fatal("opened CA keys with the wrong keyring")
		}

		id := identity.Agent{OrgID: "org1", AgentID: "agent1"}
		tok, _, err := ca.MintToken(id)
		if err != nil {
			t.Fatal(err)
		}
		key, csr, err := identity.NewKeyAndCSR("laptop")
		if err != nil {
			t.Fatal(err)
		}
		iss, err := ca.Sign(ctx, tok, csr)
		if err != nil {
			t.Fatal(err)
		}
		leaf := iss.Leaf()
		if iss.Identity != id {
			t.Fatalf("identity %+v", iss.Identity)
		}
		if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 24*time.Hour || life > 24*time.Hour+2*time.Minute {
			t.Fatalf("lifetime %s", life)
		}
		if !key.PublicKey.Equal(leaf.PublicKey) {
			t.Fatal("certificate is not for the CSR's key")
		}
		inter := x509.NewCertPool()
		inter.AddCert(ca.Intermediate())
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.RootPool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("verify: %v", err)
		}
		rec, err := db.GetAgentCert(ctx, pki.SerialHex(leaf))
		if err != nil || rec.AgentID != "agent1" || rec.OrgID != "org1" {
			t.Fatalf("stored cert %+v %v", rec, err)
		}
		ra := pki.RenewAfter(leaf)
		if d := ra.Sub(leaf.NotBefore); d < 16*time.Hour || d > 16*time.Hour+2*time.Minute {
			t.Fatalf("renew after %s", d)
		}

		// The token is single use, even on another replica.
		_, csr2, _ := identity.NewKeyAndCSR("")
		if _, err := ca2.Sign(ctx, tok, csr2); !errors.Is(err, pki.ErrTokenRejected) {
			t.Fatalf("token reuse: %v", err)
		}

		// Bad CSRs are refused before the token is consumed.
		tok2, _, _ := ca.MintToken(id)
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		rsaCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, rsaKey)
		broken := append([]byte{}, csr2...)
		broken[len(broken)-5] ^= 0xff
		for name, der := range map[string][]byte{"garbage": []byte("not a csr"), "rsa key": rsaCSR, "bad signature": broken, "empty": nil} {
			if _, err := ca.Sign(ctx, tok2, der); !errors.Is(err, pki.ErrBadCSR) {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if _, err := ca.Sign(ctx, tok2, csr2); err != nil {
			t.Fatalf("token consumed by a rejected CSR: %v", err)
		}

		// A token from another CA's provisioner is rejected.
		other, err := pki.Open(ctx, storetest.NewSQLite(t), kr, pki.Config{})
		if err != nil {
			t.Fatal(err)
		}
		forged, _, _ := other.MintToken(id)
		if _, err := ca.Sign(ctx, forged, csr2); !errors.Is(err, pki.ErrTokenRejected) {
			t.Fatalf("forged token: %v", err)
		}

		// Renew and rekey keep the identity; a revoked certificate cannot renew.
		ren, err := ca.Renew(ctx, leaf, nil)
		if err != nil || ren.Identity != id || pki.SerialHex(ren.Leaf()) == pki.SerialHex(leaf) {
			t.Fatalf("renew %+v %v", ren.Identity, err)
		}
		_, csr3, _ := identity.NewKeyAndCSR("")
		rk, err := ca.Renew(ctx, ren.Leaf(), csr3)
		if err != nil || rk.Identity != id {
			t.Fatalf("rekey %v", err)
		}
		if err := ca.Revoke(ctx, pki.SerialHex(leaf), "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Renew(ctx, leaf, nil); !errors.Is(err, pki.ErrRevoked) {
			t.Fatalf("renew revoked: %v", err)
		}

		// Server certificate and payload signatures chain to the root.
		sc, err := ca.IssueServerCert([]string{"localhost"}, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Leaf.Verify(x509.VerifyOptions{Roots: ca.RootPool(), Intermediates: inter, DNSName: "localhost"}); err != nil {
			t.Fatalf("server cert: %v", err)
		}
		sig, chain, err := ca.SignPayload([]byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.VerifyPayload([]byte("hello"), sig, chain, ca.RootPool()); err != nil {
			t.Fatalf("verify payload: %v", err)
		}
		if err := pki.VerifyPayload([]byte("hellO"), sig, chain, ca.RootPool()); err == nil {
			t.Fatal("tampered payload verified")
		}
	})
}
