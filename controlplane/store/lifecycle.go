package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// Workflow is a lifecycle workflow row (onboarding or offboarding) with its steps. The
// state machine lives in controlplane/lifecycle; the store only persists it with
// conditional updates so concurrent replicas cannot both win.
type Workflow struct {
	ID             string          `json:"id"`
	OrgID          string          `json:"org_id"`
	Kind           string          `json:"kind"`
	EmployeeID     string          `json:"employee_id"`
	State          string          `json:"state"`
	RunAt          time.Time       `json:"run_at"`
	Data           json.RawMessage `json:"data,omitempty"`
	TriggerEventID string          `json:"trigger_event_id,omitempty"`
	Reason         string          `json:"reason,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty"`
	Steps          []WorkflowStep  `json:"steps,omitempty"`
}

// WorkflowStep is one step of a workflow.
type WorkflowStep struct {
	ID         string          `json:"id"`
	OrgID      string          `json:"org_id"`
	WorkflowID string          `json:"workflow_id"`
	Seq        int             `json:"seq"`
	Kind       string          `json:"kind"`
	State      string          `json:"state"`
	Attempts   int             `json:"attempts"`
	Failures   int             `json:"failures"`
	NotBefore  *time.Time      `json:"not_before,omitempty"`
	LeaseUntil *time.Time      `json:"-"`
	RunToken   string          `json:"-"`
	LastError  string          `json:"last_error,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// LifecycleTask is a manual task a person completes (hand a box to a courier, confirm
// receipt, lock a device by hand).
type LifecycleTask struct {
	ID          string     `json:"id"`
	OrgID       string     `json:"org_id"`
	WorkflowID  string     `json:"workflow_id"`
	StepID      string     `json:"step_id"`
	Kind        string     `json:"kind"`
	Title       string     `json:"title"`
	Detail      string     `json:"detail,omitempty"`
	Assignee    string     `json:"assignee,omitempty"`
	DueAt       *time.Time `json:"due_at,omitempty"`
	State       string     `json:"state"` // open, done, cancelled
	SubjectID   string     `json:"subject_id,omitempty"`
	CompletedBy string     `json:"completed_by,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Note        string     `json:"note,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
}

func rawOr(r json.RawMessage, def string) string {
	if len(r) == 0 {
		return def
	}
	return string(r)
}

func utc(t time.Time) time.Time { return t.UTC() }

func utcOrNil(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UTC()
}

const workflowCols = `id, org_id, kind, employee_id, state, run_at, data, trigger_event_id, reason, created_at, updated_at, finished_at`

func scanWorkflow(s interface{ Scan(...any) error }) (Workflow, error) {
	var w Workflow
	var data string
	err := s.Scan(&w.ID, &w.OrgID, &w.Kind, &w.EmployeeID, &w.State, &w.RunAt, &data, &w.TriggerEventID, &w.Reason,
		&w.CreatedAt, &w.UpdatedAt, &w.FinishedAt)
	w.Data = json.RawMessage(data)
	return w, err
}

const stepCols = `id, org_id, workflow_id, seq, kind, state, attempts, failures, not_before, lease_until, run_token, last_error, output,
	reason, started_at, finished_at, updated_at`

func scanStep(s interface{ Scan(...any) error }) (WorkflowStep, error) {
	var st WorkflowStep
	var out string
	err := s.Scan(&st.ID, &st.OrgID, &st.WorkflowID, &st.Seq, &st.Kind, &st.State, &st.Attempts, &st.Failures, &st.NotBefore, &st.LeaseUntil,
		&st.RunToken, &st.LastError, &out, &st.Reason, &st.StartedAt, &st.FinishedAt, &st.UpdatedAt)
	st.Output = json.RawMessage(out)
	return st, err
}

// InsertWorkflow creates a workflow and its steps (in order, all pending). A second open
// workflow of the same kind for the same employee is ErrConflict.
func InsertWorkflow(ctx context.Context, q Querier, w *Workflow, stepKinds []string) error {
	if w.ID == "" {
		w.ID = domain.NewID()
	}
	now := domain.Now()
	w.CreatedAt, w.UpdatedAt = now, now
	_, err := q.ExecContext(ctx, `INSERT INTO lifecycle_workflows (id, org_id, kind, employee_id, state, run_at, data,
		trigger_event_id, reason, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		w.ID, w.OrgID, w.Kind, w.EmployeeID, w.State, utc(w.RunAt), rawOr(w.Data, "{}"), w.TriggerEventID, w.Reason, now, now)
	if IsUniqueViolation(err) {
		return fmt.Errorf("employee %s already has an open %s workflow: %w", w.EmployeeID, w.Kind, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert workflow: %w", err)
	}
	w.Steps = w.Steps[:0]
	for i, k := range stepKinds {
		st := WorkflowStep{ID: domain.NewID(), OrgID: w.OrgID, WorkflowID: w.ID, Seq: i + 1, Kind: k, State: "pending", UpdatedAt: now,
			Output: json.RawMessage("{}")}
		if _, err := q.ExecContext(ctx, `INSERT INTO lifecycle_steps (id, org_id, workflow_id, seq, kind, state, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, st.ID, st.OrgID, st.WorkflowID, st.Seq, st.Kind, st.State, now); err != nil {
			return fmt.Errorf("insert step %s: %w", k, err)
		}
		w.Steps = append(w.Steps, st)
	}
	return nil
}

// GetWorkflow reads a workflow with its steps. orgID "" reads any org (workers).
func GetWorkflow(ctx context.Context, q Querier, orgID, id string) (Workflow, error) {
	query := `SELECT ` + workflowCols + ` FROM lifecycle_workflows WHERE id = $1`
	args := []any{id}
	if orgID != "" {
		query += ` AND org_id = $2`
		args = append(args, orgID)
	}
	w, err := scanWorkflow(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return w, fmt.Errorf("workflow %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return w, fmt.Errorf("get workflow %s: %w", id, err)
	}
	w.Steps, err = queryAll(ctx, q, "get steps of "+id, scanStep,
		`SELECT `+stepCols+` FROM lifecycle_steps WHERE workflow_id = $1 ORDER BY seq`, id)
	return w, err
}

// GetWorkflow is the DB method form.
func (db *DB) GetWorkflow(ctx context.Context, orgID, id string) (Workflow, error) {
	return GetWorkflow(ctx, db.SQL, orgID, id)
}

// GetStep reads one step.
func GetStep(ctx context.Context, q Querier, id string) (WorkflowStep, error) {
	st, err := scanStep(q.QueryRowContext(ctx, `SELECT `+stepCols+` FROM lifecycle_steps WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("step %s: %w", id, ErrNotFound)
	}
	return st, err
}

// OpenWorkflowFor returns the open workflow of kind for an employee, or ErrNotFound.
func OpenWorkflowFor(ctx context.Context, q Querier, orgID, employeeID, kind string) (Workflow, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT id FROM lifecycle_workflows WHERE org_id = $1 AND employee_id = $2 AND kind = $3
		AND state IN ('scheduled', 'running', 'paused', 'failed')`, orgID, employeeID, kind).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Workflow{}, fmt.Errorf("open %s workflow for %s: %w", kind, employeeID, ErrNotFound)
	}
	if err != nil {
		return Workflow{}, err
	}
	return GetWorkflow(ctx, q, orgID, id)
}

// WorkflowFilter narrows a workflow listing.
type WorkflowFilter struct {
	State      string
	Kind       string
	EmployeeID string
}

// ListWorkflows returns one page of an org's workflows (without steps).
func (db *DB) ListWorkflows(ctx context.Context, orgID string, f WorkflowFilter, p Page) ([]Workflow, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("state = ?", f.State)
	w.addIf("kind = ?", f.Kind)
	w.addIf("employee_id = ?", f.EmployeeID)
	return listPage(ctx, db.SQL, "list workflows", scanWorkflow, func(w Workflow) string { return w.ID }, p,
		`SELECT `+workflowCols+` FROM lifecycle_workflows`, w)
}

func inList(n int, vals []string) (string, []any) {
	ph := make([]string, len(vals))
	args := make([]any, len(vals))
	for i, v := range vals {
		ph[i] = fmt.Sprintf("$%d", n+i)
		args[i] = v
	}
	return strings.Join(ph, ", "), args
}

// SetWorkflowState moves a workflow to `to` if it is in one of `from`; it reports
// whether the row changed (false means another writer got there first).
func SetWorkflowState(ctx context.Context, q Querier, id string, from []string, to, reason string) (bool, error) {
	now := domain.Now()
	var finished any
	if to == "succeeded" || to == "cancelled" {
		finished = now
	}
	ph, args := inList(6, from)
	res, err := q.ExecContext(ctx, `UPDATE lifecycle_workflows SET state = $1, reason = CASE WHEN $2 = '' THEN reason ELSE $2 END,
		updated_at = $3, finished_at = COALESCE($4, finished_at) WHERE id = $5 AND state IN (`+ph+`)`,
		append([]any{to, reason, now, finished, id}, args...)...)
	if err != nil {
		return false, fmt.Errorf("set workflow %s %s: %w", id, to, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetWorkflowRunAt reschedules a workflow that has not started.
func SetWorkflowRunAt(ctx context.Context, q Querier, id string, runAt time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE lifecycle_workflows SET run_at = $1, updated_at = $2 WHERE id = $3`, utc(runAt), domain.Now(), id)
	if err != nil {
		return fmt.Errorf("reschedule workflow %s: %w", id, err)
	}
	return nil
}

// SetWorkflowData replaces the workflow's data blob (what steps pass to each other).
func SetWorkflowData(ctx context.Context, q Querier, id string, data json.RawMessage) error {
	_, err := q.ExecContext(ctx, `UPDATE lifecycle_workflows SET data = $1, updated_at = $2 WHERE id = $3`, rawOr(data, "{}"), domain.Now(), id)
	if err != nil {
		return fmt.Errorf("set workflow data %s: %w", id, err)
	}
	return nil
}

// DueWorkflows lists scheduled workflows whose run_at has come.
func DueWorkflows(ctx context.Context, q Querier, now time.Time, limit int) ([]Workflow, error) {
	return queryAll(ctx, q, "due workflows", scanWorkflow, `SELECT `+workflowCols+` FROM lifecycle_workflows WHERE state = 'scheduled' AND run_at <= $1
		ORDER BY run_at, id LIMIT $2`, utc(now), limit)
}

// RunnableStep is a step id with its org, for enqueueing. Gen is the step's attempt
// count (part of the job's unique key).
type RunnableStep struct {
	OrgID, StepID string
	Gen           int
}

// DueSteps lists steps that should be running: pending steps of running workflows whose
// earlier steps are all done and whose not_before has come (clock time), and running steps whose lease expired (wall time,
// a replica died mid-step).
//
// Steps changed after staleBefore are skipped: whoever changed them enqueued them, so
// the sweeper only picks up what was lost (a crash between commit and enqueue).
func DueSteps(ctx context.Context, q Querier, now, wall, staleBefore time.Time, limit int) ([]RunnableStep, error) {
	return queryAll(ctx, q, "due steps", scanRunnableStep, `SELECT s.org_id, s.id, s.attempts FROM lifecycle_steps s JOIN lifecycle_workflows w ON w.id = s.workflow_id
		WHERE w.state = 'running' AND s.updated_at <= $4 AND ((s.state = 'pending' AND (s.not_before IS NULL OR s.not_before <= $1)
		      AND (s.lease_until IS NULL OR s.lease_until <= $2))
		   OR (s.state = 'running' AND s.lease_until < $2))
		AND NOT EXISTS (SELECT 1 FROM lifecycle_steps p WHERE p.workflow_id = s.workflow_id AND p.seq < s.seq
		   AND p.state NOT IN ('succeeded', 'skipped'))
		ORDER BY s.id LIMIT $3`, utc(now), utc(wall), limit, utc(staleBefore))
}

func scanRunnableStep(s rowScanner) (RunnableStep, error) {
	var r RunnableStep
	err := s.Scan(&r.OrgID, &r.StepID, &r.Gen)
	return r, err
}

// ClaimStep takes a step for one run: pending (and due; a pending step's lease_until is
// its retry-after time), or running with an expired lease. It reports false when another worker holds or finished it, or the workflow is
// not running. The caller's transaction should include the audit row.
func ClaimStep(ctx context.Context, q Querier, stepID, token string, now, wall, leaseUntil time.Time) (bool, error) {
	res, err := q.ExecContext(ctx, `UPDATE lifecycle_steps SET state = 'running', run_token = $1, lease_until = $2,
		attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3
		WHERE id = $4 AND ((state = 'pending' AND (not_before IS NULL OR not_before <= $5) AND (lease_until IS NULL OR lease_until <= $3))
		   OR (state = 'running' AND lease_until < $3))
		AND EXISTS (SELECT 1 FROM lifecycle_workflows w WHERE w.id = lifecycle_steps.workflow_id AND w.state = 'running')
		AND NOT EXISTS (SELECT 1 FROM lifecycle_steps p WHERE p.workflow_id = lifecycle_steps.workflow_id
		   AND p.seq < lifecycle_steps.seq AND p.state NOT IN ('succeeded', 'skipped'))`,
		token, utc(leaseUntil), utc(wall), stepID, utc(now))
	if err != nil {
		return false, fmt.Errorf("claim step %s: %w", stepID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// StepUpdate is the outcome a worker writes for a step it holds.
type StepUpdate struct {
	State     string
	Output    json.RawMessage // nil keeps the current output
	LastError string
	NotBefore *time.Time
	Reason    string
}

// FinishStep records the outcome of a run if the worker still holds the step (token);
// false means the lease was taken over and the result must be dropped.
func FinishStep(ctx context.Context, q Querier, stepID, token string, u StepUpdate) (bool, error) {
	now := domain.Now()
	var finished any
	if u.State == "succeeded" || u.State == "failed" || u.State == "skipped" || u.State == "cancelled" {
		finished = now
	}
	var out any
	if u.Output != nil {
		out = string(u.Output)
	}
	res, err := q.ExecContext(ctx, `UPDATE lifecycle_steps SET state = $1, output = COALESCE($2, output), last_error = $3,
		not_before = $4, reason = $5, finished_at = $6, updated_at = $7, lease_until = NULL, run_token = ''
		WHERE id = $8 AND run_token = $9 AND state = 'running'`,
		u.State, out, u.LastError, utcOrNil(u.NotBefore), u.Reason, finished, now, stepID, token)
	if err != nil {
		return false, fmt.Errorf("finish step %s: %w", stepID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetStepState moves a step from one of `from` to `to` outside a run (admin actions,
// task completion, cancellation). It reports whether the row changed.
func SetStepState(ctx context.Context, q Querier, stepID string, from []string, u StepUpdate) (bool, error) {
	now := domain.Now()
	var finished any
	if u.State == "succeeded" || u.State == "failed" || u.State == "skipped" || u.State == "cancelled" {
		finished = now
	}
	var out any
	if u.Output != nil {
		out = string(u.Output)
	}
	ph, args := inList(9, from)
	res, err := q.ExecContext(ctx, `UPDATE lifecycle_steps SET state = $1, output = COALESCE($2, output), last_error = $3,
		not_before = $4, reason = $5, finished_at = $6, updated_at = $7, lease_until = NULL, run_token = '', failures = 0
		WHERE id = $8 AND state IN (`+ph+`)`,
		append([]any{u.State, out, u.LastError, utcOrNil(u.NotBefore), u.Reason, finished, now, stepID}, args...)...)
	if err != nil {
		return false, fmt.Errorf("set step %s %s: %w", stepID, u.State, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

const taskCols = `id, org_id, workflow_id, step_id, kind, title, detail, assignee, due_at, state, subject_id, completed_by,
	completed_at, note, created_at`

func scanTask(s interface{ Scan(...any) error }) (LifecycleTask, error) {
	var t LifecycleTask
	err := s.Scan(&t.ID, &t.OrgID, &t.WorkflowID, &t.StepID, &t.Kind, &t.Title, &t.Detail, &t.Assignee, &t.DueAt, &t.State,
		&t.SubjectID, &t.CompletedBy, &t.CompletedAt, &t.Note, &t.CreatedAt)
	return t, err
}

// InsertTask creates an open manual task.
func InsertTask(ctx context.Context, q Querier, t *LifecycleTask) error {
	if t.ID == "" {
		t.ID = domain.NewID()
	}
	t.State, t.CreatedAt = "open", domain.Now()
	_, err := q.ExecContext(ctx, `INSERT INTO lifecycle_tasks (id, org_id, workflow_id, step_id, kind, title, detail, assignee,
		due_at, state, subject_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		t.ID, t.OrgID, t.WorkflowID, t.StepID, t.Kind, t.Title, t.Detail, t.Assignee, utcOrNil(t.DueAt), t.State, t.SubjectID, t.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert task: %w", err)
	}
	// The prompt to whoever must do the task, decided with the task itself.
	return WriteEvent(ctx, q, domain.Event{OrgID: t.OrgID, Type: domain.EventTaskCreated, SubjectType: "task", SubjectID: t.ID,
		Payload: mustJSON(domain.TaskCreatedPayload{TaskID: t.ID, WorkflowID: t.WorkflowID, Kind: t.Kind, Title: t.Title,
			Detail: t.Detail, Assignee: t.Assignee, EmployeeID: t.SubjectID, DueAt: t.DueAt})})
}

// GetTask reads a task of an org.
func GetTask(ctx context.Context, q Querier, orgID, id string) (LifecycleTask, error) {
	t, err := scanTask(q.QueryRowContext(ctx, `SELECT `+taskCols+` FROM lifecycle_tasks WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return t, err
}

// TasksOfStep lists a step's tasks.
func TasksOfStep(ctx context.Context, q Querier, stepID string) ([]LifecycleTask, error) {
	return queryAll(ctx, q, "tasks of step "+stepID, scanTask,
		`SELECT `+taskCols+` FROM lifecycle_tasks WHERE step_id = $1 ORDER BY id`, stepID)
}

// TaskFilter narrows a task listing.
type TaskFilter struct {
	State      string
	WorkflowID string
	Assignee   string
}

// ListTasks returns one page of an org's tasks.
func (db *DB) ListTasks(ctx context.Context, orgID string, f TaskFilter, p Page) ([]LifecycleTask, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	w.addIf("state = ?", f.State)
	w.addIf("workflow_id = ?", f.WorkflowID)
	w.addIf("assignee = ?", f.Assignee)
	return listPage(ctx, db.SQL, "list tasks", scanTask, func(t LifecycleTask) string { return t.ID }, p,
		`SELECT `+taskCols+` FROM lifecycle_tasks`, w)
}

// CloseTask marks an open task done or cancelled; false if it was not open.
func CloseTask(ctx context.Context, q Querier, orgID, id, state, by, note string) (bool, error) {
	res, err := q.ExecContext(ctx, `UPDATE lifecycle_tasks SET state = $1, completed_by = $2, completed_at = $3, note = $4
		WHERE org_id = $5 AND id = $6 AND state = 'open'`, state, by, domain.Now(), note, orgID, id)
	if err != nil {
		return false, fmt.Errorf("close task %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// CancelOpenTasks cancels every open task of a workflow.
func CancelOpenTasks(ctx context.Context, q Querier, workflowID, by, note string) error {
	_, err := q.ExecContext(ctx, `UPDATE lifecycle_tasks SET state = 'cancelled', completed_by = $1, completed_at = $2, note = $3
		WHERE workflow_id = $4 AND state = 'open'`, by, domain.Now(), note, workflowID)
	if err != nil {
		return fmt.Errorf("cancel tasks of %s: %w", workflowID, err)
	}
	return nil
}

// ---- outbox consumption ----

// ConsumerCursor returns a consumer's cursor (0 for a new consumer).
func ConsumerCursor(ctx context.Context, q Querier, name string) (int64, error) {
	var seq int64
	err := q.QueryRowContext(ctx, `SELECT cursor_seq FROM lifecycle_consumers WHERE name = $1`, name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("consumer cursor %s: %w", name, err)
	}
	return seq, nil
}

// AdvanceConsumerCursor moves the cursor forward (never back).
func AdvanceConsumerCursor(ctx context.Context, q Querier, name string, seq int64) error {
	now := domain.Now()
	_, err := q.ExecContext(ctx, `INSERT INTO lifecycle_consumers (name, cursor_seq, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET cursor_seq = excluded.cursor_seq, updated_at = excluded.updated_at
		WHERE lifecycle_consumers.cursor_seq < excluded.cursor_seq`, name, seq, now)
	if err != nil {
		return fmt.Errorf("advance consumer %s: %w", name, err)
	}
	return nil
}

// MarkEventHandled records that consumer handled an event; false means it already was
// (by this or another replica), so the caller must roll back and skip it.
func MarkEventHandled(ctx context.Context, q Querier, consumer string, ev domain.Event) (bool, error) {
	res, err := q.ExecContext(ctx, `INSERT INTO lifecycle_handled_events (consumer, event_id, seq, handled_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (consumer, event_id) DO NOTHING`, consumer, ev.ID, ev.Seq, domain.Now())
	if err != nil {
		return false, fmt.Errorf("mark event %s handled: %w", ev.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// HandledEventSeqs returns which of the seqs in (after, upto] consumer has handled.
func HandledEventSeqs(ctx context.Context, q Querier, consumer string, after, upto int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	err := queryEach(ctx, q, "handled events", func(r rowScanner) error {
		var s int64
		if err := r.Scan(&s); err != nil {
			return err
		}
		out[s] = true
		return nil
	}, `SELECT seq FROM lifecycle_handled_events WHERE consumer = $1 AND seq > $2 AND seq <= $3`, consumer, after, upto)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TasksOfStepSubject lists a workflow's tasks of kind about subject.
func TasksOfStepSubject(ctx context.Context, q Querier, workflowID, kind, subject string) ([]LifecycleTask, error) {
	return queryAll(ctx, q, "tasks about "+subject, scanTask, `SELECT `+taskCols+` FROM lifecycle_tasks WHERE workflow_id = $1 AND kind = $2 AND subject_id = $3
		AND state = 'open' ORDER BY id`, workflowID, kind, subject)
}

// CommandOutcome is what lifecycle reads of a device command to decide whether a step
// waiting for it must look again.
type CommandOutcome struct {
	ID             string
	OrgID          string
	IdempotencyKey string
	State          string
}

// CommandOutcomes reads the state and idempotency key of the commands with these ids
// (missing ids are left out), in batches so any number of ids fits one call.
func CommandOutcomes(ctx context.Context, q Querier, ids []string) (map[string]CommandOutcome, error) {
	out := make(map[string]CommandOutcome, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), 200)
		ph, args := inList(1, ids[:n])
		ids = ids[n:]
		err := queryEach(ctx, q, "command outcomes", func(r rowScanner) error {
			var c CommandOutcome
			var key *string
			if err := r.Scan(&c.ID, &c.OrgID, &key, &c.State); err != nil {
				return err
			}
			if key != nil {
				c.IdempotencyKey = *key
			}
			out[c.ID] = c
			return nil
		}, `SELECT id, org_id, idempotency_key, state FROM device_commands WHERE id IN (`+ph+`)`, args...)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// StepsAwaitingCommands lists the steps of these kinds that wait on something (waiting
// or blocked) in running workflows, with their outputs, which name the commands they
// wait for.
func StepsAwaitingCommands(ctx context.Context, q Querier, kinds []string, limit int) ([]WorkflowStep, error) {
	ph, args := inList(2, kinds)
	return queryAll(ctx, q, "steps awaiting commands", scanStep, `SELECT `+prefixed("s.", stepCols)+` FROM lifecycle_steps s
		JOIN lifecycle_workflows w ON w.id = s.workflow_id
		WHERE s.state IN ('waiting', 'blocked') AND w.state = 'running' AND s.kind IN (`+ph+`) ORDER BY s.id LIMIT $1`,
		append([]any{limit}, args...)...)
}

// prefixed qualifies every column of a column list with a table alias.
func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
