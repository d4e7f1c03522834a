package wiring_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle/wiring/agentsim"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestCommanderChannels: a device with neither agent nor MDM gets ErrNoChannel (a
// manual task upstream); a device with an agent gets one command per idempotency key,
// delivered over the stream and acknowledged; a revoked agent is no channel.
func TestCommanderChannels(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	kr, _ := secrets.New(secrets.NewKey())
	srv, err := agentsim.Start(ctx, db, kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	o := storetest.Org(t, db, domain.PlanPro)
	c := wiring.Commander{DB: db, Commands: srv.API.Commands}
	bare := storetest.Device(t, db, o.ID, "BARE1")
	if ch, err := c.Channel(ctx, o.ID, bare.ID); err != nil || ch != "" {
		t.Fatalf("bare channel = %q %v", ch, err)
	}
	if _, err := c.Lock(ctx, o.ID, bare.ID, "k1"); !errors.Is(err, lifecycle.ErrNoChannel) {
		t.Fatalf("bare lock err = %v", err)
	}
	// A Linux laptop: a Mac with only the agent fails a lock at once (no MDM channel).
	dev := domain.Device{OrgID: o.ID, SerialNumber: "AGENT1", Vendor: "lenovo", Model: "ThinkPad T14", Platform: domain.PlatformLinux, EquipmentType: "laptop"}
	if err := db.CreateDevice(ctx, &dev); err != nil {
		t.Fatal(err)
	}
	ag, err := srv.Enroll(ctx, o.ID, "AGENT1", "lenovo", "ThinkPad T14")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ag.Close)
	if err := ag.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if ch, _ := c.Channel(ctx, o.ID, dev.ID); ch != store.ChannelAgent {
		t.Fatalf("channel = %q", ch)
	}
	first, err := c.Lock(ctx, o.ID, dev.ID, "step-1:"+dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Lock(ctx, o.ID, dev.ID, "step-1:"+dev.ID)
	if err != nil || again.ID != first.ID {
		t.Fatalf("same key gave %+v, %v (first %+v)", again, err, first)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.CommandStatus(ctx, o.ID, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Done() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock not done: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := ag.Received("COMMAND_TYPE_LOCK"); n != 1 {
		t.Fatalf("agent got %d locks", n)
	}
	w, err := c.Wipe(ctx, o.ID, dev.ID, "step-2:"+dev.ID)
	if err != nil || w.ID == "" {
		t.Fatalf("wipe = %+v %v", w, err)
	}
	if _, err := db.RevokeDeviceAgents(ctx, o.ID, dev.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lock(ctx, o.ID, dev.ID, "step-3:"+dev.ID); !errors.Is(err, lifecycle.ErrNoChannel) {
		t.Fatalf("revoked agent lock err = %v", err)
	}
}
