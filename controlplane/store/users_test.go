package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// unmigrated opens an empty database of each dialect, for migration tests.
func eachUnmigrated(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "old.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := postgres.Open(context.Background(), storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		fn(t, db)
	})
}

// TestMigrationGivesExistingTokensAnOwner builds the schema before 00600, stores tokens and
// their audit history the old way, and migrates: every org with tokens gets one
// "Migrated tokens" owner who owns them all, the tokens keep working with their roles, and
// the audit rows are untouched.
func TestMigrationGivesExistingTokensAnOwner(t *testing.T) {
	eachUnmigrated(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.MigrateTo(ctx, 599); err != nil {
			t.Fatal(err)
		}
		withTokens := domain.Org{Name: "Old Co", Plan: domain.PlanPro}
		without := domain.Org{Name: "Empty Co", Plan: domain.PlanHR}
		for _, o := range []*domain.Org{&withTokens, &without} {
			if err := store.CreateOrg(ctx, db.SQL, o); err != nil {
				t.Fatal(err)
			}
		}
		at := time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(time.Second)
		secrets := map[string]string{"tok-owner": "lyd_oldownersecret", "tok-it": "lyd_olditsecret"}
		roles := map[string]string{"tok-owner": "owner", "tok-it": "it"}
		for id, secret := range secrets {
			if _, err := db.SQL.ExecContext(ctx, `INSERT INTO api_tokens (id, org_id, name, role, token_hash, prefix, created_by, created_at)
				VALUES ($1, $2, $3, $4, $5, 'lyd_old', 'system:admin-cli', $6)`, id, withTokens.ID, id, roles[id], store.HashToken(secret), at); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.WriteAudit(ctx, db.SQL, domain.AuditEntry{OrgID: withTokens.ID, Actor: "token:tok-it", Action: "device.created",
			TargetType: "device", TargetID: "d1"}); err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}

		mig, err := db.GetUser(ctx, withTokens.ID, store.MigratedUserID(withTokens.ID))
		if err != nil {
			t.Fatal(err)
		}
		if mig.Name != "Migrated tokens" || mig.Role != domain.RoleOwner || mig.Email != "" || mig.PasswordHash != "" || mig.Status != "invited" {
			t.Fatalf("migrated user %+v", mig)
		}
		if us, _, _ := db.ListUsers(ctx, without.ID, true, store.Page{}); len(us) != 0 {
			t.Fatalf("org without tokens got users %+v", us)
		}
		for id, secret := range secrets {
			tok, err := db.AuthenticateToken(ctx, secret)
			if err != nil {
				t.Fatalf("%s after migration: %v", id, err)
			}
			if tok.UserID != mig.ID || tok.Kind != store.TokenPersonal || string(tok.Role) != roles[id] || tok.Owner == nil ||
				tok.Owner.Role != domain.RoleOwner || !tok.Owner.Active {
				t.Fatalf("%s: %+v owner %+v", id, tok, tok.Owner)
			}
		}
		// Nobody can sign in as the placeholder: it has no email and no password.
		if us, _ := db.FindUsersByEmail(ctx, "", ""); len(us) != 0 {
			t.Fatal("empty email matched a user")
		}
		rows, _, err := db.ListAudit(ctx, withTokens.ID, store.AuditFilter{Actor: "token:tok-it"}, store.Page{})
		if err != nil || len(rows) != 1 || rows[0].Action != "device.created" {
			t.Fatalf("audit history %+v %v", rows, err)
		}
		if err := db.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUserStore(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := domain.WithActor(context.Background(), domain.Actor{ID: "system:test"})
		o := storetest.Org(t, db, domain.PlanPro)
		u := store.User{OrgID: o.ID, Email: " Pat@Example.COM ", Name: "Pat", Role: domain.RoleOwner}
		if err := db.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
		dup := store.User{OrgID: o.ID, Email: "pat@example.com", Role: domain.RoleIT}
		if err := db.CreateUser(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate email: %v", err)
		}
		// Lockout bookkeeping: the tenth failure locks.
		now := time.Now().UTC()
		for i := 1; i <= 10; i++ {
			until, err := db.RecordSignInFailure(ctx, o.ID, u.ID, now, 10, 15*time.Minute)
			if err != nil || (i < 10) != (until == nil) {
				t.Fatalf("failure %d: %v %v", i, until, err)
			}
		}
		if got, _ := db.GetUser(ctx, o.ID, u.ID); !got.Locked(now) || got.Locked(now.Add(16*time.Minute)) || got.FailedCount != 0 {
			t.Fatalf("locked %+v", got)
		}
		// A TOTP step is used once.
		if ok, _ := db.UseTOTPStep(ctx, u.ID, 100); !ok {
			t.Fatal("first use of step 100")
		}
		for _, step := range []int64{100, 99} {
			if ok, _ := db.UseTOTPStep(ctx, u.ID, step); ok {
				t.Fatalf("step %d reused", step)
			}
		}
		// Removing the last owner is refused; a removed user's email can be invited again.
		if _, err := db.RemoveUser(ctx, o.ID, u.ID); !errors.Is(err, store.ErrLastOwner) {
			t.Fatalf("remove last owner: %v", err)
		}
		second := store.User{OrgID: o.ID, Email: "sam@example.com", Role: domain.RoleOwner}
		if err := db.CreateUser(ctx, &second); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RemoveUser(ctx, o.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		again := store.User{OrgID: o.ID, Email: "pat@example.com", Role: domain.RoleIT}
		if err := db.CreateUser(ctx, &again); err != nil {
			t.Fatalf("re-invite after removal: %v", err)
		}
		// One-time tokens: used once, only as their kind.
		ot := store.OneTimeToken{TokenHash: "h1", Kind: store.OneTimeInvitation, UserID: again.ID, OrgID: o.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateOneTimeToken(ctx, ot); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UseOneTimeToken(ctx, "h1", now, store.OneTimeChallenge); !errors.Is(err, store.ErrOneTimeUsed) {
			t.Fatalf("wrong kind: %v", err)
		}
		if _, err := db.UseOneTimeToken(ctx, "h1", now, store.OneTimeInvitation); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if _, err := db.UseOneTimeToken(ctx, "h1", now, store.OneTimeInvitation); !errors.Is(err, store.ErrOneTimeUsed) {
			t.Fatalf("second use: %v", err)
		}
	})
}
