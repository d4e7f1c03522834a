package server

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestCommandChannelsWired builds the whole server and submits a lock through the real
// command model for a Mac with a live MDM enrollment and for a Linux laptop with only an
// agent: the first must go out over MDM, the second over the agent. If the MDM channel
// is not registered with the agent API's command model (the start-up-order bug this
// wiring replaced), the Mac's lock goes to the agent channel and this fails.
func TestCommandChannelsWired(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			url := ""
			if dialect == "postgres" {
				url = storetest.PostgresURL(t)
			}
			ctx := context.Background()
			s, err := New(ctx, testConfig(t, url), quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.DB.Close)
			org := storetest.Org(t, s.DB, domain.PlanPro)

			// A Mac enrolled in MDM (Authenticate, then TokenUpdate).
			mac, err := s.DB.MDMAuthenticate(ctx, store.MDMEnrollment{UDID: "UDID-WIRE-1", OrgID: org.ID, SerialNumber: "C02WIRE0001",
				Model: "MacBookPro18,3", Topic: "com.apple.mgmt.test"})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.DB.MDMSetEnrolled(ctx, mac.UDID); err != nil {
				t.Fatal(err)
			}
			// A Linux laptop known only through its agent's report.
			linux := enrolledAgentDevice(t, s.DB, org.ID, "PFWIRE0001")

			for _, c := range []struct {
				name, deviceID, want string
			}{
				{"mac with MDM", mac.DeviceID, store.ChannelMDM},
				{"linux with agent", linux, store.ChannelAgent},
			} {
				cmd, created, err := s.caps.agentAPI.Commands.Submit(ctx, org, c.deviceID, agentapi.SubmitRequest{Type: store.CommandLock,
					Params: map[string]string{"message": "call IT"}, IdempotencyKey: "wiring-" + c.deviceID})
				if err != nil || !created {
					t.Fatalf("%s: submit lock: created=%v err=%v", c.name, created, err)
				}
				if cmd.Channel != c.want {
					t.Errorf("%s: lock routed to channel %q, want %q", c.name, cmd.Channel, c.want)
				}
				stored, err := s.DB.GetDeviceCommand(ctx, org.ID, cmd.ID)
				if err != nil || stored.Channel != c.want {
					t.Errorf("%s: stored command channel %q (%v), want %q", c.name, stored.Channel, err, c.want)
				}
			}
		})
	}
}

// enrolledAgentDevice enrolls an agent in org (secret exchange) and applies its first full
// report for a Linux laptop with serial; it returns the device the report created.
func enrolledAgentDevice(t *testing.T, db *store.DB, orgID, serial string) string {
	t.Helper()
	ctx := context.Background()
	plain, _, err := enrollment.Mint(ctx, db, orgID, enrollment.Options{Name: "wiring test"})
	if err != nil {
		t.Fatal(err)
	}
	ag := store.Agent{Hostname: "wire-linux", SerialNumber: serial, HardwareUUID: "4C4C4544-0000-1111-2222-333344445555", Platform: "linux"}
	if _, err := db.ExchangeEnrollmentSecret(ctx, enrollment.Hash(plain), &ag); err != nil {
		t.Fatal(err)
	}
	out, err := db.ApplyInventory(ctx, orgID, ag.ID, store.InventoryReport{Full: true, Serial: serial, HardwareUUID: ag.HardwareUUID,
		Vendor: "Lenovo", Model: "ThinkPad T14", Platform: domain.PlatformLinux, Hostname: "wire-linux"})
	if err != nil || out.DeviceID == "" {
		t.Fatalf("first report: %+v %v", out, err)
	}
	return out.DeviceID
}
