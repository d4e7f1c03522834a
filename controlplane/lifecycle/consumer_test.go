package lifecycle_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestOutboxGapFromLateCommit: an event whose seq is lower than one already seen (its
// transaction committed later) is still handled, the cursor does not pass a young gap,
// a gap older than GapGrace (a rolled-back insert) is skipped, and re-reading handles
// nothing twice.
func TestOutboxGapFromLateCommit(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	h := newHarness(t, db, harnessOpts{noRiver: true, cfg: lifecycle.Config{GapGrace: time.Hour}})
	insert := func(seq int64, e domain.Employee, at time.Time) {
		t.Helper()
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO outbox_events (seq, id, org_id, type, subject_type, subject_id, payload, at)
			VALUES ($1, $2, $3, $4, 'employee', $5, '{}', $6)`, seq, domain.NewID(), h.org.ID, domain.EventEmployeeHired, e.ID, at.UTC()); err != nil {
			t.Fatal(err)
		}
	}
	cursor := func() int64 {
		n, err := store.ConsumerCursor(ctx, db.SQL, "lifecycle")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := storetest.Employee(t, db, h.org.ID, "a")
	b := storetest.Employee(t, db, h.org.ID, "b")
	c := storetest.Employee(t, db, h.org.ID, "c")
	var base int64
	_ = db.SQL.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM outbox_events`).Scan(&base)
	if _, err := h.eng.ConsumeOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	start := cursor()
	now := time.Now()
	insert(base+1, a, now)
	insert(base+3, c, now) // base+2 is still "in flight"
	n, err := h.eng.ConsumeOutbox(ctx)
	if err != nil || n != 2 {
		t.Fatalf("first pass handled %d, %v", n, err)
	}
	if got := cursor(); got != base+1 {
		t.Fatalf("cursor = %d, want %d (stop before the young gap; started at %d)", got, base+1, start)
	}
	insert(base+2, b, now) // the late commit
	if n, err = h.eng.ConsumeOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("late event handled %d, %v", n, err)
	}
	if got := cursor(); got != base+3 {
		t.Fatalf("cursor = %d, want %d", got, base+3)
	}
	for _, e := range []domain.Employee{a, b, c} {
		if w := h.workflow(e.ID, lifecycle.KindOnboarding); w.ID == "" {
			t.Fatalf("no onboarding for %s", e.HR.FirstName)
		}
	}
	// A gap older than the grace period is a rolled-back insert: the cursor passes it.
	d := storetest.Employee(t, db, h.org.ID, "d")
	insert(base+5, d, now.Add(-2*time.Hour))
	if n, err = h.eng.ConsumeOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("after gap: %d, %v", n, err)
	}
	if got := cursor(); got != base+5 {
		t.Fatalf("cursor = %d, want %d", got, base+5)
	}
	// Nothing is handled twice when re-read from an old cursor.
	if _, err := db.SQL.ExecContext(ctx, `UPDATE lifecycle_consumers SET cursor_seq = $1`, base); err != nil {
		t.Fatal(err)
	}
	if n, err = h.eng.ConsumeOutbox(ctx); err != nil || n != 0 {
		t.Fatalf("re-read handled %d, %v", n, err)
	}
	ws, _, _ := db.ListWorkflows(ctx, h.org.ID, store.WorkflowFilter{Kind: "onboarding"}, store.Page{})
	if len(ws) != 4 {
		t.Fatalf("workflows = %d", len(ws))
	}
}

// TestPoisonEventDoesNotStall: an event that cannot be handled does not stop the ones
// after it; the cursor waits at it until it is recorded as failed (audited), then moves on.
func TestPoisonEventDoesNotStall(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	h := newHarness(t, db, harnessOpts{noRiver: true, cfg: lifecycle.Config{PoisonAfter: 2}})
	if _, err := h.eng.ConsumeOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := store.ConsumerCursor(ctx, db.SQL, "lifecycle")
	bad := domain.Event{ID: domain.NewID(), OrgID: "no-such-org", Type: domain.EventEmployeeHired, SubjectType: "employee", SubjectID: "x"}
	if err := db.InTx(ctx, func(tx *sql.Tx) error { return store.WriteEvent(ctx, tx, bad) }); err != nil {
		t.Fatal(err)
	}
	good := h.hire("po", domain.NewDate(2027, 1, 4))
	if _, err := h.eng.ConsumeOutbox(ctx); err == nil {
		t.Fatal("no error for the bad event")
	}
	if w := h.workflow(good.ID, lifecycle.KindOnboarding); w.ID == "" {
		t.Fatal("the good event behind the bad one was not handled")
	}
	if c, _ := store.ConsumerCursor(ctx, db.SQL, "lifecycle"); c != before {
		t.Fatalf("cursor moved past a failing event: %d → %d", before, c)
	}
	_, _ = h.eng.ConsumeOutbox(ctx) // second failure: recorded and skipped
	es, _, _ := db.ListAudit(ctx, "no-such-org", store.AuditFilter{Action: "lifecycle.event.failed"}, store.Page{})
	if len(es) != 1 {
		t.Fatalf("failed-event audits = %d", len(es))
	}
	if _, err := h.eng.ConsumeOutbox(ctx); err != nil {
		t.Fatalf("after poison: %v", err)
	}
	if c, _ := store.ConsumerCursor(ctx, db.SQL, "lifecycle"); c <= before+1 {
		t.Fatalf("cursor stuck at %d", c)
	}
}

// TestExistingStaffNotOnboarded: the first HR import reports every current employee as
// hired; someone who started months ago gets no onboarding (no laptop ordered), a recent
// or future start does.
func TestExistingStaffNotOnboarded(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := newHarness(t, db, harnessOpts{noRiver: true})
	old := h.hire("veteran", domain.NewDate(2024, 3, 1))
	recent := h.hire("recent", domain.NewDate(2026, 11, 25)) // six days before the fake clock
	h.pump("events consumed", func() bool { return h.auditCount("lifecycle.onboarding.skipped", old.ID) == 1 })
	if w := h.workflow(old.ID, lifecycle.KindOnboarding); w.ID != "" {
		t.Fatalf("veteran got an onboarding: %s", w.State)
	}
	if w := h.workflow(recent.ID, lifecycle.KindOnboarding); w.ID == "" {
		t.Fatal("recent hire got no onboarding")
	}
}
