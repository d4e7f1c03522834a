package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ConsumeOutbox handles new outbox events and returns how many it handled.
//
// Postgres assigns seq when a row is inserted, but transactions commit in any order, so
// a consumer can see seq 12 before seq 11 exists. The cursor therefore only moves over
// a contiguous run of seqs that are handled (or were skipped as gaps older than
// GapGrace: a rolled-back insert leaves a seq that never appears). Each event is
// handled in one transaction with an insert into lifecycle_handled_events, so two
// replicas, or a re-read after a crash, never handle an event twice.
func (e *Engine) ConsumeOutbox(ctx context.Context) (int, error) {
	ctx = systemCtx(ctx)
	cursor, err := store.ConsumerCursor(ctx, e.db.SQL, e.cfg.Consumer)
	if err != nil {
		return 0, err
	}
	events, err := e.db.ListEvents(ctx, cursor, 500)
	if err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, nil
	}
	handledBefore, err := store.HandledEventSeqs(ctx, e.db.SQL, e.cfg.Consumer, cursor, events[len(events)-1].Seq)
	if err != nil {
		return 0, err
	}
	n := 0
	var run []store.RunnableStep
	var firstErr error
	failed := map[int64]bool{}
	for _, ev := range events {
		if handledBefore[ev.Seq] {
			continue
		}
		var steps []store.RunnableStep
		handled := false
		err := e.db.InTx(ctx, func(tx *sql.Tx) error {
			fresh, err := store.MarkEventHandled(ctx, tx, e.cfg.Consumer, ev)
			if err != nil || !fresh {
				return err
			}
			steps, err = e.handleEvent(ctx, tx, ev)
			handled = err == nil
			return err
		})
		if err == nil && handled && isReactivation(ev) && !e.durableReactivation() {
			// No job runner to hand the reactivation to in the transaction: one attempt
			// after the commit (the offboarding is cancelled whatever the apps answer).
			if rerr := e.reactivateAfterCancel(ctx, ev); rerr != nil {
				e.log.Warn("reactivate app accounts after a cancelled offboarding", "event", ev.ID, "err", rerr)
			}
		}
		if err != nil {
			// Keep going with the other events; this one is retried next pass, and
			// after PoisonAfter failures recorded as failed so it cannot block the rest.
			failed[ev.Seq] = true
			if firstErr == nil {
				firstErr = fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, err)
			}
			e.poison(ctx, ev, err)
			continue
		}
		run = append(run, steps...)
		n++
	}
	// Advance over the contiguous prefix of handled events.
	wall := domain.Now()
	next := cursor
	for _, ev := range events {
		if failed[ev.Seq] {
			break
		}
		if ev.Seq != next+1 && ev.At.After(wall.Add(-e.cfg.GapGrace)) {
			break // a younger gap: an earlier transaction may still commit
		}
		next = ev.Seq
	}
	if next > cursor {
		if err := store.AdvanceConsumerCursor(ctx, e.db.SQL, e.cfg.Consumer, next); err != nil {
			return n, err
		}
	}
	e.enqueue(ctx, run)
	if n > 0 {
		if _, err := e.Tick(ctx); err != nil {
			return n, err
		}
	}
	return n, firstErr
}

// poison counts an event's failures; at PoisonAfter it is marked handled with an audit
// row (lifecycle.event.failed) an admin can see, so one bad event never stalls the rest.
func (e *Engine) poison(ctx context.Context, ev domain.Event, cause error) {
	e.mu.Lock()
	if e.failures == nil {
		e.failures = map[string]int{}
	}
	e.failures[ev.ID]++
	n := e.failures[ev.ID]
	e.mu.Unlock()
	e.log.Warn("event handling failed", "event", ev.ID, "type", ev.Type, "attempt", n, "err", cause)
	if n < e.cfg.PoisonAfter {
		return
	}
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		fresh, err := store.MarkEventHandled(ctx, tx, e.cfg.Consumer, ev)
		if err != nil || !fresh {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, ev.OrgID, "lifecycle.event.failed", ev.SubjectType, ev.SubjectID, nil,
			map[string]any{"event_id": ev.ID, "type": ev.Type, "error": cause.Error(), "attempts": n}))
	})
	if err != nil {
		e.log.Error("record failed event", "event", ev.ID, "err", err)
		return
	}
	e.mu.Lock()
	delete(e.failures, ev.ID)
	e.mu.Unlock()
}

// handleEvent turns one event into workflow changes inside tx.
func (e *Engine) handleEvent(ctx context.Context, tx *sql.Tx, ev domain.Event) ([]store.RunnableStep, error) {
	switch ev.Type {
	case domain.EventEmployeeHired, domain.EventEmployeeRehired, domain.EventEmployeeTerminationScheduled,
		domain.EventEmployeeTerminationCanceled, domain.EventEmployeeTerminated:
	case domain.EventDeviceCheckedIn, domain.EventDeviceEnrolled:
		return e.onDeviceCheckIn(ctx, tx, ev)
	case domain.EventDeviceLocked, domain.EventDeviceWiped:
		return e.onDeviceCommand(ctx, tx, ev)
	default:
		return nil, nil
	}
	org, err := store.GetOrg(ctx, tx, ev.OrgID)
	if err != nil {
		return nil, err
	}
	emp, err := store.GetEmployee(ctx, tx, ev.OrgID, ev.SubjectID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	automated := org.Plan.Allows(domain.FeatureAutomation)
	switch ev.Type {
	case domain.EventEmployeeHired, domain.EventEmployeeRehired:
		var run []store.RunnableStep
		if ev.Type == domain.EventEmployeeRehired {
			if run, err = e.cancelOpen(ctx, tx, org.ID, emp.ID, KindOffboarding, "employee rehired"); err != nil {
				return nil, err
			}
			if err := e.scheduleReactivation(ctx, tx, ev); err != nil {
				return nil, err
			}
			if err := e.keepDevicesOnRehire(ctx, tx, org.ID, emp.ID); err != nil {
				return nil, err
			}
		}
		if !automated {
			return run, e.auditSkip(ctx, tx, org, ev)
		}
		if ev.Type == domain.EventEmployeeHired && emp.HR.StartDate != nil &&
			emp.HR.StartDate.Before(e.clock.Now().Add(-e.cfg.OnboardingGrace)) {
			// Staff who started long before Lanyard was connected (the first HR import)
			// already have their equipment: record them, do not order laptops.
			return run, store.WriteAudit(ctx, tx, store.AuditFor(ctx, org.ID, "lifecycle.onboarding.skipped", "employee", emp.ID, nil,
				map[string]any{"reason": "start date " + emp.HR.StartDate.String() + " is in the past; assign existing equipment by hand or by CSV import"}))
		}
		_, err := e.startTx(ctx, tx, org, StartOptions{Kind: KindOnboarding, EmployeeID: emp.ID, RunAt: e.onboardingAt(org, emp),
			TriggerID: ev.ID, Reason: ev.Type})
		if errors.Is(err, store.ErrConflict) {
			return run, nil // already onboarding
		}
		return run, err
	case domain.EventEmployeeTerminationScheduled, domain.EventEmployeeTerminated:
		if ev.Type == domain.EventEmployeeTerminated {
			// Someone who left needs no onboarding (hired, then let go before the start).
			if _, err := e.cancelOpen(ctx, tx, org.ID, emp.ID, KindOnboarding, "employee terminated"); err != nil {
				return nil, err
			}
		}
		runAt := e.clock.Now()
		if ev.Type == domain.EventEmployeeTerminationScheduled && emp.HR.TerminationDate != nil {
			runAt = e.offboardingAt(org, *emp.HR.TerminationDate)
		}
		open, err := store.OpenWorkflowFor(ctx, tx, org.ID, emp.ID, string(KindOffboarding))
		if err == nil {
			if open.State == string(WorkflowScheduled) && !open.RunAt.Equal(runAt) {
				return nil, store.SetWorkflowRunAt(ctx, tx, open.ID, runAt)
			}
			return nil, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if !automated {
			return nil, e.auditSkip(ctx, tx, org, ev)
		}
		_, err = e.startTx(ctx, tx, org, StartOptions{Kind: KindOffboarding, EmployeeID: emp.ID, RunAt: runAt, TriggerID: ev.ID, Reason: ev.Type})
		if errors.Is(err, store.ErrConflict) {
			return nil, nil
		}
		return nil, err
	case domain.EventEmployeeTerminationCanceled:
		run, err := e.cancelOpen(ctx, tx, org.ID, emp.ID, KindOffboarding, "termination canceled")
		if err != nil {
			return nil, err
		}
		// In this transaction: a crash after the commit must not lose the reactivation.
		return run, e.scheduleReactivation(ctx, tx, ev)
	}
	return nil, nil
}

func (e *Engine) auditSkip(ctx context.Context, tx *sql.Tx, org domain.Org, ev domain.Event) error {
	return store.WriteAudit(ctx, tx, store.AuditFor(ctx, org.ID, "lifecycle.automation.skipped", "employee", ev.SubjectID, nil,
		map[string]any{"event": ev.Type, "plan": org.Plan, "needs": domain.FeatureAutomation.RequiredPlan()}))
}

// onboardingAt is the start date minus the org's lead time, at the offboarding hour's
// counterpart (09:00 local) — or now when that has passed.
func (e *Engine) onboardingAt(org domain.Org, emp domain.Employee) time.Time {
	if emp.HR.StartDate == nil {
		return e.clock.Now()
	}
	lead := org.Settings.OnboardingLeadDays
	if lead <= 0 {
		lead = 7
	}
	return emp.HR.StartDate.At(9, org.Location()).AddDate(0, 0, -lead).UTC()
}

// offboardingAt is the termination date at the org's offboarding hour (default 17:00)
// in its time zone; a date today or in the past means now.
func (e *Engine) offboardingAt(org domain.Org, date domain.Date) time.Time {
	loc := org.Location()
	now := e.clock.Now().In(loc)
	today := domain.NewDate(now.Year(), now.Month(), now.Day())
	if !date.After(today.Time) {
		return e.clock.Now()
	}
	// 0 (unset) means the default, 17:00 local: the employee's last day ends first.
	hour := org.Settings.OffboardingHour
	if hour <= 0 || hour > 23 {
		hour = 17
	}
	return date.At(hour, loc).UTC()
}

// keepDevicesOnRehire cancels open retrievals whose box has not left the employee and
// puts the device back in use; a box already in transit completes its trip.
func (e *Engine) keepDevicesOnRehire(ctx context.Context, tx *sql.Tx, orgID, employeeID string) error {
	open, _, err := store.ListRetrievals(ctx, tx, orgID, store.RetrievalFilter{EmployeeID: employeeID, Open: true}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		return err
	}
	for _, r := range open {
		if r.State == "in_transit" {
			continue
		}
		from := r.State
		r.State = "cancelled"
		if err := store.UpdateRetrieval(ctx, tx, &r, from); err != nil {
			return err
		}
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "retrieval.cancelled", "retrieval", r.ID, nil,
			map[string]string{"reason": "employee rehired"})); err != nil {
			return err
		}
		dev, err := store.GetDevice(ctx, tx, orgID, r.DeviceID)
		if err != nil {
			return err
		}
		if dev.State == domain.StateRetrievalReq {
			if _, err := store.TransitionDevice(ctx, tx, orgID, dev.ID, domain.StateInUse); err != nil {
				return err
			}
		}
	}
	return nil
}

// onDeviceCheckIn marks an assigned device in use and wakes the onboarding waiting for it.
func (e *Engine) onDeviceCheckIn(ctx context.Context, tx *sql.Tx, ev domain.Event) ([]store.RunnableStep, error) {
	dev, err := store.GetDevice(ctx, tx, ev.OrgID, ev.SubjectID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if dev.State == domain.StateAssigned {
		if dev, err = store.TransitionDevice(ctx, tx, ev.OrgID, dev.ID, domain.StateInUse); err != nil {
			return nil, err
		}
	}
	if dev.AssignedEmployeeID == "" {
		return nil, nil
	}
	return e.wakeTx(ctx, tx, ev.OrgID, dev.AssignedEmployeeID, KindOnboarding, StepAwaitCheckIn)
}

// onDeviceCommand wakes the offboarding step waiting for a lock or wipe.
func (e *Engine) onDeviceCommand(ctx context.Context, tx *sql.Tx, ev domain.Event) ([]store.RunnableStep, error) {
	dev, err := store.GetDevice(ctx, tx, ev.OrgID, ev.SubjectID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	step := StepLockDevices
	if ev.Type == domain.EventDeviceWiped {
		step = StepWipeDevices
	}
	emp := dev.AssignedEmployeeID
	if emp == "" {
		// Wiped devices are back with us; find the workflow through the retrieval.
		rs, _, err := store.ListRetrievals(ctx, tx, ev.OrgID, store.RetrievalFilter{DeviceID: dev.ID}, store.Page{Limit: store.MaxLimit})
		if err != nil || len(rs) == 0 {
			return nil, err
		}
		emp = rs[len(rs)-1].EmployeeID
	}
	return e.wakeTx(ctx, tx, ev.OrgID, emp, KindOffboarding, step)
}

// wakeTx is wake inside a transaction; it returns the steps to enqueue after commit.
func (e *Engine) wakeTx(ctx context.Context, tx *sql.Tx, orgID, employeeID string, kind Kind, step StepKind) ([]store.RunnableStep, error) {
	w, err := store.OpenWorkflowFor(ctx, tx, orgID, employeeID, string(kind))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var run []store.RunnableStep
	for _, s := range w.Steps {
		if s.Kind == string(step) && (s.State == string(StepWaiting) || s.State == string(StepBlocked)) {
			ok, err := e.wakeStep(ctx, tx, s)
			if err != nil {
				return nil, err
			}
			if ok && w.State == string(WorkflowRunning) {
				run = append(run, store.RunnableStep{OrgID: orgID, StepID: s.ID, Gen: s.Attempts})
			}
		}
	}
	return run, nil
}
