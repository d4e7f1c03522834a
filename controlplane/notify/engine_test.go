package notify_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
	"github.com/lanyardhq/lanyard/controlplane/notify/webhook/fakereceiver"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// harness is one org on one store with an engine running against it.
type harness struct {
	t   *testing.T
	ctx context.Context
	db  *store.DB
	org domain.Org
	eng *notify.Engine
}

func fastConfig() notify.Config {
	return notify.Config{PublicURL: "https://lanyard.test", Poll: 50 * time.Millisecond, BackoffBase: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond, MaxAttempts: 3, SendTimeout: 2 * time.Second, Workers: 4}
}

func keyring(t testing.TB) *secrets.Keyring {
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newHarness(t *testing.T, db *store.DB, render notify.Renderer, email notify.EmailSender) *harness {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: domain.WithActor(ctx, domain.Actor{ID: "user:test"}), db: db, org: storetest.Org(t, db, domain.PlanPro)}
	h.eng = notify.New(notify.Deps{DB: db, Keys: keyring(t), Render: render, Email: email, Config: fastConfig()})
	return h
}

// onlyRules replaces the org's rules (the defaults included) with rules.
func (h *harness) onlyRules(rules ...store.NotifyRule) {
	h.t.Helper()
	if err := h.eng.SeedDefaults(h.ctx, h.org.ID); err != nil {
		h.t.Fatal(err)
	}
	old, err := store.ListNotifyRules(h.ctx, h.db.SQL, h.org.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range old {
		if err := store.DeleteNotifyRule(h.ctx, h.db.SQL, h.org.ID, r.ID); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, r := range rules {
		r.OrgID = h.org.ID
		if err := store.InsertNotifyRule(h.ctx, h.db.SQL, &r); err != nil {
			h.t.Fatal(err)
		}
	}
}

// everythingToChannels is a rule sending every event to every non-email channel.
var everythingToChannels = store.NotifyRule{Events: []string{"*"}, Audience: "channel"}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = h.eng.Start(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
}

func (h *harness) event(typ, subjectType, subjectID string, payload any) domain.Event {
	h.t.Helper()
	b, _ := json.Marshal(payload)
	ev := domain.Event{ID: domain.NewID(), OrgID: h.org.ID, Type: typ, SubjectType: subjectType, SubjectID: subjectID, Payload: b}
	if err := h.db.InTx(h.ctx, func(tx *sql.Tx) error { return store.WriteEvent(h.ctx, tx, ev) }); err != nil {
		h.t.Fatal(err)
	}
	h.eng.Notify()
	return ev
}

func (h *harness) webhookChannel(rcv *fakereceiver.Server, secret string) store.NotifyChannel {
	h.t.Helper()
	c, err := h.eng.CreateChannel(h.ctx, h.org.ID, notify.ChannelInput{Name: "siem", Kind: "webhook",
		Webhook: &notify.WebhookConfig{URL: rcv.URL()}, Secret: secret})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// receiver starts a webhook receiver, makes it the org's only channel and sends it
// every event (the defaults replaced by everythingToChannels).
func (h *harness) receiver() *fakereceiver.Server {
	h.t.Helper()
	secret := webhook.NewSecret()
	rcv, err := fakereceiver.Start(h.ctx, secret)
	if err != nil {
		h.t.Fatal(err)
	}
	h.webhookChannel(rcv, secret)
	h.onlyRules(everythingToChannels)
	return rcv
}

// waitDeliveries waits until the deliveries of an event satisfy ok.
func (h *harness) waitDeliveries(eventID string, ok func([]store.Delivery) bool) []store.Delivery {
	h.t.Helper()
	for {
		ds, _, err := store.ListDeliveries(h.ctx, h.db.SQL, h.org.ID, store.DeliveryFilter{EventID: eventID}, store.Page{Limit: 200})
		if err != nil {
			h.t.Fatal(err)
		}
		if ok(ds) {
			return ds
		}
		select {
		case <-h.ctx.Done():
			h.t.Fatalf("deliveries of %s never got there: %+v", eventID, ds)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func allIn(state string) func([]store.Delivery) bool {
	return func(ds []store.Delivery) bool {
		for _, d := range ds {
			if d.State != state {
				return false
			}
		}
		return len(ds) > 0
	}
}

// plainRender stands in for the template package in tests that are not about content.
type plainRender struct{}

func (plainRender) Render(kind string, d notify.Data) (notify.Message, error) {
	who := ""
	if d.Person != nil {
		who = d.Person.Name
	}
	s := fmt.Sprintf("[%s] %s %s", d.OrgName, kind, who)
	return notify.Message{Subject: s, Text: s + "\n" + d.PublicURL + d.Link, SlackText: s}, nil
}

func TestWebhookRetriesDeadLetterReplay(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, plainRender{}, nil)
		rcv := h.receiver()
		h.start()
		emp := storetest.Employee(t, db, h.org.ID, "Ada")

		// Two failures, then the receiver recovers: delivered on the third attempt.
		rcv.Fail(2, 500, 0)
		ev := h.event(domain.EventEmployeeTerminated, "employee", emp.ID, map[string]string{"employee_id": emp.ID})
		ds := h.waitDeliveries(ev.ID, allIn(store.DeliveryDelivered))
		if len(ds) != 1 {
			t.Fatalf("want one webhook delivery, got %+v", ds)
		}
		atts, err := store.DeliveryAttempts(h.ctx, db.SQL, ds[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(atts) != 3 || atts[0].Outcome != "transient" || atts[0].Status != 500 || atts[2].Outcome != "delivered" {
			t.Fatalf("attempts: %+v", atts)
		}
		got := rcv.Counts()
		if got[ds[0].ID] != 1 {
			t.Fatalf("receiver got %v", got)
		}
		var p webhook.Payload
		for _, r := range rcv.Received() {
			if r.ID == ds[0].ID {
				p = r.Payload
			}
		}
		if p.Type != domain.EventEmployeeTerminated || p.OrgID != h.org.ID || !strings.Contains(string(p.Data), emp.ID) {
			t.Fatalf("payload: %+v", p)
		}

		// A receiver that keeps failing: MaxAttempts (3) transient failures → dead, and the
		// admins' channels hear of it (notify.delivery_failed, here the same webhook).
		rcv.Fail(3, 429, 0)
		ev2 := h.event(domain.EventEmployeeTerminated, "employee", emp.ID, map[string]string{"employee_id": emp.ID})
		dead := h.waitDeliveries(ev2.ID, allIn(store.DeliveryDead))
		if dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "receiver told to fail") {
			t.Fatalf("dead delivery: %+v", dead[0])
		}
		notices, err := rcv.WaitFor(h.ctx, func(rs []fakereceiver.Received) bool {
			for _, r := range rs {
				if r.Payload.Type == notify.EventDeliveryFailed && strings.Contains(string(r.Payload.Data), dead[0].ID) {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Fatal(err, notices)
		}

		// Replay: queued again with a fresh budget, delivered once.
		if err := store.ReplayDelivery(h.ctx, db.SQL, h.org.ID, dead[0].ID); err != nil {
			t.Fatal(err)
		}
		h.eng.Notify()
		h.waitDeliveries(ev2.ID, allIn(store.DeliveryDelivered))
		if n := rcv.Counts()[dead[0].ID]; n != 1 {
			t.Fatalf("replayed delivery arrived %d times", n)
		}
		if err := store.ReplayDelivery(h.ctx, db.SQL, h.org.ID, dead[0].ID); err == nil {
			t.Fatal("replaying a delivered delivery must be refused")
		}
		for _, r := range rcv.Received() {
			if r.Err != nil {
				t.Fatalf("receiver refused a payload: %v", r.Err)
			}
		}
	})
}

func TestPermanentFailureStopsAtOnce(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, plainRender{}, nil)
		rcv := h.receiver()
		h.start()
		rcv.Fail(1, 400, 0)
		ev := h.event(domain.EventTaskCreated, "task", "t1", map[string]string{"title": "Ship a monitor"})
		ds := h.waitDeliveries(ev.ID, allIn(store.DeliveryFailed))
		if ds[0].Attempts != 1 {
			t.Fatalf("a 400 must not be retried: %+v", ds[0])
		}
	})
}

func TestEmployeeWithoutEmailIsReported(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, plainRender{}, nil)
		secret := webhook.NewSecret()
		rcv, err := fakereceiver.Start(h.ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		h.webhookChannel(rcv, secret)
		if _, err := h.eng.CreateChannel(h.ctx, h.org.ID, notify.ChannelInput{Name: "mail", Kind: "email",
			Email: &notify.EmailConfig{Host: "127.0.0.1", Port: 1, From: "it@lanyard.test", TLS: "none"}}); err != nil {
			t.Fatal(err)
		}
		h.start()
		emp := domain.Employee{OrgID: h.org.ID, Source: "manual", HR: domain.HRFields{FirstName: "No", LastName: "Mail", Status: domain.StatusActive}}
		if err := store.InsertEmployee(h.ctx, db.SQL, &emp); err != nil {
			t.Fatal(err)
		}
		ev := h.event(domain.EventEmployeeHired, "employee", emp.ID, nil)
		ds := h.waitDeliveries(ev.ID, func(ds []store.Delivery) bool {
			for _, d := range ds {
				if d.ChannelKind == "email" && d.State == store.DeliveryFailed && strings.Contains(d.LastError, "no email address") {
					return true
				}
			}
			return false
		})
		var failed store.Delivery
		for _, d := range ds {
			if d.ChannelKind == "email" {
				failed = d
			}
		}
		if _, err := rcv.WaitFor(h.ctx, func(rs []fakereceiver.Received) bool {
			for _, r := range rs {
				if r.Payload.Type == notify.EventDeliveryFailed && strings.Contains(string(r.Payload.Data), failed.ID) &&
					strings.Contains(string(r.Payload.Data), "no email address") {
					return true
				}
			}
			return false
		}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTwoConsumersEnqueueOnce(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, plainRender{}, nil)
		h.receiver()
		other := notify.New(notify.Deps{DB: db, Keys: keyring(t), Render: plainRender{}, Config: fastConfig()})
		var evs []domain.Event
		for i := 0; i < 20; i++ {
			evs = append(evs, h.event(domain.EventTaskCreated, "task", fmt.Sprint("t", i), map[string]string{"title": "t"}))
		}
		errs := make(chan error, 2)
		for _, e := range []*notify.Engine{h.eng, other} {
			go func() { _, err := e.ConsumeOutbox(h.ctx); errs <- err }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for _, ev := range evs {
			ds, _, err := store.ListDeliveries(h.ctx, db.SQL, h.org.ID, store.DeliveryFilter{EventID: ev.ID}, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 1 {
				t.Fatalf("event %s: %d deliveries, want 1", ev.ID, len(ds))
			}
		}
	})
}

func TestRotationKeepsOldReceiversWorking(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, plainRender{}, nil)
		oldS, newS := webhook.NewSecret(), webhook.NewSecret()
		rcv, err := fakereceiver.Start(h.ctx, oldS)
		if err != nil {
			t.Fatal(err)
		}
		c := h.webhookChannel(rcv, oldS)
		h.onlyRules(everythingToChannels)
		if _, err := h.eng.RotateSecret(h.ctx, h.org.ID, c.ID, newS, time.Hour); err != nil {
			t.Fatal(err)
		}
		h.start()
		ev := h.event(domain.EventTaskCreated, "task", "t1", nil)
		h.waitDeliveries(ev.ID, allIn(store.DeliveryDelivered)) // the receiver still on the old secret verifies
		rcv.SetSecrets(newS)
		ev2 := h.event(domain.EventTaskCreated, "task", "t2", nil)
		h.waitDeliveries(ev2.ID, allIn(store.DeliveryDelivered)) // and after switching over
		for _, r := range rcv.Received() {
			if r.Err != nil {
				t.Fatalf("refused: %v", r.Err)
			}
		}
		got, err := store.GetNotifyChannel(h.ctx, db.SQL, h.org.ID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(got)
		if strings.Contains(string(raw), newS) || strings.Contains(string(raw), oldS) || strings.Contains(string(raw), "v1:") {
			t.Fatalf("a channel's JSON carries its secret: %s", raw)
		}
	})
}
