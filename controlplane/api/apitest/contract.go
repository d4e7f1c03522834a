package apitest

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// CheckMethodNotAllowed asks every path of the route table with a method none of its
// routes serves and wants 405 with an Allow header naming the methods that path does
// serve. Generated from the route table, so a new path is covered when it is registered.
func CheckMethodNotAllowed(t *testing.T, h *Harness) {
	t.Helper()
	methods := map[string][]string{} // route pattern → its methods
	for _, rt := range h.API.Routes() {
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	for path, served := range methods {
		wrong := ""
		for _, m := range []string{http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodGet} {
			if !slices.Contains(served, m) {
				wrong = m
				break
			}
		}
		if wrong == "" {
			continue // every method is taken
		}
		// Wildcards get a value no literal segment has, so the path cannot match some other
		// route's more specific pattern.
		concrete := param.ReplaceAllStringFunc(path, func(w string) string {
			if strings.HasSuffix(w, "...}") {
				return "zz-probe/zz-rest"
			}
			return "zz-probe"
		})
		resp := h.Do(wrong, concrete, "", nil)
		if resp.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s (serves %v): %d, want 405", wrong, concrete, served, resp.Status)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: 405 as %q, want problem+json", wrong, concrete, ct)
		}
		allow := strings.Split(resp.Header.Get("Allow"), ", ")
		for _, m := range served {
			if !slices.Contains(allow, m) {
				t.Errorf("%s %s: Allow %q lacks %s", wrong, concrete, resp.Header.Get("Allow"), m)
			}
		}
	}
}

// checkProblemResponses wants every operation to declare 4XX and 5XX answers as
// problem+json, and every authenticated one 401 (with WWW-Authenticate) and 429 (with
// Retry-After): clients generate their error handling from these.
func checkProblemResponses(t *testing.T, doc map[string]any) {
	t.Helper()
	for path, ops := range doc["paths"].(map[string]map[string]any) {
		for method, o := range ops {
			op := o.(map[string]any)
			responses := op["responses"].(map[string]any)
			want := []string{"4XX", "5XX"}
			public := op["security"] != nil
			if !public {
				want = append(want, "401", "429")
			}
			for _, code := range want {
				r, ok := responses[code].(map[string]any)
				if !ok {
					t.Errorf("%s %s: no %s response", method, path, code)
					continue
				}
				ref := dig(r, "content", "application/problem+json", "schema", "$ref")
				if ref != "#/components/schemas/Problem" {
					t.Errorf("%s %s: %s response is not problem+json (schema %v)", method, path, code, ref)
				}
			}
			if public {
				continue
			}
			if dig(responses, "401", "headers", "WWW-Authenticate") == nil {
				t.Errorf("%s %s: 401 does not declare WWW-Authenticate", method, path)
			}
			if dig(responses, "429", "headers", "Retry-After") == nil {
				t.Errorf("%s %s: 429 does not declare Retry-After", method, path)
			}
		}
	}
}

// checkQueryTypes wants every query parameter typed, and the paging ones as PageFrom
// reads them.
func checkQueryTypes(t *testing.T, doc map[string]any) {
	t.Helper()
	for path, ops := range doc["paths"].(map[string]map[string]any) {
		for method, o := range ops {
			ps, _ := o.(map[string]any)["parameters"].([]any)
			for _, x := range ps {
				p := x.(map[string]any)
				if p["in"] != "query" {
					continue
				}
				s, _ := p["schema"].(map[string]any)
				if s["type"] == nil {
					t.Errorf("%s %s: query parameter %v has no type", method, path, p["name"])
				}
				if p["name"] == "limit" && (s["type"] != "integer" || s["minimum"] == nil || s["maximum"] == nil) {
					t.Errorf("%s %s: limit is %v, want an integer with bounds", method, path, s)
				}
			}
		}
	}
}
