package enrollment_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/installers"
)

func TestMint(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		exp := time.Now().Add(time.Hour)
		plain, s, err := enrollment.Mint(ctx, db, org.ID, enrollment.Options{Name: "pkg", ExpiresAt: &exp, MaxUses: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(plain, enrollment.Prefix) || len(plain) < 50 || !strings.HasPrefix(plain, s.Prefix) || s.MaxUses != 2 {
			t.Fatalf("minted %q %+v", plain, s)
		}
		// Only the hash is stored, and it is what the exchange looks up (surrounding
		// whitespace from a copy-paste is ignored).
		var stored string
		if err := db.SQL.QueryRow(`SELECT secret_hash FROM enrollment_secrets WHERE id = $1`, s.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == plain || stored != enrollment.Hash(" "+plain+"\n") {
			t.Fatal("stored value is not the hash of the secret")
		}
		a := store.Agent{}
		if _, err := db.ExchangeEnrollmentSecret(ctx, enrollment.Hash(plain), &a); err != nil {
			t.Fatal(err)
		}
		for name, o := range map[string]enrollment.Options{"negative uses": {MaxUses: -1}, "past expiry": {ExpiresAt: &time.Time{}}} {
			if _, _, err := enrollment.Mint(ctx, db, org.ID, o); !errors.Is(err, enrollment.ErrInvalid) {
				t.Fatalf("%s: %v", name, err)
			}
		}
		m := enrollment.Minter{Store: db, Fingerprint: func() string { return "abc" }}
		ms, err := m.MintPackageSecret(ctx, org.ID, installers.SecretOptions{Name: "build 1", MaxUses: 1})
		if err != nil || ms.ID == "" || !strings.HasPrefix(ms.Plaintext, enrollment.Prefix) {
			t.Fatalf("package secret %+v %v", ms, err)
		}
		if fp, err := m.CAFingerprint(ctx, org.ID); err != nil || fp != "abc" {
			t.Fatalf("fingerprint %q %v", fp, err)
		}
		if plain == enrollment.Generate() {
			t.Fatal("two secrets are equal")
		}
	})
}
