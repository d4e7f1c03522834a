package cli

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook/fakereceiver"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestNotificationsCommandsAgainstRealAPI: channels, test, rules, deliveries and replay
// through the real API and engine, against a webhook receiver over loopback.
func TestNotificationsCommandsAgainstRealAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := storetest.NewSQLite(t)
	kr, _ := secrets.New(secrets.NewKey())
	eng := notify.New(notify.Deps{DB: db, Keys: kr, Logger: slog.New(slog.DiscardHandler),
		Config: notify.Config{PublicURL: "https://lanyard.test", Poll: 50 * time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond, MaxAttempts: 2}})
	h := apitest.New(t, db, api.Options{Logger: slog.New(slog.DiscardHandler)}, eng.Routes())
	go func() { _ = eng.Start(ctx) }()
	secret := webhook.NewSecret()
	rcv, err := fakereceiver.Start(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	o := storetest.Org(t, db, domain.PlanPro)
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(context.Background(), args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleOwner)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOK_SECRET", secret)
	out, err := run("notifications", "channels", "create", "--name", "siem", "--kind", "webhook", "--url", rcv.URL(), "--secret-env", "HOOK_SECRET")
	if err != nil || !strings.Contains(out, "siem") {
		t.Fatalf("create: %q %v", out, err)
	}
	if strings.Contains(out, secret) {
		t.Fatal("create printed a secret it was given")
	}
	chs, _ := store.ListNotifyChannels(ctx, db.SQL, o.ID)
	if len(chs) != 1 {
		t.Fatalf("channels: %+v", chs)
	}
	id := chs[0].ID
	if out, err := run("notifications", "test", id); err != nil || !strings.Contains(out, "delivered") {
		t.Fatalf("test: %q %v", out, err)
	}
	rcv.Fail(1, 503, 0)
	if out, err := run("notifications", "test", id); err == nil || !strings.Contains(out, "503") {
		t.Fatalf("test against a failing receiver: %q %v", out, err)
	}
	if out, err := run("notifications", "rules", "add", "--events", "task.created", "--audience", "channel", "--channel", id); err != nil {
		t.Fatalf("rules add: %q %v", out, err)
	}
	if out, err := run("notifications", "rules", "list"); err != nil || !strings.Contains(out, "task.created") {
		t.Fatalf("rules list: %q %v", out, err)
	}
	if _, err := run("notifications", "rules", "add", "--events", "task.created", "--audience", "nobody"); err == nil {
		t.Fatal("a bad audience must fail")
	}
	rcv.Fail(2, 500, 0)
	ev := domain.Event{ID: domain.NewID(), OrgID: o.ID, Type: domain.EventTaskCreated, SubjectType: "task", SubjectID: "t1"}
	if err := store.WriteEvent(ctx, db.SQL, ev); err != nil {
		t.Fatal(err)
	}
	eng.Notify()
	var dead store.Delivery
	for dead.ID == "" && ctx.Err() == nil {
		ds, _, _ := store.ListDeliveries(ctx, db.SQL, o.ID, store.DeliveryFilter{EventID: ev.ID, State: store.DeliveryDead}, store.Page{})
		if len(ds) == 1 {
			dead = ds[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, err := run("notifications", "deliveries", "--dead"); err != nil || !strings.Contains(out, dead.ID) {
		t.Fatalf("dead list: %q %v", out, err)
	}
	if out, err := run("notifications", "deliveries", dead.ID); err != nil || !strings.Contains(out, "receiver told to fail") {
		t.Fatalf("detail: %q %v", out, err)
	}
	if out, err := run("notifications", "replay", dead.ID); err != nil || !strings.Contains(out, "queued again") {
		t.Fatalf("replay: %q %v", out, err)
	}
	if _, err := rcv.WaitFor(ctx, func(rs []fakereceiver.Received) bool {
		for _, r := range rs {
			if r.ID == dead.ID && r.Err == nil {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := run("notifications", "replay", "nd_nope"); err == nil {
		t.Fatal("replaying an unknown delivery must fail")
	}
}
