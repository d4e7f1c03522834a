package auth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// secretRoute stands in for the PIN and recovery-key reveals: a Reauth route.
var secretRoute = api.Route{Method: "GET", Path: "/api/v1/test-secret", Summary: "test reveal", Tag: "Test", Role: domain.RoleViewer, Reauth: true,
	Handler: func(w http.ResponseWriter, r *http.Request) error {
		return api.JSON(w, 200, map[string]string{"secret": "s3cret"})
	}}

func newAPI(t *testing.T, e *env) *apitest.Harness {
	return apitest.New(t, e.db, api.Options{}, e.svc.Routes(), []api.Route{secretRoute})
}

// tokenOf mints a token owned by u with role.
func (e *env) tokenOf(u auth.User, role domain.Role) (store.Token, string) {
	e.t.Helper()
	tok, secret, err := e.db.CreateTokenFor(e.ctx, store.NewToken{OrgID: u.OrgID, Name: "t", Role: role, UserID: u.ID})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok, secret
}

func TestUserRoutesGenerated(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := newAPI(t, e)
		u := e.user("a@example.com", domain.RoleAdmin)
		tok, _ := e.tokenOf(u, domain.RoleAdmin)
		b := storetest.Org(t, db, domain.PlanPro)
		t.Run("roles", func(t *testing.T) { apitest.CheckRoles(t, h, e.org.ID) })
		t.Run("isolation", func(t *testing.T) {
			apitest.CheckIsolation(t, h, h.Token(b.ID, domain.RoleOwner), apitest.Fixtures{"user": u.ID, "token": tok.ID})
		})
		t.Run("openapi", func(t *testing.T) { apitest.CheckOpenAPI(t, h.API) })
	})
}

func TestTokenRoleCappedByItsUser(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := newAPI(t, e)
		admin := e.user("admin@example.com", domain.RoleAdmin)
		// An owner-role token in the hands of an admin acts as an admin.
		_, secret := e.tokenOf(admin, domain.RoleOwner)
		r := h.Do("GET", "/api/v1/me", secret, nil)
		var me auth.Me
		r.JSON(t, &me)
		if r.Status != 200 || me.Role != domain.RoleAdmin || me.User == nil || me.User.ID != admin.ID || me.Via != "token" {
			t.Fatalf("me %d %s", r.Status, r.Body)
		}
		if r := h.Do("PATCH", "/api/v1/org", secret, map[string]any{"plan": "hr"}); r.Status != http.StatusForbidden {
			t.Fatalf("plan change with a capped token: %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/tokens", secret, map[string]any{"name": "x", "role": "owner"}); r.Status != http.StatusForbidden {
			t.Fatalf("minting an owner token: %d %s", r.Status, r.Body)
		}
		// New tokens belong to the caller's person, personal or service.
		r = h.Do("POST", "/api/v1/tokens", secret, map[string]any{"name": "ci", "role": "it", "kind": "service"})
		var created struct {
			Token  store.Token `json:"token"`
			Secret string      `json:"secret"`
		}
		r.JSON(t, &created)
		if r.Status != http.StatusCreated || created.Token.UserID != admin.ID || created.Token.Kind != "service" {
			t.Fatalf("service token %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/tokens", secret, map[string]any{"name": "x", "role": "it", "kind": "robot"}); r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("bad kind: %d", r.Status)
		}
		// Demoting the person demotes their tokens at once.
		it := domain.RoleIT
		if _, err := db.PatchUser(e.ctx, e.org.ID, admin.ID, store.UserPatch{Role: &it}); err != nil {
			t.Fatal(err)
		}
		if r := h.Do("GET", "/api/v1/tokens", secret, nil); r.Status != http.StatusForbidden {
			t.Fatalf("demoted person's token listed tokens: %d", r.Status)
		}
	})
}

func TestRemovedUsersTokensRefused(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := newAPI(t, e)
		owner := e.user("owner@example.com", domain.RoleOwner)
		_, ownerTok := e.tokenOf(owner, domain.RoleOwner)
		leaver := e.user("leaver@example.com", domain.RoleAdmin)
		tok, secret := e.tokenOf(leaver, domain.RoleAdmin)
		if r := h.Do("GET", "/api/v1/org", secret, nil); r.Status != 200 {
			t.Fatalf("before removal %d", r.Status)
		}
		r := h.Do("DELETE", "/api/v1/users/"+leaver.ID, ownerTok, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"removed"`) {
			t.Fatalf("remove %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/org", secret, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("removed user's token: %d %s", r.Status, r.Body)
		}
		if got, _, _ := db.ListTokens(e.ctx, e.org.ID, store.Page{}); !revoked(got, tok.ID) {
			t.Fatal("removal did not revoke the token")
		}
		// Even a token the removal missed is refused: authentication checks the owner.
		leaver2 := e.user("leaver2@example.com", domain.RoleIT)
		_, secret2 := e.tokenOf(leaver2, domain.RoleIT)
		if _, err := db.SQL.ExecContext(e.ctx, `UPDATE users SET removed_at = $1 WHERE id = $2`, time.Now().UTC(), leaver2.ID); err != nil {
			t.Fatal(err)
		}
		if r := h.Do("GET", "/api/v1/org", secret2, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("token of a removed owner: %d", r.Status)
		}
	})
}

func revoked(ts []store.Token, id string) bool {
	for _, t := range ts {
		if t.ID == id {
			return t.RevokedAt != nil
		}
	}
	return false
}

func TestLastOwnerGuard(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := newAPI(t, e)
		// The org starts the way create-org leaves it: an owner token, an owner who has not
		// signed in yet.
		bootstrap, bootSecret, err := db.CreateToken(e.ctx, e.org.ID, "bootstrap owner", domain.RoleOwner, nil)
		if err != nil {
			t.Fatal(err)
		}
		owner := e.user("owner@example.com", domain.RoleOwner)
		r := h.Do("DELETE", "/api/v1/tokens/"+bootstrap.ID, bootSecret, nil)
		if r.Status != http.StatusConflict || !strings.Contains(r.Map(t)["detail"].(string), "no owner can sign in") {
			t.Fatalf("revoking the last owner token: %d %s", r.Status, r.Body)
		}
		for _, tc := range []struct{ method, path, body, want string }{
			{"DELETE", "/api/v1/users/" + owner.ID, "", "cannot be removed"},
			{"PATCH", "/api/v1/users/" + owner.ID, `{"role":"admin"}`, "cannot be demoted"},
		} {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := h.Do(tc.method, tc.path, bootSecret, body)
			if r.Status != http.StatusConflict || !strings.Contains(r.Map(t)["detail"].(string), tc.want) {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, r.Status, r.Body)
			}
		}
		// Once the owner can sign in, the bootstrap token may go.
		e.onboard(owner)
		if r := h.Do("DELETE", "/api/v1/tokens/"+bootstrap.ID, bootSecret, nil); r.Status != 200 {
			t.Fatalf("revoke after the owner signed in: %d %s", r.Status, r.Body)
		}
		// With a second owner the first can be demoted; an admin cannot touch owners.
		_, ownerTok := e.tokenOf(owner, domain.RoleOwner)
		admin := e.user("admin@example.com", domain.RoleAdmin)
		_, adminTok := e.tokenOf(admin, domain.RoleAdmin)
		if r := h.Do("PATCH", "/api/v1/users/"+admin.ID, adminTok, map[string]any{"role": "owner"}); r.Status != http.StatusForbidden {
			t.Fatalf("admin granted owner: %d", r.Status)
		}
		if r := h.Do("DELETE", "/api/v1/users/"+owner.ID, adminTok, nil); r.Status != http.StatusForbidden {
			t.Fatalf("admin removed an owner: %d", r.Status)
		}
		if r := h.Do("PATCH", "/api/v1/users/"+admin.ID, ownerTok, map[string]any{"role": "owner"}); r.Status != 200 {
			t.Fatalf("owner granted owner: %d %s", r.Status, r.Body)
		}
		if r := h.Do("PATCH", "/api/v1/users/"+owner.ID, ownerTok, map[string]any{"role": "admin"}); r.Status != 200 {
			t.Fatalf("demote with a second owner: %d %s", r.Status, r.Body)
		}
		acts := auditActions(t, db, e.org.ID, owner.ID)
		if !strings.Contains(acts, "user.role_changed") {
			t.Fatalf("audit %s", acts)
		}
	})
}

func TestInviteAndSessionsRoutes(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := newAPI(t, e)
		admin := e.user("admin@example.com", domain.RoleAdmin)
		_, adminTok := e.tokenOf(admin, domain.RoleAdmin)
		if r := h.Do("POST", "/api/v1/users", adminTok, map[string]any{"email": "boss@example.com", "role": "owner"}); r.Status != http.StatusForbidden {
			t.Fatalf("admin invited an owner: %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/users", adminTok, map[string]any{"email": "not-an-email", "role": "it"}); r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("bad email: %d", r.Status)
		}
		r := h.Do("POST", "/api/v1/users", adminTok, map[string]any{"email": "New.Hire@Example.com", "name": "New Hire", "role": "it"})
		var inv auth.Invitation
		r.JSON(t, &inv)
		if r.Status != http.StatusCreated || inv.User.Email != "new.hire@example.com" || !strings.HasPrefix(inv.Link, "/signin/link/") ||
			inv.URL != "http://127.0.0.1:8080"+inv.Link || inv.User.Status != "invited" {
			t.Fatalf("invite %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/users", adminTok, map[string]any{"email": "new.hire@example.com", "role": "it"}); r.Status != http.StatusConflict {
			t.Fatalf("duplicate invite: %d", r.Status)
		}
		if !strings.Contains(auditActions(t, db, e.org.ID, inv.User.ID), "user.invited") {
			t.Fatal("invitation not audited")
		}
		// The link signs the person in (password first), once.
		tok := strings.TrimPrefix(inv.Link, "/signin/link/")
		st, err := e.svc.SignInLink(e.ctx, tok, web)
		if err != nil || st.Need != auth.NeedSetPassword {
			t.Fatalf("link %+v %v", st, err)
		}
		st, err = e.svc.SetPassword(e.ctx, st.Challenge, goodPassword, web)
		if err != nil || st.Session == nil {
			t.Fatalf("set password %+v %v", st, err)
		}
		// GET /sessions lists the caller's own, marking the current one.
		p, err := e.svc.Principal(e.ctx, *st.Session)
		if err != nil {
			t.Fatal(err)
		}
		var list api.List[store.UserSession]
		if err := h.API.Call(e.ctx, p, "GET", "/api/v1/sessions", nil, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || !list.Items[0].Current || list.Items[0].UserID != inv.User.ID {
			t.Fatalf("sessions %+v", list.Items)
		}
		r = h.Do("POST", "/api/v1/users/"+inv.User.ID+"/revoke-sessions", adminTok, nil)
		if r.Status != 200 || r.Map(t)["revoked"].(float64) != 1 {
			t.Fatalf("revoke sessions %d %s", r.Status, r.Body)
		}
		if _, err := e.svc.Authenticate(e.ctx, st.Session.ID); err == nil {
			t.Fatal("revoked session still works")
		}
		r = h.Do("GET", "/api/v1/users", adminTok, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), inv.User.ID) || strings.Contains(string(r.Body), "argon2") {
			t.Fatalf("list users %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/users/"+inv.User.ID+"/sign-in-link", adminTok, nil); r.Status != http.StatusCreated {
			t.Fatalf("new link %d %s", r.Status, r.Body)
		}
	})
}

func TestSecretRevealNeedsRecentReauth(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := newAPI(t, e)
		u := e.user("viewer@example.com", domain.RoleViewer)
		sess, _, _ := e.onboard(u)
		p, err := e.svc.Principal(context.Background(), sess)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.API.Call(e.ctx, p, "GET", "/api/v1/test-secret", nil, nil); err != nil {
			t.Fatalf("fresh session: %v", err)
		}
		p.ReauthAt = time.Now().Add(-api.ReauthWindow - time.Minute)
		err = h.API.Call(e.ctx, p, "GET", "/api/v1/test-secret", nil, nil)
		ce, ok := api.AsCallError(err)
		if !ok || ce.Status != http.StatusUnauthorized || ce.Type != api.ProblemBase+"reauth-required" {
			t.Fatalf("stale session: %v", err)
		}
		// Tokens are not sessions: no re-authentication to ask for.
		_, secret := e.tokenOf(u, domain.RoleViewer)
		if r := h.Do("GET", "/api/v1/test-secret", secret, nil); r.Status != 200 {
			t.Fatalf("token reveal %d", r.Status)
		}
	})
}
