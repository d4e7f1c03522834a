package apple_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestEndToEnd drives a simulated Mac through the whole flow on both dialects:
// enroll → DeviceInformation fills inventory → baseline installed → drift repaired →
// DeviceLock with PIN acknowledged → EraseDevice acknowledged, with real pushes.
func TestEndToEnd(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pkgURL := "https://downloads.example.com/lanyard-agent-2.0.0.pkg"
		h := newHarness(t, db, func(c *apple.Config) {
			c.AgentPackage = func(context.Context, string) (*apple.AgentPackage, error) {
				return &apple.AgentPackage{URL: pkgURL, SHA256: strings.Repeat("ab", 32), Size: 4096, Version: "2.0.0"}, nil
			}
		})
		mac := h.newMac("C02E2E00001")
		h.enroll(mac, h.emp.ID)
		h.idle(mac)

		// Inventory and the shared device record (joined by serial, assigned to the hire).
		e := h.enrollment(mac.UDID)
		if e.Status != "enrolled" || e.OSVersion != "15.1" || e.Model != "MacBook Pro" || e.EmployeeID != h.emp.ID {
			t.Fatalf("enrollment = %+v", e)
		}
		dev, err := db.GetDevice(ctx, h.org.ID, e.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if dev.SerialNumber != "C02E2E00001" || dev.Model != "MacBook Pro" || dev.AssignedEmployeeID != h.emp.ID || dev.Platform != domain.PlatformMacOS {
			t.Fatalf("device = %+v", dev)
		}
		var posture apple.Posture
		if err := json.Unmarshal([]byte(e.Posture), &posture); err != nil || !posture.FileVault || !posture.Firewall || !posture.SIP {
			t.Fatalf("posture = %s (%v)", e.Posture, err)
		}

		// The agent package was pushed with InstallEnterpriseApplication.
		installed := false
		for _, r := range mac.Received() {
			if r.RequestType == apple.ReqInstallEntApp && strings.Contains(string(r.Raw), pkgURL) && r.Answer == "Acknowledged" {
				installed = true
			}
		}
		if !installed {
			t.Fatal("agent package not sent with InstallEnterpriseApplication")
		}

		// Baseline installed and no drift.
		base, _ := apple.Baseline(h.org.Name, apple.BaselineOptions{})
		got := mac.Profiles()
		for _, p := range base {
			if got[p.Identifier] != p.UUID {
				t.Fatalf("baseline %s not installed: %v", p.Identifier, got)
			}
		}
		if e.Drift != "[]" {
			t.Fatalf("drift after enrollment = %s", e.Drift)
		}

		// Drift: the firewall profile disappears; the next check-in after the
		// profile-check interval finds it and repairs it.
		mac.RemoveProfile(apple.BaselineIdentifierPrefix + "firewall")
		h.clock.Advance(5 * time.Hour)
		mac.Wake()
		eventually(t, "firewall profile reinstalled", func() bool {
			_, ok := mac.Profiles()[apple.BaselineIdentifierPrefix+"firewall"]
			return ok
		})
		h.idle(mac)
		if d := h.enrollment(mac.UDID).Drift; d != "[]" {
			t.Fatalf("drift after repair = %s", d)
		}
		audit, _, err := db.ListAudit(ctx, h.org.ID, store.AuditFilter{Action: "mdm.policy_drift"}, store.Page{})
		if err != nil || len(audit) < 2 {
			t.Fatalf("want drift found and cleared in audit, got %d (%v)", len(audit), err)
		}
		if !strings.Contains(string(audit[len(audit)-2].After), "firewall") {
			t.Fatalf("drift audit = %s", audit[len(audit)-2].After)
		}

		// DeviceLock with a Lanyard PIN.
		lock, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqDeviceLock, Message: "Return to IT"}, apple.EnqueueOptions{IdempotencyKey: "lock-1"})
		if err != nil || lock.PushError != nil {
			t.Fatalf("lock: %v / push %v", err, lock.PushError)
		}
		eventually(t, "mac locked", func() bool { l, _ := mac.Locked(); return l })
		h.idle(mac)
		_, pin := mac.Locked()
		c := h.command(lock.Command.UUID)
		if c.State != store.MDMCmdDone {
			t.Fatalf("lock state = %s", c.State)
		}
		revealed, err := h.svc.RevealPIN(c)
		if err != nil || revealed != pin || len(pin) != 6 {
			t.Fatalf("PIN on Mac %q, revealed %q (%v)", pin, revealed, err)
		}
		if strings.Contains(c.Params, pin) || strings.Contains(c.SecretSealed, pin) {
			t.Fatal("PIN stored in clear")
		}
		// Same idempotency key: same command, nothing new queued.
		again, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqDeviceLock}, apple.EnqueueOptions{IdempotencyKey: "lock-1"})
		if err != nil || !again.Existed || again.Command.UUID != lock.Command.UUID {
			t.Fatalf("idempotent lock = %+v, %v", again, err)
		}

		// EraseDevice.
		wipe, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqEraseDevice}, apple.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "mac erased", mac.Erased)
		h.idle(mac)
		if c := h.command(wipe.Command.UUID); c.State != store.MDMCmdDone {
			t.Fatalf("erase state = %s", c.State)
		}
		events, err := db.ListEvents(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, ev := range events {
			if ev.SubjectID == dev.ID {
				seen[ev.Type] = true
			}
		}
		for _, want := range []string{domain.EventDeviceEnrolled, domain.EventDeviceLocked, domain.EventDeviceWiped} {
			if !seen[want] {
				t.Errorf("missing event %s (have %v)", want, seen)
			}
		}

		// The fake APNs gateway got real MDM pushes for this Mac.
		if n := h.apns.Count(mac.Token()); n < 3 {
			t.Fatalf("pushes to the mac = %d, want ≥ 3", n)
		}
		for _, p := range h.apns.Pushes() {
			if p.Token == mac.Token() && (p.PushType != "mdm" || p.Topic != h.topic || p.Expiration == "" || p.Status != http.StatusOK) {
				t.Fatalf("push = %+v", p)
			}
		}
		if errs := mac.Errors(); len(errs) > 0 {
			t.Fatalf("mac session errors: %v", errs)
		}
	})
}
