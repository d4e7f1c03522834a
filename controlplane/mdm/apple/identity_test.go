package apple_test

import (
	"context"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestEnrollUnknownSerialFlagged: a Mac the org never recorded that enrolls through a
// link becomes a device flagged for review (as an agent report of an unknown serial is);
// a Mac the org has is joined without a flag.
func TestEnrollUnknownSerialFlagged(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		known := storetest.Device(t, db, h.org.ID, "C02KNOWN0MDM")
		for _, c := range []struct {
			serial  string
			flagged bool
		}{{"C02NEW00MDM1", true}, {known.SerialNumber, false}} {
			mac := h.newMac(c.serial)
			h.enroll(mac, h.emp.ID)
			e := h.enrollment(mac.UDID)
			tr, err := db.GetDeviceTracking(ctx, h.org.ID, e.DeviceID)
			if err != nil {
				t.Fatal(err)
			}
			if tr.NeedsReview != c.flagged {
				t.Fatalf("%s: needs_review %v, want %v (%+v)", c.serial, tr.NeedsReview, c.flagged, tr)
			}
			if c.flagged && tr.ReviewReason != store.UnknownSerialReason("MDM enrollment "+mac.UDID) {
				t.Fatalf("%s: review reason %q", c.serial, tr.ReviewReason)
			}
			if !c.flagged && e.DeviceID != known.ID {
				t.Fatalf("known Mac joined %s, want %s", e.DeviceID, known.ID)
			}
		}
	})
}
