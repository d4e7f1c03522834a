package agentapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

func TestAdminRoutes(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		h := apitest.New(t, db, api.Options{Detailers: []api.DeviceDetailer{e.srv}}, e.srv.Routes())
		admin := h.Token(e.org.ID, domain.RoleAdmin)
		admin2 := h.Token(e.org.ID, domain.RoleOwner)
		it := h.Token(e.org.ID, domain.RoleIT)

		// Enrollment secrets: create (plaintext once), list (no plaintext), rotate, revoke.
		r := h.Do("POST", "/api/v1/enrollment-secrets", admin, map[string]any{"name": "office", "max_uses": 5})
		if r.Status != http.StatusCreated {
			t.Fatalf("create secret %d %s", r.Status, r.Body)
		}
		var created struct {
			Secret    store.EnrollmentSecret `json:"secret"`
			Plaintext string                 `json:"plaintext"`
			CA        string                 `json:"ca_fingerprint_sha256"`
		}
		r.JSON(t, &created)
		if !strings.HasPrefix(created.Plaintext, "lyes_") || created.CA != e.ca.RootFingerprint() || created.Secret.MaxUses != 5 {
			t.Fatalf("created %+v", created)
		}
		r = h.Do("GET", "/api/v1/enrollment-secrets", admin, nil)
		if r.Status != 200 || strings.Contains(string(r.Body), created.Plaintext) || !strings.Contains(string(r.Body), created.Secret.ID) {
			t.Fatalf("list secrets %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/enrollment-secrets", it, nil); r.Status != http.StatusForbidden {
			t.Fatalf("it role listed secrets: %d", r.Status)
		}
		ag := e.enroll(created.Plaintext, "SN-API", "uuid-api")
		dev := linuxDevice(t, db, e.org.ID, "SN-API")
		if _, err := e.agentClient(&ag.Cert).ReportInventory(ctx, inventory("SN-API")); err != nil {
			t.Fatal(err)
		}
		r = h.Do("POST", "/api/v1/enrollment-secrets/"+created.Secret.ID+"/rotate", admin, map[string]any{})
		if r.Status != http.StatusCreated {
			t.Fatalf("rotate %d %s", r.Status, r.Body)
		}
		if a, _ := db.GetAgent(ctx, e.org.ID, ag.ID); a.RevokedAt != nil {
			t.Fatal("rotation revoked the enrolled agent (revoke_agents defaults to false)")
		}

		// The device view carries tracking.
		r = h.Do("GET", "/api/v1/devices/"+dev.ID, admin, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"tracking"`) || !strings.Contains(string(r.Body), ag.ID) {
			t.Fatalf("device view %d %s", r.Status, r.Body)
		}

		// Actions: wipe needs admin and the serial; duplicate key → same command (200).
		if r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", it, map[string]any{"type": "wipe", "confirm": "SN-API"}); r.Status != http.StatusForbidden {
			t.Fatalf("it role wiped: %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", admin, map[string]any{"type": "wipe"}); r.Status != http.StatusUnprocessableEntity ||
			!strings.Contains(string(r.Body), `a wipe needs \"confirm\"`) {
			t.Fatalf("wipe without confirm: %d %s", r.Status, r.Body)
		}
		// A typed serial that is not this device's is told apart from a missing one.
		if r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", admin, map[string]any{"type": "wipe", "confirm": "SN-OTHER"}); r.Status != http.StatusUnprocessableEntity ||
			!strings.Contains(string(r.Body), "does not match this device") {
			t.Fatalf("wipe with another serial: %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", admin, map[string]any{"type": "explode"}); r.Status != http.StatusBadRequest {
			t.Fatalf("bad type: %d %s", r.Status, r.Body)
		}
		r = h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", it, map[string]any{"type": "lock", "idempotency_key": "k-1", "params": map[string]string{"message": "hi"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("lock %d %s", r.Status, r.Body)
		}
		var lock store.DeviceCommand
		r.JSON(t, &lock)
		r = h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", it, map[string]any{"type": "lock", "idempotency_key": "k-1"})
		var again store.DeviceCommand
		r.JSON(t, &again)
		if r.Status != http.StatusOK || again.ID != lock.ID {
			t.Fatalf("duplicate lock %d %s", r.Status, r.Body)
		}
		r = h.Do("GET", "/api/v1/devices/"+dev.ID+"/actions", it, nil)
		var list api.List[store.DeviceCommand]
		r.JSON(t, &list)
		if len(list.Items) != 1 {
			t.Fatalf("actions list %s", r.Body)
		}

		// An org setting requires a second admin for wipes.
		o, _ := db.GetOrg(ctx, e.org.ID)
		o.Settings.WipeRequiresApproval = true
		if _, err := db.UpdateOrg(ctx, o); err != nil {
			t.Fatal(err)
		}
		r = h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", admin, map[string]any{"type": "wipe", "confirm": "sn-api"})
		var wipe store.DeviceCommand
		r.JSON(t, &wipe)
		if r.Status != http.StatusCreated || wipe.State != store.CommandAwaitingApproval {
			t.Fatalf("wipe %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/device-actions/"+wipe.ID+"/approve", admin, nil); r.Status != http.StatusForbidden {
			t.Fatalf("self-approval: %d %s", r.Status, r.Body)
		}
		r = h.Do("POST", "/api/v1/device-actions/"+wipe.ID+"/approve", admin2, nil)
		var approved store.DeviceCommand
		r.JSON(t, &approved)
		if r.Status != 200 || approved.State != store.CommandQueued || approved.ApprovedBy == "" {
			t.Fatalf("approve %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/device-actions/"+wipe.ID+"/cancel", it, nil); r.Status != 200 {
			t.Fatalf("cancel %d %s", r.Status, r.Body)
		}

		// Revoking the device's agents cuts it off.
		r = h.Do("POST", "/api/v1/devices/"+dev.ID+"/revoke-agents", admin, map[string]any{"reason": "lost"})
		if r.Status != 200 || !strings.Contains(string(r.Body), ag.ID) {
			t.Fatalf("revoke %d %s", r.Status, r.Body)
		}
		_, err := e.agentClient(&ag.Cert).ReportInventory(ctx, &agentv1.ReportInventoryRequest{Full: true, Inventory: &agentv1.Inventory{}})
		if err == nil {
			t.Fatal("revoked agent still reports")
		}
		if r := h.Do("GET", "/api/v1/devices/"+dev.ID+"/inventory-history", it, nil); r.Status != 200 || !strings.Contains(string(r.Body), "network_interfaces") {
			t.Fatalf("history %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/agent-ca", it, nil); r.Status != 200 || !strings.Contains(string(r.Body), "BEGIN CERTIFICATE") {
			t.Fatalf("ca %d", r.Status)
		}

		// Tenant isolation and plan gates over every route of this table.
		orgB := storetest.Org(t, db, domain.PlanPro)
		apitest.CheckIsolation(t, h, h.Token(orgB.ID, domain.RoleOwner), apitest.Fixtures{
			"device": dev.ID, "device_action": lock.ID, "enrollment_secret": created.Secret.ID})
		orgHR := storetest.Org(t, db, domain.PlanHR)
		if r := h.Do("GET", "/api/v1/devices/"+dev.ID+"/actions", h.Token(orgHR.ID, domain.RoleOwner), nil); r.Status != http.StatusPaymentRequired && r.Status != http.StatusForbidden {
			t.Fatalf("hr plan got %d", r.Status)
		}
	})
}

// TestOpenAPIDocumentsOutcomes: the generated document names every command state and
// type and describes the evidence and its checks.
func TestOpenAPIDocumentsOutcomes(t *testing.T) {
	db := storetest.NewSQLite(t)
	e := newEnv(t, db, domain.PlanPro)
	h := apitest.New(t, db, api.Options{}, e.srv.Routes())
	b, err := json.Marshal(h.API.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum  []string `json:"enum"`
					Ref   string   `json:"$ref"`
					Items struct {
						Ref string `json:"$ref"`
					} `json:"items"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Components.Schemas
	cmd := s["DeviceCommand"].Properties
	if got := strings.Join(cmd["state"].Enum, ","); got != "awaiting_approval,queued,sent,received,running,done,failed,expired,canceled,simulated" {
		t.Fatalf("state enum %q", got)
	}
	if !strings.Contains(strings.Join(cmd["type"].Enum, ","), "unlock") || cmd["evidence"].Ref != "#/components/schemas/CommandEvidence" {
		t.Fatalf("command schema %+v", cmd)
	}
	for _, f := range []string{"received_at", "started_at", "completed_at", "confirmed_at", "confirmation"} {
		if _, ok := cmd[f]; !ok {
			t.Errorf("DeviceCommand has no %s", f)
		}
	}
	ev := s["CommandEvidence"].Properties
	if ev["checks"].Items.Ref != "#/components/schemas/CommandCheck" || len(ev["wipe_method"].Enum) != 3 || ev["mode"].Ref == "" {
		t.Fatalf("evidence schema %+v", ev)
	}
	if _, ok := s["TrackingView"].Properties["agent_mode"]; !ok {
		t.Fatalf("tracking view has no agent_mode: %+v", s["TrackingView"])
	}
}
