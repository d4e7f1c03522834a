package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// The Notifications page lists deliveries with their failures (escaped), a delivery's
// page shows its state, and the replay form puts a failed one back in the queue.
func TestNotificationsPageAndReplay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	evil := `<script>alert(1)</script>`
	ev := domain.Event{ID: domain.NewID(), Seq: 7, OrgID: e.org.ID, Type: "task.created", At: domain.Now()}
	raw, _ := json.Marshal(ev)
	d := store.Delivery{ID: store.DeliveryID(ev, "", "x@example.com"), OrgID: e.org.ID, EventID: ev.ID, EventType: ev.Type, EventAt: ev.At,
		Event: raw, ChannelKind: "email", Recipient: "x@example.com", Template: "task_created", State: store.DeliveryFailed,
		LastError: "550 mailbox unavailable " + evil}
	if _, err := store.InsertDelivery(ctx, e.srv.DB.SQL, &d); err != nil {
		t.Fatal(err)
	}
	viewer := e.client(domain.RoleViewer)
	p := viewer.get("/notifications")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "550 mailbox unavailable") || strings.Contains(p.Body, evil) {
		t.Fatalf("list: %d %s", p.Status, p.Body)
	}
	if strings.Contains(p.Body, "/replay") {
		t.Error("a viewer is offered replay")
	}
	it := e.client(domain.RoleIT)
	if p := it.get("/notifications/" + d.ID); p.Status != http.StatusOK || !strings.Contains(p.Body, "/notifications/"+d.ID+"/replay") {
		t.Fatalf("detail: %d %s", p.Status, p.Body)
	}
	if p := it.post("/notifications/"+d.ID+"/replay", url.Values{}); p.Status != http.StatusSeeOther {
		t.Fatalf("replay: %d %s", p.Status, p.Body)
	}
	// The engine does not run in this console-only server: the delivery waits, queued.
	got, err := store.GetDelivery(ctx, e.srv.DB.SQL, e.org.ID, d.ID)
	if err != nil || got.State != store.DeliveryPending {
		t.Fatalf("after replay: %+v %v", got, err)
	}
}
