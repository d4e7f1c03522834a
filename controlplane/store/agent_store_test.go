package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func newSecret(t testing.TB, db *store.DB, orgID, hash string, maxUses int, expires *time.Time) store.EnrollmentSecret {
	t.Helper()
	s := store.EnrollmentSecret{OrgID: orgID, Name: "test", Prefix: hash[:min(4, len(hash))], MaxUses: maxUses, ExpiresAt: expires}
	if err := db.CreateEnrollmentSecret(context.Background(), &s, hash); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEnrollmentSecretExchange(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		past := domain.Now().Add(-time.Hour)
		newSecret(t, db, org.ID, "hash-ok", 2, nil)
		newSecret(t, db, org.ID, "hash-expired", 0, &past)
		revoked := newSecret(t, db, org.ID, "hash-revoked", 0, nil)
		if _, err := db.RevokeEnrollmentSecret(ctx, org.ID, revoked.ID, false); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, hash string
			ok         bool
		}{
			{"first use", "hash-ok", true},
			{"second use", "hash-ok", true},
			{"over the use limit", "hash-ok", false},
			{"expired", "hash-expired", false},
			{"revoked", "hash-revoked", false},
			{"unknown", "nope", false},
		}
		for _, tc := range tests {
			a := store.Agent{Hostname: "h"}
			s, err := db.ExchangeEnrollmentSecret(ctx, tc.hash, &a)
			if tc.ok != (err == nil) {
				t.Fatalf("%s: err = %v", tc.name, err)
			}
			if !tc.ok {
				if !errors.Is(err, store.ErrSecretRejected) {
					t.Fatalf("%s: err = %v, want ErrSecretRejected", tc.name, err)
				}
				continue
			}
			if s.OrgID != org.ID || a.OrgID != org.ID || a.ID == "" {
				t.Fatalf("%s: secret %+v agent %+v", tc.name, s, a)
			}
			if _, err := db.GetAgent(ctx, org.ID, a.ID); err != nil {
				t.Fatalf("%s: agent not stored: %v", tc.name, err)
			}
		}
	})
}

func TestRevokeSecretRevokesAgents(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		s := newSecret(t, db, org.ID, "h1", 0, nil)
		a := store.Agent{}
		if _, err := db.ExchangeEnrollmentSecret(ctx, "h1", &a); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertAgentCert(ctx, store.AgentCert{Serial: "1234", OrgID: org.ID, AgentID: a.ID, DER: []byte{1}, NotBefore: domain.Now(), NotAfter: domain.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RevokeEnrollmentSecret(ctx, org.ID, s.ID, true); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetAgent(ctx, org.ID, a.ID)
		if err != nil || got.RevokedAt == nil {
			t.Fatalf("agent not revoked: %+v %v", got, err)
		}
		if rev, err := db.IsAgentCertRevoked(ctx, "1234"); err != nil || !rev {
			t.Fatalf("cert revoked = %v, %v", rev, err)
		}
		ids, _, err := db.RevokedAgentsSince(ctx, time.Time{})
		if err != nil || len(ids) != 1 || ids[0] != a.ID {
			t.Fatalf("revoked agents = %v, %v", ids, err)
		}
	})
}

func enrolledAgent(t *testing.T, db *store.DB, orgID, hwUUID string) store.Agent {
	t.Helper()
	hash := "h-" + domain.NewID()
	newSecret(t, db, orgID, hash, 0, nil)
	a := store.Agent{HardwareUUID: hwUUID}
	if _, err := db.ExchangeEnrollmentSecret(context.Background(), hash, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func report(serial string, sections map[string]string) store.InventoryReport {
	r := store.InventoryReport{Full: true, Serial: serial, Vendor: "Dell", Hostname: "host", Sections: map[string]json.RawMessage{}, Hash: "h"}
	for k, v := range sections {
		r.Sections[k] = json.RawMessage(v)
	}
	return r
}

func TestInventoryTracking(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		emp := storetest.Employee(t, db, org.ID, "Ada")
		dev := storetest.Device(t, db, org.ID, "C02ABC")
		if _, err := db.AssignDevice(ctx, org.ID, dev.ID, emp.ID); err != nil {
			t.Fatal(err)
		}
		a1 := enrolledAgent(t, db, org.ID, "uuid-1")

		// Known serial (reported lower case): links and moves the assigned device to in_use.
		out, err := db.ApplyInventory(ctx, org.ID, a1.ID, report("c02abc", map[string]string{"os": `{"name":"macOS"}`}))
		if err != nil {
			t.Fatal(err)
		}
		if out.DeviceID != dev.ID || !out.Linked || out.NeedsReview || out.SerialConflict {
			t.Fatalf("outcome %+v", out)
		}
		d, _ := db.GetDevice(ctx, org.ID, dev.ID)
		if d.State != domain.StateInUse || d.AssignedEmployeeID != emp.ID {
			t.Fatalf("device %s assigned to %q", d.State, d.AssignedEmployeeID)
		}

		// A delta changes one section and is recorded in history.
		delta := report("C02ABC", map[string]string{"memory_bytes": `"17179869184"`})
		delta.Full = false
		if out, err = db.ApplyInventory(ctx, org.ID, a1.ID, delta); err != nil {
			t.Fatal(err)
		}
		if len(out.Changed) != 1 || out.Changed[0] != "memory_bytes" {
			t.Fatalf("changed %v", out.Changed)
		}
		tr, err := db.GetDeviceTracking(ctx, org.ID, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		var inv map[string]json.RawMessage
		if err := json.Unmarshal(tr.Inventory, &inv); err != nil || len(inv) != 2 {
			t.Fatalf("merged inventory %s (%v)", tr.Inventory, err)
		}
		if tr.AgentID != a1.ID || tr.LastSeenAt == nil {
			t.Fatalf("tracking %+v", tr)
		}
		hist, _, err := db.ListInventoryHistory(ctx, org.ID, dev.ID, store.Page{})
		if err != nil || len(hist) != 2 {
			t.Fatalf("history %d, %v", len(hist), err)
		}
		if _, ok := hist[1].Changes["memory_bytes"]; !ok {
			t.Fatalf("history[1] = %+v", hist[1].Changes)
		}

		// A second machine reporting the same serial is a conflict, never a takeover.
		a2 := enrolledAgent(t, db, org.ID, "uuid-2")
		out, err = db.ApplyInventory(ctx, org.ID, a2.ID, report("C02ABC", nil))
		if err != nil {
			t.Fatal(err)
		}
		if !out.SerialConflict || out.DeviceID != "" {
			t.Fatalf("conflict outcome %+v", out)
		}
		tr, _ = db.GetDeviceTracking(ctx, org.ID, dev.ID)
		if !tr.SerialConflict || tr.AgentID != a1.ID || len(tr.ConflictAgentIDs) != 1 || tr.ConflictAgentIDs[0] != a2.ID {
			t.Fatalf("tracking after conflict %+v", tr)
		}

		// A reinstall on the same machine (same hardware UUID) takes over.
		a3 := enrolledAgent(t, db, org.ID, "uuid-1")
		if out, err = db.ApplyInventory(ctx, org.ID, a3.ID, report("C02ABC", nil)); err != nil || out.DeviceID != dev.ID {
			t.Fatalf("reinstall outcome %+v %v", out, err)
		}

		// Unknown serial: a new unassigned device flagged for review.
		a4 := enrolledAgent(t, db, org.ID, "uuid-4")
		out, err = db.ApplyInventory(ctx, org.ID, a4.ID, report("NEW999", nil))
		if err != nil || !out.Created || !out.NeedsReview {
			t.Fatalf("unknown serial outcome %+v %v", out, err)
		}
		nd, err := db.GetDevice(ctx, org.ID, out.DeviceID)
		if err != nil || nd.SerialNumber != "NEW999" || nd.AssignedEmployeeID != "" || nd.Vendor != "dell" {
			t.Fatalf("new device %+v %v", nd, err)
		}

		// Another org's agent reporting this org's serial never touches this org's device.
		org2 := storetest.Org(t, db, domain.PlanPro)
		b := enrolledAgent(t, db, org2.ID, "uuid-1")
		out, err = db.ApplyInventory(ctx, org2.ID, b.ID, report("C02ABC", nil))
		if err != nil || out.DeviceID == dev.ID || !out.Created {
			t.Fatalf("cross-org outcome %+v %v", out, err)
		}
		if _, err := db.GetDeviceTracking(ctx, org2.ID, dev.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("cross-org tracking read: %v", err)
		}
	})
}

func TestDeviceCommandLifecycle(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SER1")
		mk := func() *store.DeviceCommand {
			return &store.DeviceCommand{OrgID: org.ID, DeviceID: dev.ID, Type: store.CommandLock, IdempotencyKey: "k1",
				Channel: store.ChannelAgent, TargetSerial: "SER1", ExpiresAt: domain.Now().Add(time.Hour), Params: map[string]string{"message": "hi"}}
		}
		// Concurrent duplicates with one idempotency key create one command.
		var wg sync.WaitGroup
		ids := make([]string, 4)
		created := make([]bool, 4)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := mk()
				ok, err := db.CreateDeviceCommand(ctx, c)
				if err != nil {
					t.Error(err)
				}
				ids[i], created[i] = c.ID, ok
			}()
		}
		wg.Wait()
		n := 0
		for i := range ids {
			if ids[i] != ids[0] {
				t.Fatalf("ids differ: %v", ids)
			}
			if created[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("created %d times", n)
		}
		list, _, err := db.ListDeviceCommands(ctx, org.ID, dev.ID, store.Page{})
		if err != nil || len(list) != 1 || list[0].Params["message"] != "hi" {
			t.Fatalf("list %+v %v", list, err)
		}
		id := ids[0]
		steps := []struct {
			u  store.CommandUpdate
			ok bool
		}{
			{store.CommandUpdate{From: []string{store.CommandQueued}, To: store.CommandSent, AgentID: "ag"}, true},
			{store.CommandUpdate{From: []string{store.CommandQueued}, To: store.CommandSent}, false}, // claimed already
			{store.CommandUpdate{From: []string{store.CommandSent}, To: store.CommandReceived}, true},
			{store.CommandUpdate{From: []string{store.CommandSent, store.CommandReceived}, To: store.CommandDone, Result: json.RawMessage(`{"steps":[]}`)}, true},
			{store.CommandUpdate{From: []string{store.CommandSent, store.CommandReceived}, To: store.CommandFailed}, false},
		}
		for i, s := range steps {
			_, err := db.TransitionDeviceCommand(ctx, org.ID, id, s.u)
			if s.ok != (err == nil) {
				t.Fatalf("step %d: %v", i, err)
			}
			if !s.ok && !errors.Is(err, store.ErrCommandState) {
				t.Fatalf("step %d: %v, want ErrCommandState", i, err)
			}
		}
		c, _ := db.GetDeviceCommand(ctx, org.ID, id)
		if c.State != store.CommandDone || c.SentAt == nil || c.ReceivedAt == nil || c.CompletedAt == nil || c.AgentID != "ag" || c.Attempts != 1 {
			t.Fatalf("final %+v", c)
		}
		audit, _, err := db.ListAudit(ctx, org.ID, store.AuditFilter{TargetType: "device_command", TargetID: id}, store.Page{})
		if err != nil || len(audit) != 4 {
			t.Fatalf("audit rows %d, %v", len(audit), err)
		}
		// Expiry.
		old := &store.DeviceCommand{OrgID: org.ID, DeviceID: dev.ID, Type: store.CommandMessage, Channel: store.ChannelAgent, ExpiresAt: domain.Now().Add(-time.Minute)}
		if _, err := db.CreateDeviceCommand(ctx, old); err != nil {
			t.Fatal(err)
		}
		if n, err := db.ExpireDeviceCommands(ctx, domain.Now()); err != nil || n != 1 {
			t.Fatalf("expired %d, %v", n, err)
		}
	})
}

// A batch mixes the fast path (linked agents), the full path (an unknown serial) and two
// reports of one agent, which must apply in order.
func TestInventoryBatchMixed(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		a1 := enrolledAgent(t, db, org.ID, "u1")
		a2 := enrolledAgent(t, db, org.ID, "u2")
		if _, err := db.ApplyInventory(ctx, org.ID, a1.ID, report("MIX-1", map[string]string{"cpu": `{"model":"a"}`})); err != nil {
			t.Fatal(err)
		}
		delta := func(v string) store.InventoryReport {
			return store.InventoryReport{Sections: map[string]json.RawMessage{"cpu": json.RawMessage(v)}, Hash: v}
		}
		outs, err := db.ApplyInventoryBatch(ctx, []store.InventoryItem{
			{OrgID: org.ID, AgentID: a1.ID, Report: delta(`{"model":"b"}`)},
			{OrgID: org.ID, AgentID: a2.ID, Report: report("MIX-2", nil)},
			{OrgID: org.ID, AgentID: a1.ID, Report: delta(`{"model":"c"}`)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if outs[0].DeviceID == "" || outs[0].DeviceID != outs[2].DeviceID || !outs[1].Created || len(outs[2].Changed) != 1 {
			t.Fatalf("outcomes %+v", outs)
		}
		tr, _ := db.GetDeviceTracking(ctx, org.ID, outs[0].DeviceID)
		if !strings.Contains(string(tr.Inventory), `"c"`) || tr.InventoryHash != `{"model":"c"}` {
			t.Fatalf("last report did not win: %s", tr.Inventory)
		}
		hist, _, _ := db.ListInventoryHistory(ctx, org.ID, outs[0].DeviceID, store.Page{})
		if len(hist) != 3 {
			t.Fatalf("history entries %d, want 3", len(hist))
		}
	})
}
