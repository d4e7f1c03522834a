package api_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	h := apitest.New(t, storetest.NewSQLite(t), api.Options{})
	apitest.CheckOpenAPI(t, h.API)
	resp := h.Do("GET", "/api/openapi.json", "", nil)
	if resp.Status != 200 || !strings.Contains(string(resp.Body), `"openapi":"3.1.0"`) {
		t.Fatalf("GET /api/openapi.json: %d %s", resp.Status, resp.Body[:min(200, len(resp.Body))])
	}
}

func TestTenantIsolationAndRoles(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := apitest.New(t, db, api.Options{})
		a, b := storetest.Org(t, db, domain.PlanPro), storetest.Org(t, db, domain.PlanPro)
		emp := storetest.Employee(t, db, a.ID, "Ada")
		dev := storetest.Device(t, db, a.ID, "ISO-1")
		tokA, _, err := db.CreateToken(t.Context(), a.ID, "a", domain.RoleViewer, nil)
		if err != nil {
			t.Fatal(err)
		}
		fx := apitest.Fixtures{"device": dev.ID, "employee": emp.ID, "token": tokA.ID}
		t.Run("isolation", func(t *testing.T) { apitest.CheckIsolation(t, h, h.Token(b.ID, domain.RoleOwner), fx) })
		t.Run("roles", func(t *testing.T) { apitest.CheckRoles(t, h, a.ID) })
	})
}

func TestBadInput(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	tok := h.Token(o.ID, domain.RoleIT)
	emp := storetest.Employee(t, db, o.ID, "Bo")
	tests := []struct {
		name, method, path string
		body               any
		status             int
		problem            string
	}{
		{"malformed json", "POST", "/api/v1/devices", `{"serial_number":`, 400, "bad-request"},
		{"unknown field", "POST", "/api/v1/devices", `{"serial_number":"A1","vendor":"apple","equipment_type":"laptop","colour":"red"}`, 400, "bad-request"},
		{"wrong type", "POST", "/api/v1/devices", `{"serial_number":42,"vendor":"apple","equipment_type":"laptop"}`, 400, "bad-request"},
		{"control characters in serial", "POST", "/api/v1/devices", `{"serial_number":"AB\u0007C","vendor":"apple","equipment_type":"laptop"}`, 422, "validation"},
		{"oversized body", "POST", "/api/v1/devices", `{"notes":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`, 413, "body-too-large"},
		{"two objects", "POST", "/api/v1/devices", `{} {}`, 400, "bad-request"},
		{"bad cursor", "GET", "/api/v1/devices?cursor=%25%25", nil, 400, "bad-request"},
		{"bad limit", "GET", "/api/v1/devices?limit=0", nil, 400, "bad-request"},
		{"ESC in model", "POST", "/api/v1/devices", `{"serial_number":"E1","vendor":"apple","equipment_type":"laptop","model":"Mac\u001b[2J"}`, 422, "validation"},
		{"CR in vendor", "POST", "/api/v1/devices", `{"serial_number":"E2","vendor":"apple\rok","equipment_type":"laptop"}`, 422, "validation"},
		{"bidi override in notes", "POST", "/api/v1/devices", `{"serial_number":"E3","vendor":"apple","equipment_type":"laptop","notes":"\u202eevil"}`, 422, "validation"},
		{"500,000-character notes", "PATCH", "/api/v1/employees/" + emp.ID, `{"notes":"` + strings.Repeat("x", 500_000) + `"}`, 422, "validation"},
		{"over-long model", "POST", "/api/v1/devices", `{"serial_number":"E4","vendor":"apple","equipment_type":"laptop","model":"` + strings.Repeat("m", api.DefaultMaxLen+1) + `"}`, 422, "validation"},
		{"HR field edit", "PATCH", "/api/v1/employees/" + emp.ID, `{"first_name":"Robert"}`, 422, "hr-managed-field"},
		{"invalid state", "POST", "/api/v1/devices", `{"serial_number":"Z1","vendor":"apple","equipment_type":"laptop","state":"assigned"}`, 422, "validation"},
		{"no token", "GET", "/api/v1/devices", nil, 401, "unauthorized"},
		{"unknown route", "GET", "/api/v1/nope", nil, 404, "not-found"},
	}
	audits := func() int {
		var n int
		if err := db.SQL.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_log WHERE org_id = $1`, o.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	auditsBefore := audits()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := tok
			if tc.status == 401 {
				token = ""
			}
			resp := h.Do(tc.method, tc.path, token, tc.body)
			if resp.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, tc.status, resp.Body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if got := resp.Map(t)["type"]; got != api.ProblemBase+tc.problem {
				t.Fatalf("problem type %v, want %s", got, tc.problem)
			}
		})
	}
	list, _, _ := db.ListDevices(t.Context(), o.ID, store.DeviceFilter{}, store.Page{})
	if len(list) != 0 {
		t.Fatalf("bad requests wrote %d devices", len(list))
	}
	if n := audits(); n != auditsBefore {
		t.Fatalf("bad requests wrote %d audit rows", n-auditsBefore)
	}
	// The problem names the field, and multi-line notes still work.
	resp := h.Do("POST", "/api/v1/devices", tok, `{"serial_number":"E5","vendor":"apple","equipment_type":"laptop","model":"a\u0007b"}`)
	if f := resp.Map(t)["field"]; resp.Status != 422 || f != "model" {
		t.Fatalf("%d field %v: %s", resp.Status, f, resp.Body)
	}
	resp = h.Do("POST", "/api/v1/devices", tok, `{"serial_number":"E6","vendor":"apple","equipment_type":"laptop","notes":"line 1\nline 2"}`)
	if resp.Status != http.StatusCreated {
		t.Fatalf("multi-line notes: %d %s", resp.Status, resp.Body)
	}
}

func TestDeviceLifecycleOverAPI(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := apitest.New(t, db, api.Options{})
		o := storetest.Org(t, db, domain.PlanPro)
		tok := h.Token(o.ID, domain.RoleIT)
		emps := []domain.Employee{storetest.Employee(t, db, o.ID, "A"), storetest.Employee(t, db, o.ID, "B")}
		resp := h.Do("POST", "/api/v1/devices", tok, map[string]any{"serial_number": " c02abc ", "vendor": "Apple", "equipment_type": "laptop", "platform": "macos"})
		if resp.Status != 201 {
			t.Fatalf("create: %d %s", resp.Status, resp.Body)
		}
		var d domain.Device
		resp.JSON(t, &d)
		if d.SerialNumber != "C02ABC" || d.Vendor != "apple" || d.State != domain.StateInStock {
			t.Fatalf("normalized device: %+v", d)
		}
		// Concurrent assignment to two employees: exactly one wins, the other gets 409.
		var wg sync.WaitGroup
		codes := make([]int, len(emps))
		for i, e := range emps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = h.Do("POST", "/api/v1/devices/"+d.ID+"/assign", tok, map[string]string{"employee_id": e.ID}).Status
			}()
		}
		wg.Wait()
		if !((codes[0] == 200 && codes[1] == 409) || (codes[0] == 409 && codes[1] == 200)) {
			t.Fatalf("concurrent assign codes %v, want one 200 and one 409", codes)
		}
		resp = h.Do("POST", "/api/v1/devices/"+d.ID+"/transition", tok, map[string]string{"state": "cleaning"})
		if resp.Status != 409 || resp.Map(t)["type"] != api.ProblemBase+"invalid-transition" {
			t.Fatalf("invalid transition: %d %s", resp.Status, resp.Body)
		}
		for _, st := range []string{"in_use", "retrieval_requested", "received"} {
			if resp = h.Do("POST", "/api/v1/devices/"+d.ID+"/transition", tok, map[string]string{"state": st}); resp.Status != 200 {
				t.Fatalf("transition %s: %d %s", st, resp.Status, resp.Body)
			}
		}
		var hist api.List[domain.Assignment]
		h.Do("GET", "/api/v1/devices/"+d.ID+"/assignments", tok, nil).JSON(t, &hist)
		if len(hist.Items) != 1 || hist.Items[0].UnassignedAt == nil {
			t.Fatalf("history: %+v", hist.Items)
		}
		var audit api.List[domain.AuditEntry]
		admin := h.Token(o.ID, domain.RoleAdmin)
		h.Do("GET", "/api/v1/audit?target_id="+d.ID, admin, nil).JSON(t, &audit)
		if len(audit.Items) != 5 { // created, assigned, 3 transitions
			t.Fatalf("audit has %d entries for the device, want 5: %+v", len(audit.Items), audit.Items)
		}
		for _, e := range audit.Items[1:] {
			if !strings.HasPrefix(e.Actor, "token:") || e.RequestID == "" {
				t.Fatalf("audit entry lacks actor or request id: %+v", e)
			}
		}
	})
}

func TestPlanGate(t *testing.T) {
	db := storetest.NewSQLite(t)
	gated := []api.Route{{Method: "GET", Path: "/api/v1/test/mdm", Role: domain.RoleViewer, Feature: domain.FeatureMDM,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			return api.JSON(w, 200, map[string]bool{"ok": true})
		}}}
	h := apitest.New(t, db, api.Options{}, gated)
	for _, plan := range []domain.Plan{domain.PlanHR, domain.PlanEssentials, domain.PlanPro} {
		t.Run(string(plan), func(t *testing.T) {
			o := storetest.Org(t, db, plan)
			resp := h.Do("GET", "/api/v1/test/mdm", h.Token(o.ID, domain.RoleViewer), nil)
			want := 402
			if plan == domain.PlanPro {
				want = 200
			}
			if resp.Status != want {
				t.Fatalf("status %d, want %d", resp.Status, want)
			}
			if want == 402 && resp.Map(t)["required_plan"] != "pro" {
				t.Fatalf("problem does not name the plan: %s", resp.Body)
			}
		})
	}
}

func TestDatabaseDownAnswers503(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	tok := h.Token(o.ID, domain.RoleViewer)
	db.SQL.Close()
	resp := h.Do("GET", "/readyz", "", nil)
	if resp.Status != 503 {
		t.Fatalf("/readyz with the database closed: %d", resp.Status)
	}
	resp = h.Do("GET", "/api/v1/devices", tok, nil)
	if resp.Status != 503 {
		t.Fatalf("request with database closed: %d %s", resp.Status, resp.Body)
	}
}
