package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// apiFixtures creates capability resources through the API as org A's owner, so the
// generated isolation test probes other org's real ids rather than random ones.
func apiFixtures(t *testing.T, s *Server, org domain.Org) map[string]string {
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	_, token, err := s.DB.CreateToken(t.Context(), org.ID, "fixtures", domain.RoleOwner, nil)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, body any, pick func(map[string]any) any) string {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("fixture %s: %v", path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if resp.StatusCode >= 300 || json.Unmarshal(raw, &m) != nil {
			t.Fatalf("fixture %s: %d %s", path, resp.StatusCode, raw)
		}
		id, _ := pick(m).(string)
		if id == "" {
			t.Fatalf("fixture %s: no id in %s", path, raw)
		}
		return id
	}
	byID := func(m map[string]any) any { return m["id"] }
	emp := storetest.Employee(t, s.DB, org.ID, "Fixture")
	return map[string]string{
		"enrollment_secret": post("/api/v1/enrollment-secrets", map[string]any{"name": "iso"},
			func(m map[string]any) any { sec, _ := m["secret"].(map[string]any); return sec["id"] }),
		"warehouse":         post("/api/v1/warehouses", map[string]any{"name": "Iso WH", "address": map[string]string{"line1": "1 Main St", "city": "NYC", "country": "US"}}, byID),
		"procurement_order": post("/api/v1/procurement/orders", map[string]any{"vendor": "apple", "equipment_type": "laptop", "price_cents": 199900}, byID),
		"app_rule":          post("/api/v1/apps/rules", map[string]any{"department": "Engineering", "apps": []map[string]any{{"app": "github"}}}, byID),
		"workflow":          post("/api/v1/workflows", map[string]any{"kind": "offboarding", "employee_id": emp.ID}, byID),
	}
}
