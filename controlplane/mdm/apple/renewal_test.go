package apple_test

import (
	"context"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestIdentityRenewal: 30 days before the SCEP identity expires the Mac is sent a fresh
// enrollment profile; it re-runs SCEP and re-Authenticates, and keeps working.
func TestIdentityRenewal(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		mac := h.newMac("C02REN00001")
		h.enroll(mac, h.emp.ID)
		h.idle(mac)
		before := h.enrollment(mac.UDID)
		oldCert, _ := mac.Identity()
		if before.IdentityNotAfter == nil || !before.IdentityNotAfter.Equal(oldCert.NotAfter.UTC()) {
			t.Fatalf("identity expiry not recorded: %v vs %v", before.IdentityNotAfter, oldCert.NotAfter)
		}
		// Not due yet: nothing happens.
		if _, err := h.svc.RepushOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if mac.Renewals() != 0 {
			t.Fatal("renewed too early")
		}
		h.clock.Advance(340 * 24 * time.Hour)
		if _, err := h.svc.RepushOnce(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, "identity renewed", func() bool { return mac.Renewals() == 1 })
		h.idle(mac)
		newCert, _ := mac.Identity()
		if newCert.SerialNumber.Cmp(oldCert.SerialNumber) == 0 {
			t.Fatal("identity not replaced")
		}
		after := h.enrollment(mac.UDID)
		if after.Status != "enrolled" || after.DeviceID != before.DeviceID || !after.IdentityNotAfter.Equal(newCert.NotAfter.UTC()) {
			t.Fatalf("after renewal: %+v", after)
		}
		// The renewed Mac still takes commands (certauth accepted the new identity).
		res, err := h.svc.Enqueue(ctx, after, apple.CommandSpec{RequestType: apple.ReqDeviceInformation}, apple.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "command after renewal", func() bool { return h.command(res.Command.UUID).State == store.MDMCmdDone })
		h.idle(mac)
		if errs := mac.Errors(); len(errs) > 0 {
			t.Fatalf("mac errors: %v", errs)
		}
	})
}
