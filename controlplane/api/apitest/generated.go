package apitest

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
)

var param = regexp.MustCompile(`\{([a-zA-Z_][a-zA-Z0-9_]*)(\.\.\.)?\}`)

// Fixtures maps a route's Resource to the id of such a resource owned by org A. Routes
// whose resource has no fixture are probed with a random id (must still not be 2xx).
type Fixtures map[string]string

// CheckIsolation calls every authenticated route as an owner of org B, using org A's
// resource ids, and fails if any answers 2xx for a path naming A's resources, or if any
// response body mentions one of A's ids. Generated from the route table, so a new route is
// covered the moment it is registered.
func CheckIsolation(t *testing.T, h *Harness, tokenB string, fx Fixtures) {
	t.Helper()
	aIDs := make([]string, 0, len(fx))
	for _, id := range fx {
		aIDs = append(aIDs, id)
	}
	for _, rt := range h.API.Routes() {
		if rt.Public {
			continue
		}
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			hasParams := param.MatchString(rt.Path)
			path := param.ReplaceAllStringFunc(rt.Path, func(m string) string {
				if id, ok := fx[rt.Resource]; ok {
					return id
				}
				return domain.NewID()
			})
			body := "{}"
			if rt.Method == http.MethodGet || rt.Method == http.MethodDelete {
				body = ""
			}
			var resp Response
			if body == "" {
				resp = h.Do(rt.Method, path, tokenB, nil)
			} else {
				resp = h.Do(rt.Method, path, tokenB, body)
			}
			if hasParams && resp.Status < 300 {
				t.Fatalf("org B got %d for org A's %s at %s: %s", resp.Status, rt.Resource, path, resp.Body)
			}
			// The problem's "instance" echoes the caller's own path; only other places count.
			scan := strings.ReplaceAll(string(resp.Body), path, "")
			for _, id := range aIDs {
				if strings.Contains(scan, id) {
					t.Fatalf("response to org B leaks org A's id %s: %s", id, resp.Body)
				}
			}
		})
	}
}

// CheckRoles calls every mutating route with a token one role below its minimum and
// expects 403 before anything is read or written.
func CheckRoles(t *testing.T, h *Harness, orgID string) {
	t.Helper()
	below := map[domain.Role]domain.Role{domain.RoleIT: domain.RoleViewer, domain.RoleAdmin: domain.RoleIT, domain.RoleOwner: domain.RoleAdmin}
	tokens := map[domain.Role]string{}
	for _, rt := range h.API.Routes() {
		if rt.Public || rt.Method == http.MethodGet {
			continue
		}
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			low, ok := below[rt.Role]
			if !ok {
				t.Fatalf("mutating route %s %s allows role %q: mutating routes need it or above", rt.Method, rt.Path, rt.Role)
			}
			if tokens[low] == "" {
				tokens[low] = h.Token(orgID, low)
			}
			path := param.ReplaceAllString(rt.Path, domain.NewID())
			resp := h.Do(rt.Method, path, tokens[low], "{}")
			if resp.Status != http.StatusForbidden {
				t.Fatalf("role %s got %d, want 403: %s", low, resp.Status, resp.Body)
			}
		})
	}
}

// CheckOpenAPI validates the document's structure and that every route appears in it.
func CheckOpenAPI(t *testing.T, s *api.Server) {
	t.Helper()
	doc := s.OpenAPI()
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	paths := doc["paths"].(map[string]map[string]any)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	seenOps := map[string]bool{}
	for _, rt := range s.Routes() {
		p := param.ReplaceAllString(rt.Path, "{$1}")
		op, ok := paths[p][strings.ToLower(rt.Method)].(map[string]any)
		if !ok {
			t.Errorf("route %s %s missing from the OpenAPI document", rt.Method, rt.Path)
			continue
		}
		id := op["operationId"].(string)
		if seenOps[id] {
			t.Errorf("duplicate operationId %s", id)
		}
		seenOps[id] = true
		declared := map[string]bool{}
		if ps, ok := op["parameters"].([]any); ok {
			for _, x := range ps {
				m := x.(map[string]any)
				if m["in"] == "path" {
					declared[m["name"].(string)] = true
				}
			}
		}
		for _, m := range param.FindAllStringSubmatch(rt.Path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s %s: path parameter %s not declared", rt.Method, rt.Path, m[1])
			}
		}
		if _, ok := op["responses"].(map[string]any); !ok {
			t.Errorf("%s %s: no responses", rt.Method, rt.Path)
		}
	}
	checkRefs(t, doc, schemas)
	checkProblemResponses(t, doc)
	checkQueryTypes(t, doc)
	CheckInputHygiene(t, s)
}

func checkRefs(t *testing.T, v any, schemas map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, vv := range x {
			if k == "$ref" {
				name := strings.TrimPrefix(vv.(string), "#/components/schemas/")
				if _, ok := schemas[name]; !ok {
					t.Errorf("dangling $ref %v", vv)
				}
			}
			checkRefs(t, vv, schemas)
		}
	case map[string]map[string]any:
		for _, vv := range x {
			checkRefs(t, vv, schemas)
		}
	case []any:
		for _, vv := range x {
			checkRefs(t, vv, schemas)
		}
	}
}
