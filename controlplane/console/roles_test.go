package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

var formParam = regexp.MustCompile(`\{[a-zA-Z_]+\}`)

// Role checks for every console action, generated from the same source as the API's role
// table: each row of the console's action table names an API route, and for every role
// the console must answer as that route says: below the route's role (or the handler's
// stricter one, declared in the row) the API's 403 is rendered as a message; at or above
// it the call passes the role check (and here meets a 404, the ids being random).
func TestEveryConsoleActionFollowsTheAPIRoleTable(t *testing.T) {
	e := newEnv(t)
	routes := map[string]domain.Role{}
	for _, rt := range e.srv.API.Routes() {
		routes[rt.Method+" "+rt.Path] = rt.Role
	}
	roles := []domain.Role{domain.RoleViewer, domain.RoleIT, domain.RoleAdmin, domain.RoleOwner}
	clients := map[domain.Role]*client{}
	for _, r := range roles {
		clients[r] = e.client(r)
	}
	actions := e.console.Actions()
	if len(actions) < 10 {
		t.Fatalf("action table has %d rows", len(actions))
	}
	for _, a := range actions {
		need, ok := routes[a.API]
		if !ok {
			t.Fatalf("action %q calls %s, not an API route", a.Name, a.API)
		}
		if a.StricterRole != "" {
			if !domain.Role(a.StricterRole).AtLeast(need) || domain.Role(a.StricterRole) == need {
				t.Fatalf("action %q: StricterRole %s is not stricter than the route's %s", a.Name, a.StricterRole, need)
			}
			need = domain.Role(a.StricterRole)
		}
		method, pattern, _ := strings.Cut(a.Form, " ")
		if method != http.MethodPost {
			t.Fatalf("action %q is %s: console actions are POST forms", a.Name, method)
		}
		for _, role := range roles {
			t.Run(a.Name+"/"+string(role), func(t *testing.T) {
				path := formParam.ReplaceAllStringFunc(pattern, func(string) string { return domain.NewID() })
				form := url.Values{}
				for k, v := range a.Fields {
					form.Set(k, v)
				}
				p := clients[role].post(path, form)
				if !role.AtLeast(need) {
					if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "needs the") {
						t.Fatalf("%s as %s: %d, want the API's 403 rendered: %s", a.Form, role, p.Status, p.Body)
					}
					if !strings.Contains(p.Body, `role="alert"`) {
						t.Fatalf("the refusal is not shown as a message: %s", p.Body)
					}
					return
				}
				if p.Status == http.StatusForbidden || p.Status == http.StatusUnauthorized {
					t.Fatalf("%s as %s: %d, want the role check passed: %s", a.Form, role, p.Status, p.Body)
				}
			})
		}
	}
}
