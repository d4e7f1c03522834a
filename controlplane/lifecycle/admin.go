package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ErrBadState is returned when an admin action does not fit the current state; the API
// maps it to 409 through store.ErrConflict.
var ErrBadState = fmt.Errorf("not allowed in the current state: %w", store.ErrConflict)

// cancelOpen cancels the employee's open workflow of kind (if any) inside tx.
func (e *Engine) cancelOpen(ctx context.Context, tx *sql.Tx, orgID, employeeID string, kind Kind, reason string) ([]store.RunnableStep, error) {
	w, err := store.OpenWorkflowFor(ctx, tx, orgID, employeeID, string(kind))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	_, err = e.cancelTx(ctx, tx, w, reason)
	return nil, err
}

// cancelTx stops a workflow: steps not finished are cancelled (a running one finishes
// but nothing starts after it), open tasks are cancelled, and a report says what had
// already run and how to re-enable it.
func (e *Engine) cancelTx(ctx context.Context, tx *sql.Tx, w store.Workflow, reason string) (CancelReport, error) {
	rep := CancelReport{Reason: reason, AlreadyDone: []string{}, Stopped: []string{}}
	for _, s := range w.Steps {
		switch StepState(s.State) {
		case StepSucceeded:
			rep.AlreadyDone = append(rep.AlreadyDone, s.Kind)
			switch StepKind(s.Kind) {
			case StepRevokeApps:
				rep.Reenable = append(rep.Reenable, "app access was removed: start an onboarding (POST /api/v1/workflows with kind onboarding) to grant it again")
			case StepLockDevices:
				rep.Reenable = append(rep.Reenable, "devices were locked: an \"Unlock\" task per device says how to unlock it (POST /api/v1/workflows/"+w.ID+"/unlock unlocks every agent-locked device; a Mac unlocks at the Mac with its escrowed PIN, GET /api/v1/mdm/commands/{id}/pin)")
			case StepOpenRetrieval:
				rep.Reenable = append(rep.Reenable, "retrievals were opened: cancel them (POST /api/v1/retrievals/{id}/cancel) if the device stays with the employee")
			case StepGrantApps:
				rep.Reenable = append(rep.Reenable, "app access was granted: an offboarding removes it")
			case StepAllocateDevice, StepAssignDevice:
				rep.Reenable = append(rep.Reenable, "a device was assigned: unassign it (POST /api/v1/devices/{id}/unassign) to return it to stock")
			}
		case StepSkipped, StepCancelled:
		default:
			if _, err := store.SetStepState(ctx, tx, s.ID, []string{string(StepPending), string(StepWaiting), string(StepBlocked), string(StepFailed)},
				store.StepUpdate{State: string(StepCancelled), Output: s.Output, Reason: reason}); err != nil {
				return rep, err
			}
			rep.Stopped = append(rep.Stopped, s.Kind)
		}
	}
	ok, err := store.SetWorkflowState(ctx, tx, w.ID, []string{string(WorkflowScheduled), string(WorkflowRunning), string(WorkflowPaused),
		string(WorkflowFailed)}, string(WorkflowCancelled), reason)
	if err != nil {
		return rep, err
	}
	if !ok {
		return rep, fmt.Errorf("workflow %s is %s: %w", w.ID, w.State, ErrBadState)
	}
	if err := store.CancelOpenTasks(ctx, tx, w.ID, domain.ActorFrom(ctx).ID, reason); err != nil {
		return rep, err
	}
	// A device the offboarding locked must not stay locked silently: offer the unlock.
	if w.Kind == string(KindOffboarding) {
		n, err := e.offerUnlocks(ctx, tx, w, reason)
		if err != nil {
			return rep, err
		}
		if n > 0 && !slices.Contains(rep.AlreadyDone, string(StepLockDevices)) {
			rep.Reenable = append(rep.Reenable, fmt.Sprintf("%d device(s) may be locked by a lock that was still running: see the \"Unlock\" tasks", n))
		}
	}
	if len(rep.AlreadyDone) > 0 || len(rep.Reenable) > 0 {
		d := parseData(w.Data)
		d.Cancel = &rep
		if err := store.SetWorkflowData(ctx, tx, w.ID, mustJSON(d)); err != nil {
			return rep, err
		}
	}
	return rep, store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.workflow.cancelled", "workflow", w.ID, nil, rep))
}

// Cancel cancels a workflow (admin).
func (e *Engine) Cancel(ctx context.Context, orgID, workflowID, reason string) (CancelReport, error) {
	if reason == "" {
		reason = "cancelled by an admin"
	}
	var rep CancelReport
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		w, err := store.GetWorkflow(ctx, tx, orgID, workflowID)
		if err != nil {
			return err
		}
		rep, err = e.cancelTx(ctx, tx, w, reason)
		return err
	})
	return rep, err
}

// Pause stops new steps of a workflow from starting.
func (e *Engine) Pause(ctx context.Context, orgID, workflowID, reason string) error {
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		w, err := store.GetWorkflow(ctx, tx, orgID, workflowID)
		if err != nil {
			return err
		}
		if err := CheckWorkflowTransition(WorkflowState(w.State), WorkflowPaused); err != nil {
			return fmt.Errorf("%v: %w", err, ErrBadState)
		}
		ok, err := store.SetWorkflowState(ctx, tx, w.ID, []string{w.State}, string(WorkflowPaused), reason)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("workflow %s changed concurrently: %w", w.ID, store.ErrConflict)
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "lifecycle.workflow.paused", "workflow", w.ID,
			map[string]string{"state": w.State}, map[string]string{"reason": reason}))
	})
}

// Resume continues a paused workflow (running, or scheduled if it never started).
func (e *Engine) Resume(ctx context.Context, orgID, workflowID string) error {
	var run []store.RunnableStep
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		w, err := store.GetWorkflow(ctx, tx, orgID, workflowID)
		if err != nil {
			return err
		}
		if w.State != string(WorkflowPaused) {
			return fmt.Errorf("workflow %s is %s, not paused: %w", w.ID, w.State, ErrBadState)
		}
		to := WorkflowRunning
		started := false
		for _, s := range w.Steps {
			if s.State != string(StepPending) || s.Attempts > 0 {
				started = true
			}
		}
		if !started && w.RunAt.After(e.clock.Now()) {
			to = WorkflowScheduled
		}
		if _, err := store.SetWorkflowState(ctx, tx, w.ID, []string{string(WorkflowPaused)}, string(to), ""); err != nil {
			return err
		}
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "lifecycle.workflow.resumed", "workflow", w.ID, nil,
			map[string]string{"state": string(to)})); err != nil {
			return err
		}
		if to == WorkflowRunning {
			run, err = e.advanceTx(ctx, tx, w.ID)
		}
		return err
	})
	if err == nil {
		e.enqueue(ctx, run)
	}
	return err
}

// stepAction applies an admin action to one step.
func (e *Engine) stepAction(ctx context.Context, orgID, workflowID, stepID string, from []StepState, to StepState, action, reason string) error {
	var run []store.RunnableStep
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		w, err := store.GetWorkflow(ctx, tx, orgID, workflowID)
		if err != nil {
			return err
		}
		if WorkflowState(w.State).Terminal() {
			return fmt.Errorf("workflow %s is %s: %w", w.ID, w.State, ErrBadState)
		}
		var st *store.WorkflowStep
		for i := range w.Steps {
			if w.Steps[i].ID == stepID || w.Steps[i].Kind == stepID {
				st = &w.Steps[i]
			}
		}
		if st == nil {
			return fmt.Errorf("step %s of workflow %s: %w", stepID, workflowID, store.ErrNotFound)
		}
		fromS := make([]string, len(from))
		for i, f := range from {
			fromS[i] = string(f)
		}
		ok, err := store.SetStepState(ctx, tx, st.ID, fromS, store.StepUpdate{State: string(to), Output: st.Output, Reason: reason,
			LastError: st.LastError})
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("step %s is %s: %w", st.Kind, st.State, ErrBadState)
		}
		if to == StepSkipped {
			if err := store.CancelOpenTasks(ctx, tx, w.ID, domain.ActorFrom(ctx).ID, "step skipped: "+reason); err != nil {
				return err
			}
		}
		if to == StepPending && isCommandStep(st.Kind) {
			if err := e.newRound(ctx, tx, w, *st); err != nil {
				return err
			}
		}
		if w.State == string(WorkflowFailed) {
			if _, err := store.SetWorkflowState(ctx, tx, w.ID, []string{string(WorkflowFailed)}, string(WorkflowRunning), ""); err != nil {
				return err
			}
		}
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, action, "workflow_step", st.ID,
			map[string]string{"state": st.State}, map[string]string{"state": string(to), "reason": reason, "kind": st.Kind})); err != nil {
			return err
		}
		run, err = e.advanceTx(ctx, tx, w.ID)
		return err
	})
	if err == nil {
		e.enqueue(ctx, run)
	}
	return err
}

// Retry runs a failed, waiting or blocked step again. For a blocked lock or wipe, each
// device whose command ended without being done gets a new command (a new retry round
// in its idempotency key) and its manual task is cancelled as superseded; devices
// already done are not sent anything again.
func (e *Engine) Retry(ctx context.Context, orgID, workflowID, stepID string) error {
	return e.stepAction(ctx, orgID, workflowID, stepID, []StepState{StepFailed, StepWaiting, StepBlocked}, StepPending, "lifecycle.step.retried", "")
}

// Skip marks a step skipped; a reason is required. Skipping the wipe does not make a
// device count as wiped: the clean step still wants proof (see wipeProof).
func (e *Engine) Skip(ctx context.Context, orgID, workflowID, stepID, reason string) error {
	if reason == "" {
		return fmt.Errorf("%w: a reason is required to skip a step", store.ErrInvalidInput)
	}
	return e.stepAction(ctx, orgID, workflowID, stepID, []StepState{StepPending, StepWaiting, StepBlocked, StepFailed}, StepSkipped, "lifecycle.step.skipped", reason)
}

// newRound prepares a retried lock or wipe step: devices blocked on an ended command get
// a new retry round, and their open manual tasks are cancelled as superseded.
func (e *Engine) newRound(ctx context.Context, tx *sql.Tx, w store.Workflow, st store.WorkflowStep) error {
	d := parseData(w.Data)
	tasks, err := store.TasksOfStep(ctx, tx, st.ID)
	if err != nil {
		return err
	}
	by := domain.ActorFrom(ctx).ID
	changed := false
	for _, r := range deviceResults(st.Output) {
		if r.Outcome != outcomeBlocked {
			continue
		}
		if r.CommandID != "" {
			if d.Rounds == nil {
				d.Rounds = map[string]int{}
			}
			d.Rounds[st.ID+":"+r.DeviceID]++
			changed = true
		}
		for _, t := range tasks {
			if t.SubjectID == r.DeviceID && t.Kind == "manual_"+commandVerb(st.Kind) && t.State == "open" {
				if _, err := store.CloseTask(ctx, tx, w.OrgID, t.ID, "cancelled", by, "superseded: the step was retried by "+by); err != nil {
					return err
				}
			}
		}
	}
	if !changed {
		return nil
	}
	return store.SetWorkflowData(ctx, tx, w.ID, mustJSON(d))
}

// CompleteTask closes a manual task and wakes its step.
func (e *Engine) CompleteTask(ctx context.Context, orgID, taskID, note string) (store.LifecycleTask, error) {
	var t store.LifecycleTask
	var run []store.RunnableStep
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = store.GetTask(ctx, tx, orgID, taskID); err != nil {
			return err
		}
		ok, err := store.CloseTask(ctx, tx, orgID, taskID, "done", domain.ActorFrom(ctx).ID, note)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("task %s is %s: %w", taskID, t.State, ErrBadState)
		}
		if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, "lifecycle.task.completed", "task", taskID, nil,
			map[string]string{"note": note, "kind": t.Kind})); err != nil {
			return err
		}
		// A person, not the device, vouches for this lock or wipe: the device's audit
		// trail says who and that it was done by hand.
		if action, ok := byHandAudit[t.Kind]; ok {
			if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, orgID, action, "device", t.SubjectID, nil,
				map[string]string{"task_id": t.ID, "workflow_id": t.WorkflowID, "completed_by": domain.ActorFrom(ctx).ID, "note": note,
					"evidence": "none from the device: done by hand"})); err != nil {
				return err
			}
		}
		st, err := store.GetStep(ctx, tx, t.StepID)
		if err != nil {
			return err
		}
		w, err := store.GetWorkflow(ctx, tx, orgID, t.WorkflowID)
		if err != nil {
			return err
		}
		woke, err := e.wakeStep(ctx, tx, st)
		if err != nil {
			return err
		}
		if woke && w.State == string(WorkflowRunning) {
			run = append(run, store.RunnableStep{OrgID: orgID, StepID: st.ID, Gen: st.Attempts})
		}
		t, err = store.GetTask(ctx, tx, orgID, taskID)
		return err
	})
	if err == nil {
		e.enqueue(ctx, run)
	}
	return t, err
}
