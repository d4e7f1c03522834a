package agentapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestTwoPersonRuleCountsPeople: an admin who holds two tokens is still one person, so
// their second token cannot approve the wipe their first created; a different admin can.
func TestTwoPersonRuleCountsPeople(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := domain.WithActor(context.Background(), domain.Actor{ID: "system:test"})
		e := newEnv(t, db, domain.PlanPro)
		h := apitest.New(t, db, api.Options{}, e.srv.Routes())
		o, _ := db.GetOrg(ctx, e.org.ID)
		o.Settings.WipeRequiresApproval = true
		if _, err := db.UpdateOrg(ctx, o); err != nil {
			t.Fatal(err)
		}
		person := func(email string) (store.User, string, string) {
			u := store.User{OrgID: o.ID, Email: email, Role: domain.RoleAdmin}
			if err := db.CreateUser(ctx, &u); err != nil {
				t.Fatal(err)
			}
			_, first, err := db.CreateTokenFor(ctx, store.NewToken{OrgID: o.ID, Name: "laptop", Role: domain.RoleAdmin, UserID: u.ID})
			if err != nil {
				t.Fatal(err)
			}
			_, second, err := db.CreateTokenFor(ctx, store.NewToken{OrgID: o.ID, Name: "script", Role: domain.RoleAdmin, UserID: u.ID, Kind: store.TokenService})
			if err != nil {
				t.Fatal(err)
			}
			return u, first, second
		}
		alice, aliceTok, aliceTok2 := person("alice@example.com")
		_, bobTok, _ := person("bob@example.com")

		wipe := func(serial string) store.DeviceCommand {
			dev := linuxDevice(t, db, o.ID, serial)
			r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", aliceTok, map[string]any{"type": "wipe", "confirm": serial})
			var c store.DeviceCommand
			r.JSON(t, &c)
			if r.Status != http.StatusCreated || c.State != store.CommandAwaitingApproval || c.CreatedByUser != alice.ID {
				t.Fatalf("wipe %d %s", r.Status, r.Body)
			}
			return c
		}
		refused := func(c store.DeviceCommand, secret, want string) {
			t.Helper()
			r := h.Do("POST", "/api/v1/device-actions/"+c.ID+"/approve", secret, nil)
			if r.Status != http.StatusForbidden || r.Map(t)["detail"] != want {
				t.Fatalf("approval by the creator: %d %s", r.Status, r.Body)
			}
		}
		const otherToken = "a wipe must be approved by a different person: you created it (with another token)"
		c := wipe("SN-2P-1")
		refused(c, aliceTok, "a wipe must be approved by a different person: you created it")
		refused(c, aliceTok2, otherToken)
		// Nor in the console: alice's session is alice.
		err := h.API.Call(ctx, api.Principal{OrgID: o.ID, Org: o, Role: domain.RoleAdmin, UserID: alice.ID, Via: "session", SessionID: "s1"},
			"POST", "/api/v1/device-actions/"+c.ID+"/approve", nil, nil)
		if ce, ok := api.AsCallError(err); !ok || ce.Status != http.StatusForbidden || ce.Detail != otherToken {
			t.Fatalf("approval from the creator's session: %v", err)
		}
		r := h.Do("POST", "/api/v1/device-actions/"+c.ID+"/approve", bobTok, nil)
		var approved store.DeviceCommand
		r.JSON(t, &approved)
		if r.Status != 200 || approved.State != store.CommandQueued || !strings.HasPrefix(approved.ApprovedBy, "token:") {
			t.Fatalf("approval by a different admin: %d %s", r.Status, r.Body)
		}

		// A command from before commands recorded their person: "token:<id>" resolves to
		// that token's owner.
		old := wipe("SN-2P-2")
		if _, err := db.SQL.ExecContext(ctx, `UPDATE device_commands SET created_by_user = '' WHERE id = $1`, old.ID); err != nil {
			t.Fatal(err)
		}
		refused(old, aliceTok2, otherToken)
		if r := h.Do("POST", "/api/v1/device-actions/"+old.ID+"/approve", bobTok, nil); r.Status != 200 {
			t.Fatalf("old row, different admin: %d %s", r.Status, r.Body)
		}
	})
}
