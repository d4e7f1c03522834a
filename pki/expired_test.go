package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
)

func TestRenewExpired(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ca, err := pki.Open(ctx, db, keyring(t), pki.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer ca.Shutdown()
		other, err := pki.Open(ctx, storetest.NewSQLite(t), keyring(t), pki.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Shutdown()
		issue := func(c *pki.CA, agentID string) (*ecdsa.PrivateKey, [][]byte, *x509.Certificate) {
			tok, _, err := c.MintToken(identity.Agent{OrgID: "org1", AgentID: agentID})
			if err != nil {
				t.Fatal(err)
			}
			key, csr, err := identity.NewKeyAndCSR("laptop")
			if err != nil {
				t.Fatal(err)
			}
			iss, err := c.Sign(ctx, tok, csr)
			if err != nil {
				t.Fatal(err)
			}
			var chain [][]byte
			for _, crt := range iss.Chain {
				chain = append(chain, crt.Raw)
			}
			return key, chain, iss.Leaf()
		}
		csrFor := func(key *ecdsa.PrivateKey) []byte {
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			if err != nil {
				t.Fatal(err)
			}
			return der
		}
		const grace = 30 * 24 * time.Hour
		key, chain, leaf := issue(ca, "agent-ok")
		otherKey, _, _ := identity.NewKeyAndCSR("x")
		foreignKey, foreignChain, foreignLeaf := issue(other, "agent-foreign")
		revKey, revChain, revLeaf := issue(ca, "agent-revoked")
		if err := ca.Revoke(ctx, pki.SerialHex(revLeaf), "offboarded"); err != nil {
			t.Fatal(err)
		}
		after := func(c *x509.Certificate, d time.Duration) time.Time { return c.NotAfter.Add(d) }

		for _, tc := range []renewCase{
			{"still valid", chain, csrFor(key), after(leaf, -time.Hour), pki.ErrNotExpired},
			{"expired beyond the grace period", chain, csrFor(key), after(leaf, grace+time.Hour), pki.ErrExpiredTooLong},
			{"CSR signed with another key", chain, csrFor(otherKey), after(leaf, time.Hour), pki.ErrNotOurs},
			{"certificate from another CA", foreignChain, csrFor(foreignKey), after(foreignLeaf, time.Hour), pki.ErrNotOurs},
			{"no certificate", nil, csrFor(key), after(leaf, time.Hour), pki.ErrNotOurs},
			{"garbage certificate", [][]byte{[]byte("not DER")}, csrFor(key), after(leaf, time.Hour), pki.ErrNotOurs},
			{"malformed CSR", chain, []byte("not a CSR"), after(leaf, time.Hour), pki.ErrBadCSR},
			{"revoked certificate", revChain, csrFor(revKey), after(revLeaf, time.Hour), pki.ErrRevoked},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := ca.RenewExpired(ctx, tc.chain, tc.csr, grace, tc.now, nil); !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		}
		// The caller's hook is asked only for a proven identity, and its answer stands.
		t.Run("allow", func(t *testing.T) {
			errNo := errors.New("agent revoked")
			var asked []identity.Agent
			allow := func(_ context.Context, id identity.Agent) error { asked = append(asked, id); return errNo }
			for _, tc := range []renewCase{
				{"another CA's certificate", foreignChain, csrFor(foreignKey), after(foreignLeaf, time.Hour), pki.ErrNotOurs},
				{"CSR signed with another key", chain, csrFor(otherKey), after(leaf, time.Hour), pki.ErrNotOurs},
				{"still valid", chain, csrFor(key), after(leaf, -time.Hour), pki.ErrNotExpired},
				{"proven: the hook refuses", chain, csrFor(key), after(leaf, time.Hour), errNo},
			} {
				asked = nil
				if _, err := ca.RenewExpired(ctx, tc.chain, tc.csr, grace, tc.now, allow); !errors.Is(err, tc.want) {
					t.Fatalf("%s: got %v, want %v", tc.name, err, tc.want)
				}
				if proven := tc.want == errNo; proven != (len(asked) == 1) {
					t.Fatalf("%s: hook asked %d times", tc.name, len(asked))
				}
			}
			if asked[0] != (identity.Agent{OrgID: "org1", AgentID: "agent-ok"}) {
				t.Fatalf("hook asked about %+v", asked[0])
			}
		})
		t.Run("expired within the grace period", func(t *testing.T) {
			iss, err := ca.RenewExpired(ctx, chain, csrFor(key), grace, after(leaf, 10*24*time.Hour), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := iss.Leaf()
			if iss.Identity != (identity.Agent{OrgID: "org1", AgentID: "agent-ok"}) {
				t.Fatalf("identity changed: %+v", iss.Identity)
			}
			if !samePub(got, leaf) || !got.NotAfter.After(time.Now()) || pki.SerialHex(got) == pki.SerialHex(leaf) {
				t.Fatalf("new certificate: same key %v, not after %s, serial %s (old %s)", samePub(got, leaf), got.NotAfter, pki.SerialHex(got), pki.SerialHex(leaf))
			}
		})
	})
}

func samePub(a, b *x509.Certificate) bool {
	return a.PublicKey.(*ecdsa.PublicKey).Equal(b.PublicKey)
}

type renewCase struct {
	name  string
	chain [][]byte
	csr   []byte
	now   time.Time
	want  error
}
