package api_test

import (
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The console calls the API in-process; the route's role and plan checks must apply exactly
// as they do for a token, and the caller must show up in the audit log as the person.
func TestCallAppliesRolesAndAudits(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	ctx := t.Context()
	viewer := api.Principal{OrgID: o.ID, Org: o, Role: domain.RoleViewer, UserID: "u-viewer", Via: "session"}
	it := api.Principal{OrgID: o.ID, Org: o, Role: domain.RoleIT, UserID: "u-it", Via: "session"}
	body := map[string]any{"serial_number": "CALL-1", "vendor": "apple", "equipment_type": "laptop"}

	err := h.API.Call(ctx, viewer, "POST", "/api/v1/devices", body, nil)
	ce, ok := api.AsCallError(err)
	if !ok || ce.Status != 403 || ce.Extensions["required_role"] != "it" {
		t.Fatalf("viewer creating a device: %v (%+v), want 403 with required_role it", err, ce)
	}
	var dev domain.Device
	if err := h.API.Call(ctx, it, "POST", "/api/v1/devices", body, &dev); err != nil {
		t.Fatalf("it creating a device: %v", err)
	}
	if dev.SerialNumber != "CALL-1" || dev.ID == "" {
		t.Fatalf("created %+v", dev)
	}
	err = h.API.Call(ctx, it, "POST", "/api/v1/devices", map[string]any{"serial_number": ""}, nil)
	if ce, ok := api.AsCallError(err); !ok || ce.Status != 422 || ce.Detail == "" {
		t.Fatalf("invalid device: %v, want a 422 problem with a detail", err)
	}
	entries, _, err := db.ListAudit(ctx, o.ID, store.AuditFilter{}, store.Page{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Action == "device.created" && e.Actor == "user:u-it" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no device.created by user:u-it in %+v", entries)
	}
}

// A raw body (io.Reader) is sent as it is, not JSON-encoded again: the console's CSV import
// hands the file to the import route this way.
func TestCallSendsARawBody(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	it := api.Principal{OrgID: o.ID, Org: o, Role: domain.RoleIT, UserID: "u-it", Via: "session"}
	var dev domain.Device
	raw := strings.NewReader(`{"serial_number":"RAW-1","vendor":"apple","equipment_type":"laptop"}`)
	if err := h.API.Call(t.Context(), it, "POST", "/api/v1/devices", raw, &dev); err != nil {
		t.Fatalf("raw body: %v", err)
	}
	if dev.SerialNumber != "RAW-1" {
		t.Fatalf("created %+v", dev)
	}
}
