package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook/fakereceiver"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// TestNotifyDeliveryAcrossReplicaKillAndRestart: two replicas deliver to a webhook
// receiver that holds every request (mid-delivery); one replica is SIGKILLed and the other
// restarted (SIGTERM, then a fresh replica). When the receiver answers again, every event
// arrived exactly once, checked by event id and by webhook-id.
func TestNotifyDeliveryAcrossReplicaKillAndRestart(t *testing.T) {
	rs := newReplicaSet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	secret := webhook.NewSecret()
	rcv, err := fakereceiver.Start(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--notify-send-timeout", "2s"}
	a, b := rs.start(flags...), rs.start(flags...)
	if code, body := rs.do("POST", a.HTTPURL+"/api/v1/notifications/channels", notify.ChannelInput{Name: "siem", Kind: "webhook",
		Webhook: &notify.WebhookConfig{URL: rcv.URL()}, Secret: secret}, nil); code != http.StatusCreated {
		t.Fatalf("create channel: %d %s", code, body)
	}
	if code, body := rs.do("POST", a.HTTPURL+"/api/v1/notifications/rules", notify.RuleInput{Events: []string{"task.created"},
		Audience: "channel"}, nil); code != http.StatusCreated {
		t.Fatalf("create rule: %d %s", code, body)
	}

	rcv.Hang(true)
	const n = 40
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		ev := domain.Event{ID: domain.NewID(), OrgID: rs.orgID, Type: domain.EventTaskCreated, SubjectType: "task", SubjectID: fmt.Sprint("task-", i),
			Payload: json.RawMessage(`{"title":"prepare a laptop"}`)}
		if err := rs.db.InTx(ctx, func(tx *sql.Tx) error { return store.WriteEvent(ctx, tx, ev) }); err != nil {
			t.Fatal(err)
		}
		want[ev.ID] = true
	}
	if !poll(60*time.Second, func() bool { return rcv.InFlight() >= 4 }) {
		t.Fatalf("the replicas never started delivering (in flight: %d)", rcv.InFlight())
	}
	if err := a.Cmd.Process.Kill(); err != nil { // SIGKILL mid-delivery: leases left behind
		t.Fatal(err)
	}
	<-a.Done()
	if err := b.Cmd.Process.Signal(syscall.SIGTERM); err != nil { // a restart: graceful stop
		t.Fatal(err)
	}
	<-b.Done()
	c := rs.start(flags...)
	rcv.Hang(false)

	count := func() (map[string]int, map[string]int) {
		byEvent, byID := map[string]int{}, map[string]int{}
		for _, r := range rcv.Received() {
			if r.Err != nil || r.Payload.Type != domain.EventTaskCreated {
				continue
			}
			var data struct {
				EventID string `json:"event_id"`
			}
			_ = json.Unmarshal(r.Payload.Data, &data)
			byEvent[data.EventID]++
			byID[r.ID]++
		}
		return byEvent, byID
	}
	if !poll(90*time.Second, func() bool { e, _ := count(); return len(e) == n }) {
		e, _ := count()
		ds, _, _ := store.ListDeliveries(ctx, rs.db.SQL, rs.orgID, store.DeliveryFilter{}, store.Page{Limit: 200})
		for _, d := range ds {
			t.Logf("%s %s %s attempts=%d next=%s err=%s", d.ID, d.EventType, d.State, d.Attempts, d.NextAt, d.LastError)
		}
		t.Fatalf("after the kill and restart %d of %d events arrived (%d received)\n%s", len(e), n, len(rcv.Received()), c.Output())
	}
	byEvent, byID := count()
	for id := range want {
		if byEvent[id] != 1 {
			t.Errorf("event %s arrived %d times", id, byEvent[id])
		}
	}
	for id, k := range byID {
		if k != 1 {
			t.Errorf("webhook-id %s arrived %d times", id, k)
		}
	}
	for _, r := range rcv.Received() {
		if r.Err != nil {
			t.Errorf("the receiver refused a payload: %v", r.Err)
		}
	}
	var list struct {
		Items []store.Delivery `json:"items"`
	}
	// The receiver answers before the replica records the delivery: wait for the record.
	poll(60*time.Second, func() bool {
		list.Items = nil
		if code, body := rs.do("GET", c.HTTPURL+"/api/v1/notifications/deliveries?event_type=task.created&limit=200", nil, &list); code != 200 {
			t.Fatalf("list deliveries: %d %s", code, body)
		}
		for _, d := range list.Items {
			if d.State != store.DeliveryDelivered {
				return false
			}
		}
		return true
	})
	if len(list.Items) != n {
		t.Fatalf("%d deliveries for %d events", len(list.Items), n)
	}
	for _, d := range list.Items {
		if d.State != store.DeliveryDelivered {
			t.Errorf("delivery %s is %s (%s)", d.ID, d.State, d.LastError)
		}
	}
}
