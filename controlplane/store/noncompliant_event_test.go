package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/seed"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// device.noncompliant fires on the transition only: compliant → off writes one event,
// staying off writes nothing, back on and off again writes another; on both the
// per-report path and the batch path (the Postgres bulk write).
func TestNoncompliantOnTransitionOnly(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		r := seed.Report{Serial: "SN-POSTURE", Hostname: "mac", Platform: domain.PlatformMacOS, OSName: "macOS", OSVersion: "15.2",
			Disk: seed.On, Firewall: seed.On, ScreenLock: seed.On}
		agentID, out := storetest.AgentReports(t, db, org.ID, r)
		count := func() []domain.Event {
			t.Helper()
			evs, err := db.ListEvents(ctx, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var got []domain.Event
			for _, e := range evs {
				if e.Type == domain.EventDeviceNoncompliant && e.OrgID == org.ID {
					got = append(got, e)
				}
			}
			return got
		}
		at := time.Now()
		for i, step := range []struct {
			disk, firewall string
			batch          bool
			want           int
		}{
			{seed.On, seed.On, false, 0},
			{seed.Off, seed.On, false, 1},  // turned off: one prompt
			{seed.Off, seed.On, true, 1},   // stays off: nothing more
			{seed.Off, seed.Off, true, 1},  // still non-compliant: nothing more
			{seed.On, seed.On, true, 1},    // compliant again
			{seed.On, seed.Off, true, 2},   // off again, through the batch path
			{seed.On, seed.On, false, 2},   // compliant
			{seed.Off, seed.Off, false, 3}, // off again, per report
		} {
			r.Disk, r.Firewall = step.disk, step.firewall
			r.At = at.Add(time.Duration(i+1) * time.Second)
			rep := seed.InventoryReport(r)
			var err error
			if step.batch {
				_, err = db.ApplyInventoryBatch(ctx, []store.InventoryItem{{OrgID: org.ID, AgentID: agentID, Report: rep}})
			} else {
				_, err = db.ApplyInventory(ctx, org.ID, agentID, rep)
			}
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if got := count(); len(got) != step.want {
				t.Fatalf("step %d (disk %s, firewall %s): %d events, want %d", i, step.disk, step.firewall, len(got), step.want)
			}
		}
		evs := count()
		var p domain.DeviceNoncompliantPayload
		if err := json.Unmarshal(evs[2].Payload, &p); err != nil || p.DeviceID != out.DeviceID || p.Serial != "SN-POSTURE" ||
			p.Failed != "disk encryption off, firewall off" || evs[2].SubjectID != out.DeviceID {
			t.Fatalf("payload %+v (%v), subject %s", p, err, evs[2].SubjectID)
		}
	})
}
