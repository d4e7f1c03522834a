package agentapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// TestNoFirmwareSerialBecomesDevice drives a real agent API: a PC whose firmware serial is
// a placeholder enrolls and reports an empty serial with its hardware UUID (as the agent
// does); it becomes a device known by the UUID, the tracking view says so and flags it for
// review, and a lock reaches the agent addressed to that UUID.
func TestNoFirmwareSerialBecomesDevice(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		h := apitest.New(t, db, api.Options{Detailers: []api.DeviceDetailer{e.srv}}, e.srv.Routes())
		admin := h.Token(e.org.ID, domain.RoleAdmin)
		const uuid = "03d502e0-045e-05a4-2f06-1f0700080009"
		want := strings.ToUpper(uuid)

		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		ag := e.enroll(secret, "To be filled by O.E.M.", uuid)
		req := inventory("")
		req.Inventory.Hardware = &agentv1.Hardware{SerialNumber: "", HardwareUuid: uuid, Vendor: "ASUS", Model: "PRIME B450"}
		res, err := e.agentClient(&ag.Cert).ReportInventory(ctx, req)
		if err != nil || res.GetDeviceId() == "" || !res.GetNeedsReview() {
			t.Fatalf("report: %v %v", res, err)
		}
		devID := res.GetDeviceId()

		var tr store.DeviceTracking
		r := h.Do("GET", "/api/v1/devices/"+devID+"/tracking", admin, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("tracking %d %s", r.Status, r.Body)
		}
		r.JSON(t, &tr)
		if tr.IdentitySource != domain.IdentityHardwareUUID || !tr.NeedsReview || tr.ReviewReason != domain.ReviewNoFirmwareSerial || tr.AgentID != ag.ID {
			t.Fatalf("tracking %+v", tr)
		}
		var view struct {
			SerialNumber string `json:"serial_number"`
			Details      struct {
				Tracking store.DeviceTracking `json:"tracking"`
			} `json:"details"`
		}
		r = h.Do("GET", "/api/v1/devices/"+devID, admin, nil)
		r.JSON(t, &view)
		if view.SerialNumber != want || view.Details.Tracking.IdentitySource != domain.IdentityHardwareUUID {
			t.Fatalf("device view %d %s", r.Status, r.Body)
		}

		sim, stop := e.connect(t, ag, false)
		defer stop()
		r = h.Do("POST", "/api/v1/devices/"+devID+"/actions", admin, map[string]any{"type": "lock", "params": map[string]string{"message": "call IT"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("lock %d %s", r.Status, r.Body)
		}
		select {
		case c := <-sim.cmds:
			if c.GetType() != agentv1.CommandType_COMMAND_TYPE_LOCK || c.GetTargetSerial() != want {
				t.Fatalf("agent got %v for target %q, want a lock for %q", c.GetType(), c.GetTargetSerial(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the lock never reached the agent")
		}

		// The admin checks the machine and marks it reviewed; its next report (same
		// identity) does not flag it again.
		r = h.Do("POST", "/api/v1/devices/"+devID+"/review", h.Token(e.org.ID, domain.RoleIT), map[string]any{"note": "asset tag checked"})
		if r.Status != http.StatusOK {
			t.Fatalf("review %d %s", r.Status, r.Body)
		}
		if res, err := e.agentClient(&ag.Cert).ReportInventory(ctx, req); err != nil || res.GetNeedsReview() {
			t.Fatalf("report after review: %v %v", res, err)
		}
		r = h.Do("GET", "/api/v1/devices/"+devID+"/tracking", admin, nil)
		tr = store.DeviceTracking{}
		r.JSON(t, &tr)
		if tr.NeedsReview || tr.ReviewReason != "" || tr.IdentitySource != domain.IdentityHardwareUUID {
			t.Fatalf("tracking after review %+v", tr)
		}
		if n := count(t, db, "audit_log WHERE action = 'device.review_resolved' AND target_id = $1", devID); n != 1 {
			t.Fatalf("%d review_resolved audit rows", n)
		}
	})
}
