package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestSSOConfigStore(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := domain.WithActor(context.Background(), domain.Actor{ID: "token:test"})
		org := storetest.Org(t, db, domain.PlanHR)
		other := storetest.Org(t, db, domain.PlanHR)
		if _, err := db.GetSSOConfig(ctx, org.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unconfigured: %v", err)
		}
		c := store.SSOConfig{OrgID: org.ID, Issuer: "https://idp.example", ClientID: "cid", ClientSecretSealed: "v1:k:aaa",
			AllowedDomains: []string{"example.com"}, Enabled: true}
		if err := db.PutSSOConfig(ctx, &c); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetSSOConfig(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Issuer != c.Issuer || got.ClientID != "cid" || got.ClientSecretSealed != "v1:k:aaa" || !got.Enabled ||
			len(got.AllowedDomains) != 1 || got.AllowedDomains[0] != "example.com" || got.UpdatedBy != "token:test" {
			t.Fatalf("read back %+v", got)
		}
		if _, err := db.GetSSOConfig(ctx, other.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other org sees the config: %v", err)
		}
		// Replace, keeping the secret.
		c2 := got
		c2.Enabled, c2.AllowedDomains = false, nil
		if err := db.PutSSOConfig(ctx, &c2); err != nil {
			t.Fatal(err)
		}
		got2, _ := db.GetSSOConfig(ctx, org.ID)
		if got2.Enabled || len(got2.AllowedDomains) != 0 || got2.AllowedDomains == nil || !got2.CreatedAt.Equal(got.CreatedAt) {
			t.Fatalf("after update %+v", got2)
		}
		rows, _, err := db.ListAudit(ctx, org.ID, store.AuditFilter{TargetType: "sso_config"}, store.Page{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Action != "sso.configured" {
			t.Fatalf("audit %+v", rows)
		}
		for _, r := range rows {
			if strings.Contains(string(r.After), "v1:k:aaa") || strings.Contains(string(r.Before), "v1:k:aaa") {
				t.Fatalf("audit holds the sealed secret: %s", r.After)
			}
		}
		if !strings.Contains(string(rows[0].After), `"secret_changed":true`) || !strings.Contains(string(rows[1].After), `"secret_changed":false`) {
			t.Fatalf("secret_changed not recorded: %s / %s", rows[0].After, rows[1].After)
		}
		if err := db.PutSSOConfig(ctx, &store.SSOConfig{OrgID: org.ID, Issuer: "https://x", ClientID: "c"}); !errors.Is(err, store.ErrInvalidInput) {
			t.Fatalf("no secret: %v", err)
		}
		if _, err := db.DeleteSSOConfig(ctx, other.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete unconfigured: %v", err)
		}
		if _, err := db.DeleteSSOConfig(ctx, org.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetSSOConfig(ctx, org.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if acts := storetest.AuditActions(t, db, org.ID, org.ID); len(acts) != 3 || acts[2] != "sso.deleted" {
			t.Fatalf("audit actions %v", acts)
		}
	})
}

func TestSSOStateStore(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanHR)
		now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
		st := func(h string, created time.Time) store.SSOState {
			return store.SSOState{StateHash: h, OrgID: org.ID, BindingHash: "b-" + h, Issuer: "https://idp", ClientID: "cid",
				Nonce: "n-" + h, VerifierSealed: "sealed-" + h, CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute)}
		}
		if err := db.InsertSSOState(ctx, st("h1", now), now, 2); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertSSOState(ctx, st("h2", now), now, 2); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertSSOState(ctx, st("h3", now), now, 2); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("over the cap: %v", err)
		}
		got, err := db.ConsumeSSOState(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if got.OrgID != org.ID || got.BindingHash != "b-h1" || got.Nonce != "n-h1" || got.VerifierSealed != "sealed-h1" ||
			got.Issuer != "https://idp" || got.ClientID != "cid" || !got.ExpiresAt.Equal(now.Add(10*time.Minute)) {
			t.Fatalf("consumed %+v", got)
		}
		if _, err := db.ConsumeSSOState(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second consume: %v", err)
		}
		// Eleven minutes later h2 has expired: the next insert sweeps it.
		later := now.Add(11 * time.Minute)
		if err := db.InsertSSOState(ctx, st("h4", later), later, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ConsumeSSOState(ctx, "h2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired state survived the sweep: %v", err)
		}
		// Deleting the configuration drops sign-ins in flight.
		actx := domain.WithActor(ctx, domain.Actor{ID: "token:test"})
		if err := db.PutSSOConfig(actx, &store.SSOConfig{OrgID: org.ID, Issuer: "https://idp", ClientID: "cid", ClientSecretSealed: "s"}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.DeleteSSOConfig(actx, org.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ConsumeSSOState(ctx, "h4"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state survived the config's deletion: %v", err)
		}
	})
}
