package apple_test

import (
	"context"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestDeviceCommandChannel: a shared device command (the agent channel's model) for a
// Mac enrolled in MDM goes out over MDM and its row follows the Mac's answers.
func TestDeviceCommandChannel(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		mac := h.newMac("C02CHN00001")
		h.enroll(mac, h.emp.ID)
		h.idle(mac)
		e := h.enrollment(mac.UDID)
		dev, err := db.GetDevice(ctx, h.org.ID, e.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		ch := h.svc.Channel()
		if !ch.Supports(ctx, dev) || ch.Name() != store.ChannelMDM {
			t.Fatal("enrolled Mac not supported by the MDM channel")
		}
		other := storetest.Device(t, db, h.org.ID, "NOTMDM0001")
		if ch.Supports(ctx, other) {
			t.Fatal("device without MDM enrollment supported")
		}
		cmd := store.DeviceCommand{OrgID: h.org.ID, DeviceID: dev.ID, Type: store.CommandLock, Params: map[string]string{"message": "call IT"},
			Channel: store.ChannelMDM, TargetSerial: dev.SerialNumber, ExpiresAt: time.Now().Add(time.Hour), State: store.CommandQueued}
		if created, err := db.CreateDeviceCommand(ctx, &cmd); err != nil || !created {
			t.Fatalf("create device command: %v", err)
		}
		if err := ch.Dispatch(ctx, cmd); err != nil {
			t.Fatal(err)
		}
		eventually(t, "device command done", func() bool {
			dc, err := db.GetDeviceCommand(ctx, h.org.ID, cmd.ID)
			return err == nil && dc.State == store.CommandDone
		})
		h.idle(mac)
		locked, pin := mac.Locked()
		revealed, err := h.svc.RevealPIN(h.command(cmd.ID))
		if !locked || err != nil || revealed != pin {
			t.Fatalf("locked=%v pin=%q revealed=%q err=%v", locked, pin, revealed, err)
		}
		msg := store.DeviceCommand{OrgID: h.org.ID, DeviceID: dev.ID, Type: store.CommandMessage, Params: map[string]string{"body": "hi"},
			Channel: store.ChannelMDM, ExpiresAt: time.Now().Add(time.Hour), State: store.CommandQueued}
		if _, err := db.CreateDeviceCommand(ctx, &msg); err != nil {
			t.Fatal(err)
		}
		if err := ch.Dispatch(ctx, msg); err == nil {
			t.Fatal("message over MDM should be refused (no macOS equivalent)")
		}
	})
}
