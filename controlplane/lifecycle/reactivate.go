package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Reactivating app accounts after a canceled termination or a rehire. The offboarding
// is cancelled in the event's transaction; the accounts its revoke step suspended are
// reactivated right after that commits (connector calls never run inside a
// transaction). Each app's outcome is audited; an app that cannot be reactivated gets a
// manual task naming it and the target's reason.

// reactivateAfterCancel reactivates what the employee's cancelled offboarding suspended.
func (e *Engine) reactivateAfterCancel(ctx context.Context, ev domain.Event) error {
	if e.apps == nil {
		return nil
	}
	ws, _, err := e.db.ListWorkflows(ctx, ev.OrgID, store.WorkflowFilter{EmployeeID: ev.SubjectID, Kind: string(KindOffboarding)}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		return err
	}
	var latest *store.Workflow
	for i := range ws {
		if WorkflowState(ws[i].State) == WorkflowCancelled && (latest == nil || ws[i].CreatedAt.After(latest.CreatedAt)) {
			latest = &ws[i]
		}
	}
	if latest == nil {
		return nil
	}
	w, err := e.db.GetWorkflow(ctx, ev.OrgID, latest.ID)
	if err != nil {
		return err
	}
	var revoke *store.WorkflowStep
	for i := range w.Steps {
		if w.Steps[i].Kind == string(StepRevokeApps) {
			revoke = &w.Steps[i]
		}
	}
	if revoke == nil {
		return nil
	}
	var suspended []string
	for app, r := range previousApps(revoke.Output) {
		if r.Action == "suspended" {
			suspended = append(suspended, app)
		}
	}
	if len(suspended) == 0 {
		return nil
	}
	sort.Strings(suspended)
	emp, err := e.db.GetEmployee(ctx, ev.OrgID, ev.SubjectID)
	if err != nil {
		return err
	}
	reg, _, err := e.apps.Connectors(ctx, ev.OrgID)
	if err != nil {
		return err
	}
	p := person(emp)
	var results []AppResult
	var tasks []store.LifecycleTask
	for _, app := range suspended {
		ar := AppResult{Result: apps.Result{App: app}, Outcome: outcomeDone}
		c, err := reg.Get(app)
		if err == nil {
			var r apps.Result
			if r, err = c.Reactivate(ctx, p); err == nil {
				ar.Result = r
			}
		}
		if err != nil {
			ar.Error, ar.Outcome, ar.ManualTask = err.Error(), outcomeBlocked, domain.NewID()
			tasks = append(tasks, store.LifecycleTask{ID: ar.ManualTask, OrgID: ev.OrgID, WorkflowID: w.ID, StepID: revoke.ID,
				Kind: "reactivate_app", SubjectID: app, Assignee: e.cfg.DefaultAssignee,
				Title:  fmt.Sprintf("Reactivate %s access for %s by hand", app, displayName(emp)),
				Detail: appAdvice("reactivate", app, err)})
		}
		results = append(results, ar)
	}
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		for i := range tasks {
			due := e.clock.Now().Add(e.cfg.TaskDue)
			tasks[i].DueAt = &due
			if err := store.InsertTask(ctx, tx, &tasks[i]); err != nil {
				return err
			}
			if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, ev.OrgID, "lifecycle.task.created", "task", tasks[i].ID, nil, tasks[i])); err != nil {
				return err
			}
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, ev.OrgID, "lifecycle.apps.reactivated", "workflow", w.ID, nil,
			map[string]any{"event": ev.Type, "employee_id": emp.ID, "apps": results}))
	})
}

// isReactivation reports whether ev undoes an offboarding (its accounts come back).
func isReactivation(ev domain.Event) bool {
	return ev.Type == domain.EventEmployeeTerminationCanceled || ev.Type == domain.EventEmployeeRehired
}
