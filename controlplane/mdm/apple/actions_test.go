package apple_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestDeviceActionsPickMDM: the shared admin action (POST /api/v1/devices/{id}/actions,
// what `lanyardctl devices lock|wipe` calls) on a Mac enrolled in MDM goes over MDM.
func TestDeviceActionsPickMDM(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		agent, err := agentapi.Open(ctx, db, h.keys, agentapi.Config{AgentAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		agent.Commands.RegisterChannel(h.svc.Channel())
		a := apitest.New(t, db, api.Options{}, agent.Routes(), h.svc.Routes())
		admin := a.Token(h.org.ID, domain.RoleAdmin)

		mac := h.newMac("C02ACT00001")
		h.enroll(mac, h.emp.ID)
		h.idle(mac)
		dev := h.enrollment(mac.UDID).DeviceID

		r := a.Do("POST", "/api/v1/devices/"+dev+"/actions", admin, agentapi.ActionRequest{Type: "lock", Params: map[string]string{"message": "IT"}})
		var cmd store.DeviceCommand
		r.JSON(t, &cmd)
		if r.Status >= 300 || cmd.Channel != store.ChannelMDM {
			t.Fatalf("lock action: %d %s", r.Status, r.Body)
		}
		eventually(t, "lock done over MDM", func() bool {
			c, err := db.GetDeviceCommand(ctx, h.org.ID, cmd.ID)
			return err == nil && c.State == store.CommandDone
		})
		h.idle(mac)
		if l, _ := mac.Locked(); !l {
			t.Fatal("mac not locked")
		}
		// The PIN of a shared lock command is revealed through the MDM route (same id).
		if r := a.Do("GET", "/api/v1/mdm/commands/"+cmd.ID+"/pin", admin, nil); r.Status != http.StatusOK {
			t.Fatalf("pin of shared command: %d %s", r.Status, r.Body)
		}

		r = a.Do("POST", "/api/v1/devices/"+dev+"/actions", admin, agentapi.ActionRequest{Type: "wipe", Confirm: "C02ACT00001"})
		r.JSON(t, &cmd)
		if r.Status >= 300 || cmd.Channel != store.ChannelMDM {
			t.Fatalf("wipe action: %d %s", r.Status, r.Body)
		}
		eventually(t, "wipe done over MDM", func() bool {
			c, err := db.GetDeviceCommand(ctx, h.org.ID, cmd.ID)
			return err == nil && c.State == store.CommandDone
		})
		h.idle(mac)
		if !mac.Erased() {
			t.Fatal("mac not erased")
		}
	})
}
