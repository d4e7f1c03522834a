package oidc_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestRoutesGeneratedChecks(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		orgB := storetest.Org(t, db, domain.PlanHR)
		t.Run("roles", func(t *testing.T) { apitest.CheckRoles(t, e.h, e.org.ID) })
		t.Run("isolation", func(t *testing.T) {
			apitest.CheckIsolation(t, e.h, e.h.Token(orgB.ID, domain.RoleOwner), apitest.Fixtures{"org": e.org.ID})
		})
		t.Run("openapi", func(t *testing.T) { apitest.CheckOpenAPI(t, e.h.API) })
		// Org B's owner sees none of A's configuration.
		if r := e.h.Do("GET", "/api/v1/sso", e.h.Token(orgB.ID, domain.RoleOwner), nil); r.Status != http.StatusNotFound {
			t.Fatalf("org B GET: %d %s", r.Status, r.Body)
		}
		// Reading needs admin too: the configuration names the org's identity provider.
		if r := e.h.Do("GET", "/api/v1/sso", e.h.Token(e.org.ID, domain.RoleIT), nil); r.Status != http.StatusForbidden {
			t.Fatalf("it GET: %d", r.Status)
		}
	})
}

func TestConfigRoutes(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		admin := e.h.Token(e.org.ID, domain.RoleAdmin)
		if !e.rp.Enabled(context.Background(), e.org.ID) {
			t.Fatal("Enabled is false for a configured org")
		}
		r := e.h.Do("GET", "/api/v1/sso", admin, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET: %d %s", r.Status, r.Body)
		}
		var v oidc.ConfigView
		r.JSON(t, &v)
		if v.Issuer != e.op.Issuer() || v.ClientID != clientID || !v.ClientSecretSet || !v.Enabled ||
			len(v.AllowedDomains) != 1 || v.AllowedDomains[0] != "example.com" ||
			v.RedirectURI != e.rpURL+oidc.CallbackPath || v.SignInURL != e.rpURL+oidc.StartPath+"?org="+e.org.ID {
			t.Fatalf("view %+v", v)
		}
		if strings.Contains(string(r.Body), clientSecret) || strings.Contains(string(r.Body), "v1:") {
			t.Fatalf("GET returns the secret: %s", r.Body)
		}
		// The secret is sealed at rest, bound to the org.
		c, err := db.GetSSOConfig(context.Background(), e.org.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(c.ClientSecretSealed, clientSecret) {
			t.Fatal("client secret stored in the clear")
		}
		if pt, err := e.keys.Open(c.ClientSecretSealed, store.SSOClientSecretAAD(e.org.ID)); err != nil || string(pt) != clientSecret {
			t.Fatalf("open sealed secret: %v", err)
		}
		if _, err := e.keys.Open(c.ClientSecretSealed, store.SSOClientSecretAAD("another-org")); err == nil {
			t.Fatal("the sealed secret opens for another org")
		}
		// PUT without a secret keeps the stored one; the response never carries it.
		r = e.h.Do("PUT", "/api/v1/sso", admin, map[string]any{"issuer": e.op.Issuer(), "client_id": clientID,
			"allowed_domains": []string{"@EXAMPLE.com", "example.com", "corp.example.com"}, "enabled": true})
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), clientSecret) {
			t.Fatalf("PUT keep secret: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &v)
		if len(v.AllowedDomains) != 2 || v.AllowedDomains[0] != "example.com" || v.AllowedDomains[1] != "corp.example.com" {
			t.Fatalf("domains not normalized: %v", v.AllowedDomains)
		}
		c2, _ := db.GetSSOConfig(context.Background(), e.org.ID)
		if c2.ClientSecretSealed != c.ClientSecretSealed {
			t.Fatal("omitting the secret replaced it")
		}
		// Sign-in still works after the update.
		b := newBrowser(t)
		if resp, _ := b.get(b.login(b.startSSO(e), "alice@example.com")); resp.Header.Get("Location") != "/" {
			t.Fatalf("sign-in after update → %s", resp.Header.Get("Location"))
		}
		if strings.Contains(e.allAudit(), clientSecret) {
			t.Fatal("the audit log holds the client secret")
		}

		for name, body := range map[string]any{
			"http issuer not loopback": map[string]any{"issuer": "http://idp.example.com", "client_id": "c", "allowed_domains": []string{"example.com"}},
			"issuer with query":        map[string]any{"issuer": "https://idp.example.com?x=1", "client_id": "c"},
			"issuer not a URL":         map[string]any{"issuer": "accounts.google.com", "client_id": "c"},
			"no client id":             map[string]any{"issuer": "https://idp.example.com", "client_id": " "},
			"enabled without domains":  map[string]any{"issuer": "https://idp.example.com", "client_id": "c", "enabled": true},
			"bad domain":               map[string]any{"issuer": "https://idp.example.com", "client_id": "c", "allowed_domains": []string{"exa mple.com"}},
			"domain with wildcard":     map[string]any{"issuer": "https://idp.example.com", "client_id": "c", "allowed_domains": []string{"*.example.com"}},
		} {
			if r := e.h.Do("PUT", "/api/v1/sso", admin, body); r.Status != http.StatusUnprocessableEntity {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		if r := e.h.Do("PUT", "/api/v1/sso", admin, `{"issuer":"https://x.example","client_id":"c","secret":"typo"}`); r.Status != http.StatusBadRequest {
			t.Errorf("unknown field: %d", r.Status)
		}
		// The first configuration of an org needs the secret.
		orgC := storetest.Org(t, db, domain.PlanHR)
		ownerC := e.h.Token(orgC.ID, domain.RoleOwner)
		if r := e.h.Do("PUT", "/api/v1/sso", ownerC, map[string]any{"issuer": "https://idp.example.com", "client_id": "c"}); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("first PUT without secret: %d %s", r.Status, r.Body)
		}

		// DELETE removes it (and sign-ins in flight); a second DELETE is 404.
		b2 := newBrowser(t)
		authURL := b2.startSSO(e)
		if r := e.h.Do("DELETE", "/api/v1/sso", admin, nil); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
		if resp, _ := b2.get(b2.login(authURL, "alice@example.com")); resp.Header.Get("Location") != refusedAt(oidc.CodeStateInvalid, "") {
			t.Fatalf("sign-in in flight across DELETE → %s", resp.Header.Get("Location"))
		}
		if r := e.h.Do("DELETE", "/api/v1/sso", admin, nil); r.Status != http.StatusNotFound {
			t.Fatalf("second DELETE: %d", r.Status)
		}
		if r := e.h.Do("GET", "/api/v1/sso", admin, nil); r.Status != http.StatusNotFound {
			t.Fatalf("GET after DELETE: %d", r.Status)
		}
		if e.rp.Enabled(context.Background(), e.org.ID) {
			t.Fatal("Enabled after DELETE")
		}
		acts := storetest.AuditActions(t, db, e.org.ID, e.org.ID)
		if len(acts) < 3 || acts[0] != "sso.configured" || acts[len(acts)-1] != "sso.deleted" {
			t.Fatalf("audit actions %v", acts)
		}
	})
}

func TestDiscoveryTestRoute(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		admin := e.h.Token(e.org.ID, domain.RoleAdmin)
		var res oidc.TestResult
		r := e.h.Do("POST", "/api/v1/sso/test", admin, nil)
		r.JSON(t, &res)
		if r.Status != http.StatusOK || !res.OK || res.Error != "" || res.TokenEndpoint != e.op.Issuer()+"/token" ||
			res.AuthorizationEndpoint != e.op.Issuer()+"/authorize" || res.JWKSURI != e.op.Issuer()+"/jwks" || res.SigningKeys != 1 ||
			len(res.Warnings) != 0 {
			t.Fatalf("test saved issuer: %d %+v", r.Status, res)
		}
		// A provider whose discovery names another issuer than the URL it is served from.
		impostor := e.newOP(nil)
		r = e.h.Do("POST", "/api/v1/sso/test", admin, map[string]string{"issuer": impostor.Issuer() + "/"})
		res = oidc.TestResult{}
		r.JSON(t, &res)
		if r.Status != http.StatusOK || res.OK || !strings.Contains(res.Error, "issuer") {
			t.Fatalf("issuer mismatch: %+v", res)
		}
		// Nobody listening.
		r = e.h.Do("POST", "/api/v1/sso/test", admin, map[string]string{"issuer": "http://127.0.0.1:1"})
		res = oidc.TestResult{}
		r.JSON(t, &res)
		if r.Status != http.StatusOK || res.OK || res.Error == "" {
			t.Fatalf("unreachable: %+v", res)
		}
		if r := e.h.Do("POST", "/api/v1/sso/test", admin, map[string]string{"issuer": "ftp://x"}); r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("bad issuer: %d", r.Status)
		}
		orgB := storetest.Org(t, db, domain.PlanHR)
		if r := e.h.Do("POST", "/api/v1/sso/test", e.h.Token(orgB.ID, domain.RoleAdmin), nil); r.Status != http.StatusNotFound {
			t.Fatalf("unconfigured org: %d", r.Status)
		}
	})
}
