package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

const pcUUID = "4c4c4544-0042-3510-8056-b7c04f4e3332" // as Linux's product_uuid reads: lower case

func uuidReport(serial, uuid string) store.InventoryReport {
	r := report(serial, map[string]string{"os": `{"name":"Ubuntu"}`})
	r.HardwareUUID, r.Platform, r.Vendor, r.Model = uuid, domain.PlatformLinux, "Gigabyte", "B550"
	return r
}

func agentWith(t *testing.T, db *store.DB, orgID, serial, uuid string) store.Agent {
	t.Helper()
	hash := "h-" + domain.NewID()
	newSecret(t, db, orgID, hash, 0, nil)
	a := store.Agent{SerialNumber: serial, HardwareUUID: uuid, Platform: "linux"}
	if _, err := db.ExchangeEnrollmentSecret(context.Background(), hash, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func devicesOf(t *testing.T, db *store.DB, orgID string) []domain.Device {
	t.Helper()
	ds, _, err := db.ListDevices(context.Background(), orgID, store.DeviceFilter{}, store.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func auditCount(t *testing.T, db *store.DB, orgID, action, targetID string) int {
	t.Helper()
	var n int
	if err := db.SQL.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE org_id = $1 AND action = $2 AND target_id = $3`, orgID, action, targetID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHardwareUUIDIdentity: a PC whose firmware has no usable serial becomes a device
// known by its hardware UUID (upper case), flagged for review; it stays that one device
// through repeated and delta reports (the fast paths included) and a re-enrollment; when
// its firmware later reports a serial the same device takes it, flagged, and no second
// device appears.
func TestHardwareUUIDIdentity(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		want := strings.ToUpper(pcUUID)

		a := agentWith(t, db, org.ID, "To be filled by O.E.M.", pcUUID)
		if a.SerialNumber != want || a.HardwareUUID != want {
			t.Fatalf("enrolled agent serial %q uuid %q, want both %q", a.SerialNumber, a.HardwareUUID, want)
		}
		out, err := db.ApplyInventory(ctx, org.ID, a.ID, uuidReport("Default string", pcUUID))
		if err != nil || !out.Created || !out.Linked || !out.NeedsReview || out.DeviceID == "" {
			t.Fatalf("first report: %+v %v", out, err)
		}
		dev, err := db.GetDevice(ctx, org.ID, out.DeviceID)
		if err != nil || dev.SerialNumber != want || dev.Platform != domain.PlatformLinux {
			t.Fatalf("device %+v %v", dev, err)
		}
		tr, err := db.GetDeviceTracking(ctx, org.ID, dev.ID)
		if err != nil || tr.IdentitySource != domain.IdentityHardwareUUID || !tr.NeedsReview || tr.ReviewReason != domain.ReviewNoFirmwareSerial {
			t.Fatalf("tracking %+v %v", tr, err)
		}
		if n := auditCount(t, db, org.ID, "device.review_flagged", dev.ID); n != 1 {
			t.Fatalf("%d review_flagged audit rows, want 1", n)
		}

		// Repeated full reports, a delta without the hardware section and a batch (the
		// Postgres bulk path) all land on the same device and flag nothing new.
		for i, r := range []store.InventoryReport{uuidReport("", pcUUID), {Sections: nil, Hash: "h2"}, uuidReport("0", strings.ToUpper(pcUUID))} {
			outs, err := db.ApplyInventoryBatch(ctx, []store.InventoryItem{{OrgID: org.ID, AgentID: a.ID, Report: r}})
			if err != nil || outs[0].DeviceID != dev.ID || outs[0].Created {
				t.Fatalf("report %d: %+v %v", i, outs, err)
			}
		}
		if n := len(devicesOf(t, db, org.ID)); n != 1 {
			t.Fatalf("%d devices after repeated reports, want 1", n)
		}
		if n := auditCount(t, db, org.ID, "device.review_flagged", dev.ID); n != 1 {
			t.Fatalf("%d review_flagged audit rows after repeated reports, want 1", n)
		}

		// The machine is re-installed: a new agent with the same UUID is the same device.
		b := agentWith(t, db, org.ID, "", pcUUID)
		out, err = db.ApplyInventory(ctx, org.ID, b.ID, uuidReport("", pcUUID))
		if err != nil || out.DeviceID != dev.ID || out.Created || out.SerialConflict {
			t.Fatalf("re-enrolled agent: %+v %v", out, err)
		}

		// A firmware update gives the board its serial: the same device takes it.
		out, err = db.ApplyInventory(ctx, org.ID, b.ID, uuidReport("SN-FIXED-1", pcUUID))
		if err != nil || out.DeviceID != dev.ID || out.Created || !out.NeedsReview {
			t.Fatalf("report with a serial now: %+v %v", out, err)
		}
		ds := devicesOf(t, db, org.ID)
		if len(ds) != 1 || ds[0].SerialNumber != "SN-FIXED-1" {
			t.Fatalf("devices after the firmware fix: %+v", ds)
		}
		tr, _ = db.GetDeviceTracking(ctx, org.ID, dev.ID)
		if tr.IdentitySource != domain.IdentitySerial || !tr.NeedsReview || !strings.Contains(tr.ReviewReason, "SN-FIXED-1") ||
			!strings.Contains(tr.ReviewReason, want) {
			t.Fatalf("tracking after the firmware fix: %+v", tr)
		}
		if n := auditCount(t, db, org.ID, "device.serial_adopted", dev.ID); n != 1 {
			t.Fatalf("%d serial_adopted audit rows, want 1", n)
		}
		// And from then on it is an ordinary serial device (fast path).
		if out, err = db.ApplyInventory(ctx, org.ID, b.ID, uuidReport("sn-fixed-1", pcUUID)); err != nil || out.DeviceID != dev.ID {
			t.Fatalf("report after the fix: %+v %v", out, err)
		}
		if ag, _ := db.GetAgent(ctx, org.ID, b.ID); ag.SerialNumber != "SN-FIXED-1" || ag.DeviceID != dev.ID {
			t.Fatalf("agent after the fix: %+v", ag)
		}
	})
}

// TestIdentityChangesAreFlagged: reports that no longer identify the linked device the
// same way never create a second device.
func TestIdentityChangesAreFlagged(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)

		// A serial device whose firmware stops reporting its serial keeps its serial.
		a := agentWith(t, db, org.ID, "PF-KEEP-1", "11111111-2222-3333-4444-555555555555")
		out, err := db.ApplyInventory(ctx, org.ID, a.ID, uuidReport("PF-KEEP-1", "11111111-2222-3333-4444-555555555555"))
		if err != nil || !out.Created {
			t.Fatalf("first report: %+v %v", out, err)
		}
		keep := out.DeviceID
		out, err = db.ApplyInventory(ctx, org.ID, a.ID, uuidReport("To be filled by O.E.M.", "11111111-2222-3333-4444-555555555555"))
		if err != nil || out.DeviceID != keep || out.Created || !out.NeedsReview {
			t.Fatalf("report without serial: %+v %v", out, err)
		}
		d, _ := db.GetDevice(ctx, org.ID, keep)
		tr, _ := db.GetDeviceTracking(ctx, org.ID, keep)
		if d.SerialNumber != "PF-KEEP-1" || tr.IdentitySource != domain.IdentitySerial || !strings.Contains(tr.ReviewReason, "no firmware serial") {
			t.Fatalf("device %+v tracking %+v", d, tr)
		}
		// Marked reviewed while the condition still holds: the next report flags it again.
		if err := db.ResolveDeviceReview(ctx, org.ID, keep, "looked at it"); err != nil {
			t.Fatal(err)
		}
		if tr, _ = db.GetDeviceTracking(ctx, org.ID, keep); tr.NeedsReview {
			t.Fatalf("still flagged after review: %+v", tr)
		}
		if _, err := db.ApplyInventory(ctx, org.ID, a.ID, uuidReport("", "11111111-2222-3333-4444-555555555555")); err != nil {
			t.Fatal(err)
		}
		if tr, _ = db.GetDeviceTracking(ctx, org.ID, keep); !tr.NeedsReview || !strings.Contains(tr.ReviewReason, "no firmware serial") {
			t.Fatalf("condition still holds but not flagged again: %+v", tr)
		}

		// A UUID device whose firmware now reports a serial another record already has
		// keeps its UUID and names the other record.
		other := storetest.Device(t, db, org.ID, "SN-TAKEN-1")
		u := agentWith(t, db, org.ID, "", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
		out, err = db.ApplyInventory(ctx, org.ID, u.ID, uuidReport("", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"))
		if err != nil || !out.Created {
			t.Fatalf("uuid device: %+v %v", out, err)
		}
		uuidDev := out.DeviceID
		out, err = db.ApplyInventory(ctx, org.ID, u.ID, uuidReport("SN-TAKEN-1", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"))
		if err != nil || out.DeviceID != uuidDev || !out.NeedsReview || out.Created {
			t.Fatalf("serial taken: %+v %v", out, err)
		}
		d, _ = db.GetDevice(ctx, org.ID, uuidDev)
		tr, _ = db.GetDeviceTracking(ctx, org.ID, uuidDev)
		if d.SerialNumber != "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE" || tr.IdentitySource != domain.IdentityHardwareUUID ||
			!strings.Contains(tr.ReviewReason, other.ID) {
			t.Fatalf("device %+v tracking %+v", d, tr)
		}
		if otr, _ := db.GetDeviceTracking(ctx, org.ID, other.ID); otr.AgentID != "" {
			t.Fatalf("the other record was taken over: %+v", otr)
		}

		// Junk serial and junk UUID: no identity at all, nothing linked or created, and two
		// such machines never share a device.
		n := len(devicesOf(t, db, org.ID))
		for i := 0; i < 2; i++ {
			z := agentWith(t, db, org.ID, "0", "00000000-0000-0000-0000-000000000000")
			out, err = db.ApplyInventory(ctx, org.ID, z.ID, uuidReport("System Serial Number", "00000000-0000-0000-0000-000000000000"))
			if err != nil || out.DeviceID != "" || out.Created || !out.NeedsReview {
				t.Fatalf("junk machine %d: %+v %v", i, out, err)
			}
		}
		if got := len(devicesOf(t, db, org.ID)); got != n {
			t.Fatalf("junk machines created %d devices", got-n)
		}
	})
}

// TestMDMUnknownSerialFlagged: a Mac that first appears through MDM with a serial the
// org does not know becomes a device flagged for review the way an agent report flags
// one; a Mac the org already has is joined, not flagged.
func TestMDMUnknownSerialFlagged(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		known := storetest.Device(t, db, org.ID, "C02KNOWN001")
		for _, c := range []struct {
			udid, serial string
			flagged      bool
		}{
			{"UDID-NEW-1", "C02UNKNOWN01", true},
			{"UDID-KNOWN-1", known.SerialNumber, false},
		} {
			e, err := db.MDMAuthenticate(ctx, store.MDMEnrollment{UDID: c.udid, OrgID: org.ID, SerialNumber: c.serial, Model: "Mac14,2", Topic: "t"})
			if err != nil {
				t.Fatal(err)
			}
			tr, err := db.GetDeviceTracking(ctx, org.ID, e.DeviceID)
			if err != nil {
				t.Fatal(err)
			}
			if tr.NeedsReview != c.flagged {
				t.Fatalf("%s: needs_review = %v, want %v (%+v)", c.serial, tr.NeedsReview, c.flagged, tr)
			}
			if c.flagged {
				if tr.ReviewReason != store.UnknownSerialReason("MDM enrollment "+c.udid) || tr.IdentitySource != domain.IdentitySerial {
					t.Fatalf("%s: tracking %+v", c.serial, tr)
				}
				if n := auditCount(t, db, org.ID, "device.review_flagged", e.DeviceID); n != 1 {
					t.Fatalf("%s: %d review_flagged audit rows", c.serial, n)
				}
				// Authenticating again (re-enrollment) flags nothing new.
				if _, err := db.MDMAuthenticate(ctx, store.MDMEnrollment{UDID: c.udid, OrgID: org.ID, SerialNumber: c.serial, Topic: "t"}); err != nil {
					t.Fatal(err)
				}
				if n := auditCount(t, db, org.ID, "device.review_flagged", e.DeviceID); n != 1 {
					t.Fatalf("%s: %d review_flagged audit rows after re-authenticate", c.serial, n)
				}
			} else if e.DeviceID != known.ID {
				t.Fatalf("known Mac joined %s, want %s", e.DeviceID, known.ID)
			}
		}
	})
}
