package pki_test

import (
	"context"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/pki"
)

// TestSessionTicketKeys: two replicas of one CA derive the same keys, a new period's keys
// still decrypt the last week's tickets, and another CA's keys are unrelated.
func TestSessionTicketKeys(t *testing.T) {
	ctx := context.Background()
	db, kr := storetest.NewSQLite(t), keyring(t)
	a, err := pki.Open(ctx, db, kr, pki.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.Open(ctx, db, kr, pki.Config{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Open(ctx, storetest.NewSQLite(t), kr, pki.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	keys := func(ca *pki.CA, at time.Time) [][32]byte {
		t.Helper()
		k, err := ca.SessionTicketKeys(at)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ka, kb := keys(a, now), keys(b, now)
	if len(ka) != 8 {
		t.Fatalf("%d keys, want the current period's and 7 before it", len(ka))
	}
	for i := range ka {
		if ka[i] != kb[i] {
			t.Fatalf("replicas of one CA disagree on key %d", i)
		}
		for j := range i {
			if ka[i] == ka[j] {
				t.Fatalf("keys %d and %d are equal", i, j)
			}
		}
	}
	if keys(a, now.Add(time.Hour))[0] != ka[0] {
		t.Fatal("the key changed within a period")
	}
	next := keys(a, now.Add(pki.TicketPeriod))
	if next[0] == ka[0] || next[1] != ka[0] || next[7] != ka[6] {
		t.Fatal("a new period must encrypt with a new key and still decrypt with the last 7")
	}
	for i, k := range keys(other, now) {
		if k == ka[i] {
			t.Fatalf("another CA derived key %d of this one", i)
		}
	}
}
