package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Reactivating app accounts after a canceled termination or a rehire. The offboarding
// is cancelled in the event's transaction, and in that same transaction a River job
// (ReactivateArgs) is inserted to bring back the accounts its revoke step suspended:
// a crash right after the commit leaves the job, never a lost reactivation. Connector
// calls run in the job, outside any transaction. A transient failure (429, 5xx, no
// answer) retries the job with the engine's backoff, or the target's Retry-After when
// longer (capped); a permanent one (or one still transient on the last attempt) gets a
// manual task naming the app and the target's reason. Each app's outcome is recorded
// on the workflow's data as it settles, so a retry never calls an app again nor writes
// its task twice; when every app is settled, lifecycle.apps.reactivated is audited
// once with every app's outcome.

// maxRetryAfter caps how long a target's Retry-After may delay the next attempt.
const maxRetryAfter = 10 * time.Minute

// ReactivateArgs is the River job that reactivates the accounts a cancelled offboarding
// suspended. Event is the event type that undid the offboarding (for the audit).
type ReactivateArgs struct {
	OrgID      string `json:"org_id" river:"unique"`
	WorkflowID string `json:"workflow_id" river:"unique"`
	Event      string `json:"event"`
}

// Kind implements river.JobArgs.
func (ReactivateArgs) Kind() string { return "lifecycle.reactivate_apps" }

// InsertOpts makes the job unique per workflow: a rehire after a canceled termination
// finds the first job (or its finished reactivation) instead of starting another.
func (ReactivateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Reactivation is the progress of one cancelled offboarding's reactivation, kept in
// the workflow's data.
type Reactivation struct {
	Event string `json:"event"`
	// Apps are the settled apps: done, or blocked with a manual task. A settled app is
	// never called again.
	Apps []AppResult `json:"apps"`
	// Finished: every suspended app is settled and the outcome audited.
	Finished bool `json:"finished"`
}

func (r *Reactivation) settled(app string) bool {
	if r == nil {
		return false
	}
	for _, a := range r.Apps {
		if a.App == app {
			return true
		}
	}
	return false
}

type reactivateWorker struct {
	river.WorkerDefaults[ReactivateArgs]
	e *Engine
	// waits holds, per job id, the Retry-After of the attempt that just failed, for
	// NextRetry (River calls it right after Work returns, without the error).
	waits sync.Map
}

func (w *reactivateWorker) Work(ctx context.Context, j *river.Job[ReactivateArgs]) error {
	wait, err := w.e.reactivate(systemCtx(ctx), j.Args, j.Attempt >= j.MaxAttempts)
	if err != nil && wait > 0 {
		w.waits.Store(j.ID, wait)
	}
	return err
}

// NextRetry is the engine's backoff, or the target's Retry-After when that is longer.
func (w *reactivateWorker) NextRetry(j *river.Job[ReactivateArgs]) time.Time {
	d := w.e.cfg.Backoff(j.Attempt)
	if v, ok := w.waits.LoadAndDelete(j.ID); ok {
		d = max(d, v.(time.Duration))
	}
	return time.Now().Add(d + 10*time.Millisecond)
}

// Timeout bounds one attempt (a SCIM lookup and PATCH per suspended app).
func (w *reactivateWorker) Timeout(*river.Job[ReactivateArgs]) time.Duration { return 5 * time.Minute }

// durableReactivation reports whether reactivations go through a job inserted in the
// cancelling transaction (a River queue with its client); without one (tools, tests
// without a job runner) they run once right after the commit.
func (e *Engine) durableReactivation() bool {
	q, ok := e.queue.(txQueue)
	return ok && q.insertsTx()
}

// scheduleReactivation inserts, in the transaction that cancelled the employee's
// offboarding, the job that reactivates what it suspended.
func (e *Engine) scheduleReactivation(ctx context.Context, tx *sql.Tx, ev domain.Event) error {
	if !e.durableReactivation() || e.apps == nil {
		return nil
	}
	q := e.queue.(txQueue)
	w, ok, err := reactivationTarget(ctx, tx, ev.OrgID, ev.SubjectID)
	if err != nil || !ok {
		return err
	}
	return q.InsertJobTx(ctx, tx, ReactivateArgs{OrgID: w.OrgID, WorkflowID: w.ID, Event: ev.Type},
		&river.InsertOpts{MaxAttempts: e.cfg.MaxAttempts})
}

// reactivateAfterCancel is the reactivation without a job runner: one attempt right
// after the commit, whose transient failures become manual tasks (nothing retries).
func (e *Engine) reactivateAfterCancel(ctx context.Context, ev domain.Event) error {
	if e.apps == nil {
		return nil
	}
	w, ok, err := reactivationTarget(ctx, e.db.SQL, ev.OrgID, ev.SubjectID)
	if err != nil || !ok {
		return err
	}
	_, err = e.reactivate(ctx, ReactivateArgs{OrgID: w.OrgID, WorkflowID: w.ID, Event: ev.Type}, true)
	return err
}

// reactivationTarget is the employee's latest cancelled offboarding when its revoke
// step suspended accounts and their reactivation has not finished.
func reactivationTarget(ctx context.Context, q store.Querier, orgID, employeeID string) (store.Workflow, bool, error) {
	ids, err := store.QueryStrings(ctx, q, `SELECT id FROM lifecycle_workflows WHERE org_id = $1 AND employee_id = $2
		AND kind = $3 AND state = $4 ORDER BY created_at DESC, id DESC LIMIT 1`, orgID, employeeID, string(KindOffboarding), string(WorkflowCancelled))
	if err != nil || len(ids) == 0 {
		return store.Workflow{}, false, err
	}
	w, err := store.GetWorkflow(ctx, q, orgID, ids[0])
	if err != nil {
		return w, false, err
	}
	if r := parseData(w.Data).Reactivation; r != nil && r.Finished {
		return w, false, nil
	}
	_, suspended := suspendedApps(w)
	return w, len(suspended) > 0, nil
}

// suspendedApps returns w's revoke step and the apps it suspended or deleted (a
// GitHub membership ends; a connector in delete mode), sorted.
func suspendedApps(w store.Workflow) (store.WorkflowStep, []string) {
	for _, s := range w.Steps {
		if s.Kind != string(StepRevokeApps) {
			continue
		}
		var out []string
		for app, r := range previousApps(s.Output) {
			if r.Action == "suspended" || r.Action == "deleted" {
				out = append(out, app)
			}
		}
		sort.Strings(out)
		return s, out
	}
	return store.WorkflowStep{}, nil
}

// reactivate makes one attempt at the reactivation of workflow a.WorkflowID. Apps
// already settled are skipped. final: no attempt follows, so an app still unavailable
// gets its manual task now. An error means an attempt should follow; with it comes the
// longest Retry-After the targets asked for (capped).
func (e *Engine) reactivate(ctx context.Context, a ReactivateArgs, final bool) (time.Duration, error) {
	if e.apps == nil {
		return 0, nil
	}
	w, err := store.GetWorkflow(ctx, e.db.SQL, a.OrgID, a.WorkflowID)
	if err != nil {
		return 0, fmt.Errorf("reactivate apps of workflow %s: %w", a.WorkflowID, err)
	}
	prog := parseData(w.Data).Reactivation
	if prog != nil && prog.Finished {
		return 0, nil
	}
	revoke, suspended := suspendedApps(w)
	if len(suspended) == 0 {
		return 0, nil
	}
	emp, err := store.GetEmployee(ctx, e.db.SQL, a.OrgID, w.EmployeeID)
	if err != nil {
		return 0, fmt.Errorf("reactivate apps of workflow %s: %w", w.ID, err)
	}
	reg, _, err := e.apps.Connectors(ctx, a.OrgID)
	if err != nil {
		return 0, fmt.Errorf("reactivate apps of workflow %s: connectors: %w", w.ID, err)
	}
	rules, err := e.apps.Rules(ctx, a.OrgID)
	if err != nil {
		return 0, fmt.Errorf("reactivate apps of workflow %s: rules: %w", w.ID, err)
	}
	groups := map[string][]string{}
	for _, g := range apps.Evaluate(rules, apps.Subject{Departments: emp.HR.Departments, Role: emp.HR.Title, MemberType: string(emp.HR.MemberType)}) {
		groups[g.App] = g.Groups
	}
	revoked := previousApps(revoke.Output)
	var unavailable []string
	var wait time.Duration
	for _, app := range suspended {
		if prog.settled(app) {
			continue
		}
		p := person(emp)
		// The account the offboarding acted on, found by its id even if renamed since.
		p.AccountID = revoked[app].AccountID
		ar, err := reactivateApp(ctx, reg, p, app, revoked[app].Action, groups[app])
		var task *store.LifecycleTask
		if err != nil {
			ar.Error = err.Error()
			if retry, after := transientApp(err); retry && !final {
				unavailable = append(unavailable, ar.Error)
				wait = max(wait, after)
				continue
			}
			task = e.reactivateTask(revoke, emp, app, err)
			ar.Outcome, ar.ManualTask = outcomeBlocked, task.ID
		}
		if err := e.settleReactivation(ctx, w, a.Event, ar, task); err != nil {
			return 0, err
		}
	}
	if len(unavailable) > 0 {
		err := fmt.Errorf("reactivate apps of workflow %s: unavailable: %s", w.ID, strings.Join(unavailable, "; "))
		e.log.Warn("reactivation will retry", "workflow", w.ID, "err", err)
		return min(wait, maxRetryAfter), err
	}
	return 0, e.finishReactivation(ctx, w, emp.ID, a.Event, suspended)
}

// reactivateTask is the manual task of an app the connector could not reactivate.
func (e *Engine) reactivateTask(revoke store.WorkflowStep, emp domain.Employee, app string, err error) *store.LifecycleTask {
	return &store.LifecycleTask{ID: domain.NewID(), OrgID: revoke.OrgID, WorkflowID: revoke.WorkflowID, StepID: revoke.ID,
		Kind: "reactivate_app", SubjectID: app, Assignee: e.cfg.DefaultAssignee,
		Title:  fmt.Sprintf("Reactivate %s access for %s by hand", app, displayName(emp)),
		Detail: appAdvice("reactivate", app, err)}
}

// reactivateApp calls app's connector once; ar is the app's outcome when err is nil.
// A suspended account is reactivated; a deleted one (revoked is "deleted": a GitHub
// membership, a connector in delete mode) is provisioned again into the groups the
// rules give the person today.
func reactivateApp(ctx context.Context, reg apps.Registry, p apps.Person, app, revoked string, groups []string) (AppResult, error) {
	ar := AppResult{Result: apps.Result{App: app}, Outcome: outcomeDone}
	c, err := reg.Get(app)
	caps := apps.Capabilities{}
	if err == nil {
		caps = c.Capabilities()
	}
	switch {
	case err != nil:
		return ar, Permanent(err) // the connector was removed: only a person can do it now
	case revoked == "deleted" && !caps.Provision:
		return ar, Permanent(fmt.Errorf("the %s connector cannot create the deleted account again: %w", app, apps.ErrNotSupported))
	case revoked == "deleted":
		r, err := c.Provision(ctx, p, groups)
		if err != nil {
			return ar, err
		}
		ar.Result, ar.App = r, app
		return ar, nil
	case !caps.Reactivate:
		return ar, Permanent(fmt.Errorf("the %s connector cannot reactivate accounts: %w", app, apps.ErrNotSupported))
	}
	r, err := c.Reactivate(ctx, p)
	if err != nil {
		return ar, err
	}
	ar.Result, ar.App = r, app
	return ar, nil
}

// lockedData reads workflow id's data in tx after taking its row's write lock, so two
// overlapping attempts settle each app once.
func lockedData(ctx context.Context, tx *sql.Tx, id string) (wfData, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE lifecycle_workflows SET updated_at = updated_at WHERE id = $1`, id); err != nil {
		return wfData{}, fmt.Errorf("lock workflow %s: %w", id, err)
	}
	w, err := store.GetWorkflow(ctx, tx, "", id)
	if err != nil {
		return wfData{}, err
	}
	return parseData(w.Data), nil
}

// settleReactivation records one app's final outcome (and its manual task) on the
// workflow, unless an earlier attempt already did.
func (e *Engine) settleReactivation(ctx context.Context, w store.Workflow, event string, ar AppResult, task *store.LifecycleTask) error {
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		d, err := lockedData(ctx, tx, w.ID)
		if err != nil {
			return err
		}
		if d.Reactivation.settled(ar.App) {
			return nil
		}
		if d.Reactivation == nil {
			d.Reactivation = &Reactivation{Event: event}
		}
		d.Reactivation.Apps = append(d.Reactivation.Apps, ar)
		if task != nil {
			due := e.clock.Now().Add(e.cfg.TaskDue)
			task.DueAt = &due
			if err := store.InsertTask(ctx, tx, task); err != nil {
				return err
			}
			if err := store.WriteAudit(ctx, tx, store.AuditFor(ctx, task.OrgID, "lifecycle.task.created", "task", task.ID, nil, *task)); err != nil {
				return err
			}
		}
		return store.SetWorkflowData(ctx, tx, w.ID, mustJSON(d))
	})
}

// finishReactivation audits every app's outcome once all are settled.
func (e *Engine) finishReactivation(ctx context.Context, w store.Workflow, employeeID, event string, suspended []string) error {
	return e.db.InTx(ctx, func(tx *sql.Tx) error {
		d, err := lockedData(ctx, tx, w.ID)
		if err != nil {
			return err
		}
		r := d.Reactivation
		if r == nil || r.Finished {
			return nil
		}
		by := map[string]AppResult{}
		for _, a := range r.Apps {
			by[a.App] = a
		}
		results := make([]AppResult, 0, len(suspended))
		for _, app := range suspended {
			results = append(results, by[app])
		}
		r.Finished = true
		if err := store.SetWorkflowData(ctx, tx, w.ID, mustJSON(d)); err != nil {
			return err
		}
		return store.WriteAudit(ctx, tx, store.AuditFor(ctx, w.OrgID, "lifecycle.apps.reactivated", "workflow", w.ID, nil,
			map[string]any{"event": event, "employee_id": employeeID, "apps": results}))
	})
}

// isReactivation reports whether ev undoes an offboarding (its accounts come back).
func isReactivation(ev domain.Event) bool {
	return ev.Type == domain.EventEmployeeTerminationCanceled || ev.Type == domain.EventEmployeeRehired
}
