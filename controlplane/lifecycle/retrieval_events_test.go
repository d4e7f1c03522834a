package lifecycle_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// retrievalPrompts returns the retrieval.* prompts written for one retrieval, oldest first.
func retrievalPrompts(t *testing.T, db *store.DB, retrievalID string) []domain.RetrievalPayload {
	t.Helper()
	var out []domain.RetrievalPayload
	var after int64
	for {
		evs, err := db.ListEvents(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, ev := range evs {
			after = ev.Seq
			if ev.SubjectID != retrievalID || (ev.Type != domain.EventRetrievalKitShipped && ev.Type != domain.EventRetrievalReminder) {
				continue
			}
			var p domain.RetrievalPayload
			if err := json.Unmarshal(ev.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if ev.Type == domain.EventRetrievalKitShipped {
				p.Reminder = -1 // marks the kit_shipped prompt in the sequence
			}
			out = append(out, p)
		}
	}
}

// Recording the kit's tracking number prompts retrieval.kit_shipped once, and each
// due reminder prompts retrieval.reminder with its number, in the same transaction
// as the retrieval change.
func TestRetrievalPromptEvents(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{})
		e, dev := h.onboarded("rp", "SER-RP-"+domain.NewID()[:6], "agent")
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("retrieval open", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		rs, _, err := store.ListRetrievals(ctx, db.SQL, h.org.ID, store.RetrievalFilter{EmployeeID: e.ID}, store.Page{})
		if err != nil || len(rs) != 1 {
			t.Fatalf("retrievals %+v %v", rs, err)
		}
		if ps := retrievalPrompts(t, db, rs[0].ID); len(ps) != 0 {
			t.Fatalf("prompts before anything happened: %+v", ps)
		}
		if _, err := h.eng.KitSent(ctx, h.org.ID, rs[0].ID, "1Z999"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.eng.KitSent(ctx, h.org.ID, rs[0].ID, "1Z999"); err == nil {
			t.Fatal("kit sent twice")
		}
		ps := retrievalPrompts(t, db, rs[0].ID)
		if len(ps) != 1 || ps[0].Reminder != -1 || ps[0].KitTracking != "1Z999" || ps[0].EmployeeID != e.ID ||
			ps[0].DeviceID != dev.ID || ps[0].RetrievalID != rs[0].ID || ps[0].DueAt == nil {
			t.Fatalf("kit shipped prompts %+v", ps)
		}
		for want := 1; want <= 2; want++ {
			h.nextReminder(e.ID, rs[0].ID, want)
			r, err := store.GetRetrieval(ctx, db.SQL, h.org.ID, rs[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			ps = retrievalPrompts(t, db, rs[0].ID)
			last := ps[len(ps)-1]
			if len(ps) != 1+want || last.Reminder != want || last.KitTracking != "1Z999" || last.DueAt == nil ||
				!last.DueAt.Equal(*r.NextReminderAt) {
				t.Fatalf("after reminder %d prompts %+v (next %v)", want, ps, r.NextReminderAt)
			}
		}
	})
}
