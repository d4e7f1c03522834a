package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// eventsOf returns the org's outbox events of type typ.
func eventsOf(t *testing.T, db *store.DB, orgID, typ string) []domain.Event {
	t.Helper()
	all, err := db.ListEvents(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.Event
	for _, e := range all {
		if e.OrgID == orgID && e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// onePayload asserts exactly one event of typ and decodes its payload into v.
func onePayload(t *testing.T, db *store.DB, orgID, typ string, v any) domain.Event {
	t.Helper()
	evs := eventsOf(t, db, orgID, typ)
	if len(evs) != 1 {
		t.Fatalf("%s: %d events, want 1", typ, len(evs))
	}
	if err := json.Unmarshal(evs[0].Payload, v); err != nil {
		t.Fatalf("%s payload %s: %v", typ, evs[0].Payload, err)
	}
	return evs[0]
}

// TestWriteEventOnce: the same key from many concurrent writers (replicas) reaches the
// outbox once; forgetting the key re-arms it.
func TestWriteEventOnce(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		key := "device.silent:" + org.ID + ":dev1"
		var wg sync.WaitGroup
		var mu sync.Mutex
		wrote := 0
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					ok, err := store.WriteEventOnce(ctx, tx, key, domain.Event{OrgID: org.ID, Type: domain.EventDeviceSilent,
						SubjectType: "device", SubjectID: "dev1"})
					if ok {
						mu.Lock()
						wrote++
						mu.Unlock()
					}
					return err
				})
				if err != nil && !store.IsUniqueViolation(err) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := len(eventsOf(t, db, org.ID, domain.EventDeviceSilent)); n != 1 || wrote != 1 {
			t.Fatalf("%d events, %d writers claimed, want 1", n, wrote)
		}
		if was, err := store.ForgetEventKey(ctx, db.SQL, key); err != nil || !was {
			t.Fatal(err)
		}
		if ok, err := store.WriteEventOnce(ctx, db.SQL, key, domain.Event{OrgID: org.ID, Type: domain.EventDeviceSilent}); !ok || err != nil {
			t.Fatalf("after forget: %v %v", ok, err)
		}
		if n := len(eventsOf(t, db, org.ID, domain.EventDeviceSilent)); n != 2 {
			t.Fatalf("%d events after re-arm, want 2", n)
		}
	})
}

// TestTaskCreatedEvent: a manual task is its task.created event, in the same transaction.
func TestTaskCreatedEvent(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		emp := storetest.Employee(t, db, org.ID, "Ada")
		due := domain.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		var task store.LifecycleTask
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			w := store.Workflow{OrgID: org.ID, Kind: "offboarding", EmployeeID: emp.ID, State: "running", RunAt: domain.Now()}
			if err := store.InsertWorkflow(ctx, tx, &w, []string{"manual"}); err != nil {
				return err
			}
			task = store.LifecycleTask{OrgID: org.ID, WorkflowID: w.ID, StepID: w.Steps[0].ID, Kind: "confirm_receipt",
				Title: "Confirm the laptop arrived", Assignee: "it", DueAt: &due, SubjectID: emp.ID}
			return store.InsertTask(ctx, tx, &task)
		})
		if err != nil {
			t.Fatal(err)
		}
		var p domain.TaskCreatedPayload
		ev := onePayload(t, db, org.ID, domain.EventTaskCreated, &p)
		if ev.SubjectType != "task" || ev.SubjectID != task.ID || p.TaskID != task.ID || p.Title != task.Title ||
			p.Kind != "confirm_receipt" || p.EmployeeID != emp.ID || p.Assignee != "it" || p.DueAt == nil || !p.DueAt.Equal(due) {
			t.Fatalf("event %+v payload %+v", ev, p)
		}
	})
}

// TestCommandPromptEvents: a wipe awaiting approval, a lock born failed, a wipe failing on
// the device and a lock expiring each write one prompt with device, serial, kind, state
// and reason; a lock that succeeds writes none.
func TestCommandPromptEvents(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, org.ID, "SN-PROMPT")
		mk := func(typ, state, errText string, expires time.Time) store.DeviceCommand {
			c := store.DeviceCommand{OrgID: org.ID, DeviceID: dev.ID, Type: typ, Channel: store.ChannelAgent, TargetSerial: dev.SerialNumber,
				ExpiresAt: expires, State: state, Error: errText}
			if _, err := db.CreateDeviceCommand(ctx, &c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		hour := domain.Now().Add(time.Hour)
		approval := mk(store.CommandWipe, store.CommandAwaitingApproval, "", hour)
		var ap domain.WipeApprovalPendingPayload
		if ev := onePayload(t, db, org.ID, domain.EventWipeApprovalPending, &ap); ev.SubjectID != dev.ID ||
			ap.ApprovalID != approval.ID || ap.Serial != "SN-PROMPT" || ap.DeviceID != dev.ID {
			t.Fatalf("approval %+v %+v", ev, ap)
		}

		born := mk(store.CommandLock, store.CommandFailed, "a Mac needs MDM to lock", hour)
		wipe := mk(store.CommandWipe, store.CommandQueued, "", hour)
		if _, err := db.TransitionDeviceCommand(ctx, org.ID, wipe.ID, store.CommandUpdate{From: store.OpenCommandStates,
			To: store.CommandFailed, Error: "erase refused"}); err != nil {
			t.Fatal(err)
		}
		ok := mk(store.CommandLock, store.CommandQueued, "", hour)
		if _, err := db.TransitionDeviceCommand(ctx, org.ID, ok.ID, store.CommandUpdate{From: store.OpenCommandStates,
			To: store.CommandDone}); err != nil {
			t.Fatal(err)
		}
		stale := mk(store.CommandLock, store.CommandQueued, "", domain.Now().Add(-time.Minute))
		if _, err := db.ExpireDeviceCommands(ctx, domain.Now()); err != nil {
			t.Fatal(err)
		}
		got := map[string]domain.DeviceCommandFailedPayload{}
		for _, e := range eventsOf(t, db, org.ID, domain.EventDeviceCommandFailed) {
			var p domain.DeviceCommandFailedPayload
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if _, dup := got[p.CommandID]; dup {
				t.Fatalf("command %s failed twice", p.CommandID)
			}
			got[p.CommandID] = p
		}
		want := []struct {
			id, kind, state, reason string
		}{
			{born.ID, store.CommandLock, store.CommandFailed, "a Mac needs MDM to lock"},
			{wipe.ID, store.CommandWipe, store.CommandFailed, "erase refused"},
			{stale.ID, store.CommandLock, store.CommandExpired, "did not connect in time"},
		}
		if len(got) != len(want) {
			t.Fatalf("%d failure events, want %d: %+v", len(got), len(want), got)
		}
		for _, w := range want {
			p := got[w.id]
			if p.Kind != w.kind || p.State != w.state || p.Serial != "SN-PROMPT" || p.DeviceID != dev.ID || p.Channel != store.ChannelAgent ||
				len(p.Reason) == 0 || !strings.Contains(p.Reason, w.reason) {
				t.Errorf("%s: %+v", w.id, p)
			}
		}
	})
}
