package apple_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
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

// TestEraseConfirmation: an EraseDevice the Mac acknowledged is done at once; it is
// confirmed "re-enrolled" when the Mac enrolls again, or "stopped checking in" when it
// stays silent for EraseSilence; a Mac that keeps checking in stays unconfirmed. An
// unlock for a Mac enrolled in MDM is refused (409): it is unlocked at the Mac.
func TestEraseConfirmation(t *testing.T) {
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
		erase := func(serial string) (*macsim.Mac, store.DeviceCommand) {
			mac := h.newMac(serial)
			h.enroll(mac, h.emp.ID)
			h.idle(mac)
			dev := h.enrollment(mac.UDID).DeviceID
			r := a.Do("POST", "/api/v1/devices/"+dev+"/actions", admin, agentapi.ActionRequest{Type: "wipe", Confirm: serial})
			var cmd store.DeviceCommand
			r.JSON(t, &cmd)
			if r.Status != http.StatusCreated || cmd.Channel != store.ChannelMDM {
				t.Fatalf("wipe %d %s", r.Status, r.Body)
			}
			eventually(t, "erase done", func() bool {
				c, err := db.GetDeviceCommand(ctx, h.org.ID, cmd.ID)
				return err == nil && c.State == store.CommandDone
			})
			h.idle(mac)
			c, _ := db.GetDeviceCommand(ctx, h.org.ID, cmd.ID)
			if c.ConfirmedAt != nil || c.ReceivedAt == nil || c.CompletedAt == nil || !mac.Erased() {
				t.Fatalf("erase %+v erased=%v", c, mac.Erased())
			}
			return mac, c
		}

		// Re-enrollment confirms.
		mac1, e1 := erase("C02ERA00001")
		if r := a.Do("POST", "/api/v1/devices/"+e1.DeviceID+"/actions", admin, agentapi.ActionRequest{Type: "unlock"}); r.Status != http.StatusConflict ||
			!strings.Contains(string(r.Body), "PIN") {
			t.Fatalf("unlock over MDM: %d %s", r.Status, r.Body)
		}
		h.enroll(mac1, h.emp.ID)
		h.idle(mac1)
		c1, _ := db.GetDeviceCommand(ctx, h.org.ID, e1.ID)
		if c1.Confirmation != store.ConfirmReenrolled || c1.ConfirmedAt == nil {
			t.Fatalf("after re-enrollment %+v", c1)
		}

		// Silence confirms: a Mac that never checks in again after its Acknowledged.
		_, e3 := erase("C02ERA00003")
		// A Mac that keeps checking in after its Acknowledged did not erase.
		mac2, e2 := erase("C02ERA00002")
		h.clock.Advance(10 * time.Minute)
		mac2.Wake()
		mac2.Wait()
		h.clock.Advance(apple.EraseSilence + time.Hour)
		if _, err := h.svc.RepushOnce(ctx); err != nil {
			t.Fatal(err)
		}
		c2, _ := db.GetDeviceCommand(ctx, h.org.ID, e2.ID)
		c3, _ := db.GetDeviceCommand(ctx, h.org.ID, e3.ID)
		if c2.ConfirmedAt != nil {
			t.Fatalf("a Mac that kept checking in was confirmed erased: %+v", c2)
		}
		if c3.Confirmation != store.ConfirmStoppedCheckingIn || c3.ConfirmedAt == nil {
			t.Fatalf("silent Mac %+v", c3)
		}
		rows, _, _ := db.ListAudit(ctx, h.org.ID, store.AuditFilter{TargetID: e3.ID, Action: "device_command.confirmed"}, store.Page{})
		if len(rows) != 1 || !strings.Contains(string(rows[0].After), "stopped checking in") {
			t.Fatalf("confirmation audit %+v", rows)
		}
		// The shared command JSON carries the confirmation.
		r := a.Do("GET", "/api/v1/device-actions/"+e3.ID, admin, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"confirmation":"stopped checking in"`) || !strings.Contains(string(r.Body), `"confirmed_at"`) {
			t.Fatalf("action JSON %d %s", r.Status, r.Body)
		}
	})
}
