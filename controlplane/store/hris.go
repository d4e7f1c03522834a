package store

// SQL of the HR sync (controlplane/hris/hrsync): connections, sync runs, webhook
// events and per-member provider details. Tables: migration 00100_hrsync.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// HR connection states.
const (
	HRStatePending    = "pending"
	HRStateActive     = "active"
	HRStateTerminated = "terminated"
)

// HRConnection is an organization's link to an HR provider.
type HRConnection struct {
	ID                  string     `json:"id"`
	OrgID               string     `json:"org_id"`
	Provider            string     `json:"provider"`
	State               string     `json:"state"`
	Reason              string     `json:"reason,omitempty"`    // why it was terminated
	Attention           string     `json:"attention,omitempty"` // needs an admin (e.g. mass termination held)
	CompanyID           string     `json:"company_id,omitempty"`
	CompanyName         string     `json:"company_name,omitempty"`
	Scopes              string     `json:"scopes,omitempty"`
	GrantSealed         string     `json:"-"`
	WebhookSecretSealed string     `json:"-"`
	OAuthState          string     `json:"-"`
	OAuthStateExpires   *time.Time `json:"-"`
	ImportDone          bool       `json:"import_done"`
	ImportCursor        string     `json:"-"`
	Checkpoint          *time.Time `json:"checkpoint,omitempty"`
	LastFullAt          *time.Time `json:"last_full_at,omitempty"`
	LastSyncAt          *time.Time `json:"last_sync_at,omitempty"`
	LastWebhookAt       *time.Time `json:"last_webhook_at,omitempty"`
	ApproveTerminations bool       `json:"approve_terminations"`
	CreatedBy           string     `json:"created_by,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
	TerminatedAt        *time.Time `json:"terminated_at,omitempty"`
}

const hrConnCols = `id, org_id, provider, state, reason, attention, company_id, company_name, scopes, grant_sealed,
	webhook_secret_sealed, oauth_state, oauth_state_expires, import_done, import_cursor, checkpoint, last_full_at,
	last_sync_at, last_webhook_at, approve_terminations, created_by, created_at, updated_at, terminated_at`

func scanHRConn(s interface{ Scan(...any) error }) (HRConnection, error) {
	var c HRConnection
	var exp, cp, full, last, wh, term sql.NullTime
	err := s.Scan(&c.ID, &c.OrgID, &c.Provider, &c.State, &c.Reason, &c.Attention, &c.CompanyID, &c.CompanyName, &c.Scopes,
		&c.GrantSealed, &c.WebhookSecretSealed, &c.OAuthState, &exp, &c.ImportDone, &c.ImportCursor, &cp, &full, &last, &wh,
		&c.ApproveTerminations, &c.CreatedBy, &c.CreatedAt, &c.UpdatedAt, &term)
	c.OAuthStateExpires, c.Checkpoint, c.LastFullAt = nullTimePtr(exp), nullTimePtr(cp), nullTimePtr(full)
	c.LastSyncAt, c.LastWebhookAt, c.TerminatedAt = nullTimePtr(last), nullTimePtr(wh), nullTimePtr(term)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, err
}

func (c *HRConnection) args() []any {
	return []any{c.ID, c.OrgID, c.Provider, c.State, c.Reason, c.Attention, c.CompanyID, c.CompanyName, c.Scopes,
		c.GrantSealed, c.WebhookSecretSealed, c.OAuthState, utcPtr(c.OAuthStateExpires), c.ImportDone, c.ImportCursor,
		utcPtr(c.Checkpoint), utcPtr(c.LastFullAt), utcPtr(c.LastSyncAt), utcPtr(c.LastWebhookAt), c.ApproveTerminations,
		c.CreatedBy, c.CreatedAt.UTC(), c.UpdatedAt.UTC(), utcPtr(c.TerminatedAt)}
}

// InsertHRConnection creates a connection; ErrConflict when the org already has a
// live (non-terminated) one.
func InsertHRConnection(ctx context.Context, q Querier, c *HRConnection) error {
	if c.ID == "" {
		c.ID = domain.NewID()
	}
	now := domain.Now()
	c.CreatedAt, c.UpdatedAt = now, now
	_, err := q.ExecContext(ctx, `INSERT INTO hr_connections (`+hrConnCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
		$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)`, c.args()...)
	if IsUniqueViolation(err) {
		return fmt.Errorf("org %s already has an HR connection: %w", c.OrgID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert hr connection: %w", err)
	}
	return nil
}

// UpdateHRConnection rewrites a connection row.
func UpdateHRConnection(ctx context.Context, q Querier, c *HRConnection) error {
	c.UpdatedAt = domain.Now()
	a := c.args()
	res, err := q.ExecContext(ctx, `UPDATE hr_connections SET provider = $3, state = $4, reason = $5, attention = $6,
		company_id = $7, company_name = $8, scopes = $9, grant_sealed = $10, webhook_secret_sealed = $11, oauth_state = $12,
		oauth_state_expires = $13, import_done = $14, import_cursor = $15, checkpoint = $16, last_full_at = $17,
		last_sync_at = $18, last_webhook_at = $19, approve_terminations = $20, created_by = $21, updated_at = $22,
		terminated_at = $23 WHERE id = $1 AND org_id = $2`, append(a[:21:21], a[22], a[23])...)
	if IsUniqueViolation(err) {
		return fmt.Errorf("hr connection %s: %w", c.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update hr connection %s: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("hr connection %s: %w", c.ID, ErrNotFound)
	}
	return nil
}

func getHRConn(ctx context.Context, q Querier, where string, args ...any) (HRConnection, error) {
	c, err := scanHRConn(q.QueryRowContext(ctx, `SELECT `+hrConnCols+` FROM hr_connections WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("hr connection: %w", ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("get hr connection: %w", err)
	}
	return c, nil
}

// GetHRConnection reads a connection by id (any org when orgID is "").
func GetHRConnection(ctx context.Context, q Querier, orgID, id string) (HRConnection, error) {
	if orgID == "" {
		return getHRConn(ctx, q, `id = $1`, id)
	}
	return getHRConn(ctx, q, `id = $1 AND org_id = $2`, id, orgID)
}

// LockHRConnection reads a connection inside tx for a read-modify-write,
// locking the row on Postgres (SQLite transactions already hold the write lock).
func (db *DB) LockHRConnection(ctx context.Context, tx *sql.Tx, orgID, id string) (HRConnection, error) {
	if db.Dialect == Postgres {
		return getHRConn(ctx, tx, `id = $1 AND org_id = $2 FOR UPDATE`, id, orgID)
	}
	return GetHRConnection(ctx, tx, orgID, id)
}

// LockLiveHRConnection is GetLiveHRConnection with LockHRConnection's locking.
func (db *DB) LockLiveHRConnection(ctx context.Context, tx *sql.Tx, orgID string) (HRConnection, error) {
	if db.Dialect == Postgres {
		return getHRConn(ctx, tx, `org_id = $1 AND state <> 'terminated' FOR UPDATE`, orgID)
	}
	return GetLiveHRConnection(ctx, tx, orgID)
}

// GetLiveHRConnection returns the org's pending or active connection.
func GetLiveHRConnection(ctx context.Context, q Querier, orgID string) (HRConnection, error) {
	return getHRConn(ctx, q, `org_id = $1 AND state <> 'terminated'`, orgID)
}

// GetLatestHRConnection returns the org's newest connection, whatever its state.
func GetLatestHRConnection(ctx context.Context, q Querier, orgID string) (HRConnection, error) {
	return getHRConn(ctx, q, `org_id = $1 ORDER BY id DESC LIMIT 1`, orgID)
}

// GetHRConnectionByOAuthState finds the pending connection an OAuth callback belongs to.
func GetHRConnectionByOAuthState(ctx context.Context, q Querier, state string) (HRConnection, error) {
	if state == "" {
		return HRConnection{}, fmt.Errorf("hr connection: empty state: %w", ErrNotFound)
	}
	return getHRConn(ctx, q, `oauth_state = $1 AND state = 'pending'`, state)
}

// ListActiveHRConnections returns every active connection (the reconcile job's work list).
func ListActiveHRConnections(ctx context.Context, q Querier) ([]HRConnection, error) {
	return queryAll(ctx, q, "list hr connections", scanHRConn,
		`SELECT `+hrConnCols+` FROM hr_connections WHERE state = 'active' ORDER BY id`)
}

// HR sync run statuses.
const (
	HRRunRunning   = "running"
	HRRunSucceeded = "succeeded"
	HRRunPartial   = "partial" // stopped early (rate limit, outage): not a full roster
	HRRunFailed    = "failed"
	HRRunBlocked   = "blocked" // mass-termination breaker held terminations for an admin
)

// HRRunError is one problem recorded on a run (a skipped record, a held termination...).
type HRRunError struct {
	ExternalID string `json:"external_id,omitempty"`
	Kind       string `json:"kind"`
	Message    string `json:"message"`
}

// HRSyncRun is one sync pass.
type HRSyncRun struct {
	ID           string       `json:"id"`
	OrgID        string       `json:"org_id"`
	ConnectionID string       `json:"connection_id"`
	Kind         string       `json:"kind"`    // initial, incremental, full, webhook
	Trigger      string       `json:"trigger"` // connect, schedule, manual, demo
	Status       string       `json:"status"`
	Pages        int          `json:"pages"`
	Seen         int          `json:"seen"`
	Created      int          `json:"created"`
	Updated      int          `json:"updated"`
	Terminated   int          `json:"terminated"`
	Skipped      int          `json:"skipped"`
	Unchanged    int          `json:"unchanged"`
	Held         int          `json:"held"`
	Cursor       string       `json:"-"`
	Errors       []HRRunError `json:"errors"`
	Error        string       `json:"error,omitempty"`
	StartedAt    time.Time    `json:"started_at"`
	HeartbeatAt  time.Time    `json:"heartbeat_at"`
	FinishedAt   *time.Time   `json:"finished_at,omitempty"`
}

const hrRunCols = `id, org_id, connection_id, kind, trigger_source, status, pages, seen, created, updated, terminated, skipped,
	unchanged, held, cursor, errors, error, started_at, heartbeat_at, finished_at`

func scanHRRun(s interface{ Scan(...any) error }) (HRSyncRun, error) {
	var r HRSyncRun
	var errs string
	var fin sql.NullTime
	err := s.Scan(&r.ID, &r.OrgID, &r.ConnectionID, &r.Kind, &r.Trigger, &r.Status, &r.Pages, &r.Seen, &r.Created, &r.Updated,
		&r.Terminated, &r.Skipped, &r.Unchanged, &r.Held, &r.Cursor, &errs, &r.Error, &r.StartedAt, &r.HeartbeatAt, &fin)
	if err != nil {
		return r, err
	}
	r.FinishedAt = nullTimePtr(fin)
	r.StartedAt, r.HeartbeatAt = r.StartedAt.UTC(), r.HeartbeatAt.UTC()
	if err := json.Unmarshal([]byte(errs), &r.Errors); err != nil {
		return r, fmt.Errorf("hr run %s errors: %w", r.ID, err)
	}
	if r.Errors == nil {
		r.Errors = []HRRunError{}
	}
	return r, nil
}

// MaxHRRunErrors caps the errors kept on one run.
const MaxHRRunErrors = 200

func (r *HRSyncRun) errorsJSON() string {
	if len(r.Errors) > MaxHRRunErrors {
		r.Errors = r.Errors[:MaxHRRunErrors]
	}
	if r.Errors == nil {
		return "[]"
	}
	b, _ := json.Marshal(r.Errors)
	return string(b)
}

// InsertHRSyncRun starts a run; ErrConflict when the connection already has a running one.
func InsertHRSyncRun(ctx context.Context, q Querier, r *HRSyncRun) error {
	if r.ID == "" {
		r.ID = domain.NewID()
	}
	_, err := q.ExecContext(ctx, `INSERT INTO hr_sync_runs (`+hrRunCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
		$11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		r.ID, r.OrgID, r.ConnectionID, r.Kind, r.Trigger, r.Status, r.Pages, r.Seen, r.Created, r.Updated, r.Terminated,
		r.Skipped, r.Unchanged, r.Held, r.Cursor, r.errorsJSON(), r.Error, r.StartedAt.UTC(), r.HeartbeatAt.UTC(), utcPtr(r.FinishedAt))
	if IsUniqueViolation(err) {
		return fmt.Errorf("a sync is already running for connection %s: %w", r.ConnectionID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert hr sync run: %w", err)
	}
	return nil
}

// UpdateHRSyncRun writes a run's progress.
func UpdateHRSyncRun(ctx context.Context, q Querier, r *HRSyncRun) error {
	_, err := q.ExecContext(ctx, `UPDATE hr_sync_runs SET status = $2, pages = $3, seen = $4, created = $5, updated = $6,
		terminated = $7, skipped = $8, unchanged = $9, held = $10, cursor = $11, errors = $12, error = $13, heartbeat_at = $14,
		finished_at = $15, kind = $16 WHERE id = $1`,
		r.ID, r.Status, r.Pages, r.Seen, r.Created, r.Updated, r.Terminated, r.Skipped, r.Unchanged, r.Held, r.Cursor,
		r.errorsJSON(), r.Error, r.HeartbeatAt.UTC(), utcPtr(r.FinishedAt), r.Kind)
	if err != nil {
		return fmt.Errorf("update hr sync run %s: %w", r.ID, err)
	}
	return nil
}

// GetHRSyncRun reads a run of an org.
func GetHRSyncRun(ctx context.Context, q Querier, orgID, id string) (HRSyncRun, error) {
	r, err := scanHRRun(q.QueryRowContext(ctx, `SELECT `+hrRunCols+` FROM hr_sync_runs WHERE id = $1 AND org_id = $2`, id, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("sync run %s: %w", id, ErrNotFound)
	}
	return r, err
}

// GetRunningHRSyncRun returns the connection's running run, if any.
func GetRunningHRSyncRun(ctx context.Context, q Querier, connID string) (HRSyncRun, error) {
	r, err := scanHRRun(q.QueryRowContext(ctx, `SELECT `+hrRunCols+` FROM hr_sync_runs WHERE connection_id = $1 AND status = 'running'`, connID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("running sync: %w", ErrNotFound)
	}
	return r, err
}

// ListHRSyncRuns returns one page of an org's runs, newest first.
func (db *DB) ListHRSyncRuns(ctx context.Context, orgID string, p Page) ([]HRSyncRun, string, error) {
	before, err := DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	args := []any{orgID}
	cond := `org_id = $1`
	if before != "" {
		args = append(args, before)
		cond += ` AND id < $2`
	}
	return queryPage(ctx, db.SQL, "list hr sync runs", scanHRRun, func(r HRSyncRun) string { return r.ID }, p,
		fmt.Sprintf(`SELECT `+hrRunCols+` FROM hr_sync_runs WHERE %s ORDER BY id DESC LIMIT %d`, cond, p.limit()+1), args...)
}

// HRWebhookEvent is a received (verified) webhook.
type HRWebhookEvent struct {
	ID           string
	OrgID        string
	ConnectionID string
	EventID      string
	EventType    string
	MemberID     string
	DepartmentID string
	Status       string // received, processed, failed, ignored
	Error        string
	ReceivedAt   time.Time
	ProcessedAt  *time.Time
}

// InsertHRWebhookEvent records a webhook; ErrConflict when the event id was seen
// before on this connection (a duplicate delivery).
func InsertHRWebhookEvent(ctx context.Context, q Querier, e *HRWebhookEvent) error {
	if e.ID == "" {
		e.ID = domain.NewID()
	}
	if e.Status == "" {
		e.Status = "received"
	}
	_, err := q.ExecContext(ctx, `INSERT INTO hr_webhook_events (id, org_id, connection_id, event_id, event_type, member_id,
		department_id, status, error, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.ID, e.OrgID, e.ConnectionID, e.EventID, e.EventType, e.MemberID, e.DepartmentID, e.Status, e.Error, e.ReceivedAt.UTC())
	if IsUniqueViolation(err) {
		return fmt.Errorf("webhook event %s: %w", e.EventID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert webhook event: %w", err)
	}
	return nil
}

// FinishHRWebhookEvent marks an event processed (or failed/ignored).
func FinishHRWebhookEvent(ctx context.Context, q Querier, id, status, msg string, at time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE hr_webhook_events SET status = $2, error = $3, processed_at = $4 WHERE id = $1`,
		id, status, msg, at.UTC())
	if err != nil {
		return fmt.Errorf("finish webhook event %s: %w", id, err)
	}
	return nil
}

// ListPendingHRWebhookEvents returns received events not processed yet, oldest first.
func ListPendingHRWebhookEvents(ctx context.Context, q Querier, connID string, olderThan time.Time, limit int) ([]HRWebhookEvent, error) {
	return queryAll(ctx, q, "list pending webhook events", func(s rowScanner) (HRWebhookEvent, error) {
		var e HRWebhookEvent
		err := s.Scan(&e.ID, &e.OrgID, &e.ConnectionID, &e.EventID, &e.EventType, &e.MemberID, &e.DepartmentID,
			&e.Status, &e.Error, &e.ReceivedAt)
		return e, err
	}, `SELECT id, org_id, connection_id, event_id, event_type, member_id, department_id, status,
		error, received_at FROM hr_webhook_events WHERE connection_id = $1 AND status = 'received' AND received_at <= $2
		ORDER BY received_at LIMIT $3`, connID, olderThan.UTC(), limit)
}

// HRMember holds provider details of a synced employee that domain.Employee does
// not carry (department id for renames, work id for rehire matching, manager).
type HRMember struct {
	EmployeeID        string
	OrgID             string
	Source            string
	ExternalID        string
	WorkID            string
	DepartmentID      string
	ManagerExternalID string
	ProviderType      string
	UpdatedAt         time.Time
}

// UpsertHRMember writes the provider details of an employee.
func UpsertHRMember(ctx context.Context, q Querier, m HRMember) error {
	_, err := q.ExecContext(ctx, `INSERT INTO hr_members (employee_id, org_id, source, external_id, work_id, department_id,
		manager_external_id, provider_type, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (employee_id) DO UPDATE SET external_id = excluded.external_id, work_id = excluded.work_id,
		department_id = excluded.department_id, manager_external_id = excluded.manager_external_id,
		provider_type = excluded.provider_type, updated_at = excluded.updated_at`,
		m.EmployeeID, m.OrgID, m.Source, m.ExternalID, m.WorkID, m.DepartmentID, m.ManagerExternalID, m.ProviderType, m.UpdatedAt.UTC())
	if err != nil {
		return fmt.Errorf("upsert hr member %s: %w", m.EmployeeID, err)
	}
	return nil
}

// ListHRMemberIDsByDepartment returns the external ids of an org's members in a department.
func ListHRMemberIDsByDepartment(ctx context.Context, q Querier, orgID, source, departmentID string) ([]string, error) {
	return queryAll(ctx, q, "list members of department", scanString,
		`SELECT external_id FROM hr_members WHERE org_id = $1 AND source = $2 AND department_id = $3 ORDER BY external_id`,
		orgID, source, departmentID)
}

// ManagerWorkEmail is the work email of the employee's manager as HR last reported
// them: "" when HR names no manager, the manager is not a Lanyard employee (yet), or is
// no longer active (a terminated manager cannot receive anyone's files). Employee ids
// are unique across orgs, and the manager is looked up in the employee's own org.
func (db *DB) ManagerWorkEmail(ctx context.Context, employeeID string) (string, error) {
	var email string
	err := db.SQL.QueryRowContext(ctx, `SELECT mgr.work_email FROM hr_members m
		JOIN employees mgr ON mgr.org_id = m.org_id AND mgr.source = m.source AND mgr.external_id = m.manager_external_id
		WHERE m.employee_id = $1 AND m.manager_external_id <> '' AND mgr.status <> $2`,
		employeeID, string(domain.StatusTerminated)).Scan(&email)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("manager of %s: %w", employeeID, err)
	}
	return email, nil
}

// LockEmployeeByExternalID reads an employee by HR identity inside tx, locking
// the row on Postgres (SQLite transactions already hold the write lock), so two
// writers of one member serialize and an event is emitted once.
func (db *DB) LockEmployeeByExternalID(ctx context.Context, tx *sql.Tx, orgID, source, externalID string) (domain.Employee, error) {
	lock := ""
	if db.Dialect == Postgres {
		lock = " FOR UPDATE"
	}
	e, err := scanEmployee(tx.QueryRowContext(ctx, `SELECT `+employeeCols+` FROM employees WHERE org_id = $1 AND source = $2 AND external_id = $3
		AND external_id <> ''`+lock, // the last clause lets both engines use the partial unique index
		orgID, source, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("employee %s/%s: %w", source, externalID, ErrNotFound)
	}
	return e, err
}

// FindRehireCandidate finds a terminated employee of the same source whose work
// id or work email matches (a rehire Justworks gave a new member id).
func (db *DB) FindRehireCandidate(ctx context.Context, tx *sql.Tx, orgID, source, workID, workEmail string) (domain.Employee, error) {
	lock := ""
	if db.Dialect == Postgres {
		lock = " FOR UPDATE OF e"
	}
	e, err := scanEmployee(tx.QueryRowContext(ctx, `SELECT e.id, e.org_id, e.source, e.external_id, e.hr, e.equipment_type, e.notes,
		e.created_at, e.updated_at FROM employees e LEFT JOIN hr_members m ON m.employee_id = e.id
		WHERE e.org_id = $1 AND e.source = $2 AND e.status = 'terminated'
		AND (($3 <> '' AND m.work_id = $3) OR ($4 <> '' AND e.work_email = $4))
		ORDER BY e.id DESC LIMIT 1`+lock, orgID, source, workID, workEmail))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("rehire candidate: %w", ErrNotFound)
	}
	return e, err
}

// CountEmployeesByStatus counts an org's employees of one source and status.
func CountEmployeesByStatus(ctx context.Context, q Querier, orgID, source string, status domain.EmploymentStatus) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM employees WHERE org_id = $1 AND source = $2 AND status = $3`,
		orgID, source, string(status)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count employees: %w", err)
	}
	return n, nil
}

// ListPendingStartedExternalIDs returns external ids of pending employees whose
// start date is on or before today (their start date passed without the
// provider's updated_at moving, so an incremental read would not see them).
func ListPendingStartedExternalIDs(ctx context.Context, q Querier, orgID, source, today string) ([]string, error) {
	return queryAll(ctx, q, "list started pending employees", scanString, `SELECT external_id FROM employees WHERE org_id = $1 AND source = $2 AND status = 'pending'
		AND start_date IS NOT NULL AND start_date <= $3 ORDER BY id`, orgID, source, today)
}

// HasTerminatedEmployees reports whether an org has any terminated employee of
// a source (no rehire matching is needed when it has none).
func HasTerminatedEmployees(ctx context.Context, q Querier, orgID, source string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM employees WHERE org_id = $1 AND status = 'terminated' AND source = $2 LIMIT 1`, orgID, source).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check terminated employees: %w", err)
	}
	return true, nil
}

// ---- multi-row writers for the HR import (one statement per page instead of
// one per member; same columns as InsertEmployee, WriteAudit and WriteEvent) ----

// placeholders renders (…), (…) for a multi-row VALUES. SQLite gets "?": its
// numbered parameters are looked up by name, quadratic in their count.
func (db *DB) placeholders(rows, cols int) string {
	if db.Dialect == SQLite {
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
		return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
	}
	var b strings.Builder
	n := 1
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", n)
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// EmployeesByExternalIDs reads the employees of one source with these
// external ids inside tx, keyed by external id. Rows are not locked: callers
// re-read with LockEmployeeByExternalID before changing one.
func (db *DB) EmployeesByExternalIDs(ctx context.Context, tx *sql.Tx, orgID, source string, ids []string) (map[string]domain.Employee, error) {
	out := make(map[string]domain.Employee, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var query string
	var args []any
	if db.Dialect == Postgres {
		// One array parameter: far cheaper to plan than 100 scalars.
		query = `SELECT ` + employeeCols + ` FROM employees WHERE org_id = $1 AND source = $2
			AND external_id <> '' AND external_id = ANY($3)`
		args = []any{orgID, source, ids}
	} else {
		args = []any{orgID, source}
		for _, id := range ids {
			args = append(args, id)
		}
		query = `SELECT ` + employeeCols + ` FROM employees WHERE org_id = ? AND source = ?
			AND external_id <> '' AND external_id IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + `)`
	}
	err := queryEach(ctx, tx, "lock employees", func(s rowScanner) error {
		e, err := scanEmployee(s)
		if err != nil {
			return err
		}
		out[e.ExternalID] = e
		return nil
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// batchPart is one multi-row INSERT of a batch.
type batchPart struct {
	head  string // INSERT INTO t (cols) VALUES
	tail  string // e.g. ON CONFLICT ...
	cols  int
	types []string // Postgres type per column ("text" or "timestamptz")
	args  []any
}

// columns turns the row-major args into one typed array per column, for
// Postgres' unnest (NULLs as nil pointers).
func (p batchPart) columns() ([]any, error) {
	out := make([]any, p.cols)
	for c := 0; c < p.cols; c++ {
		switch p.types[c] {
		case "text":
			col := make([]*string, 0, p.rows())
			for r := 0; r < p.rows(); r++ {
				switch v := p.args[r*p.cols+c].(type) {
				case nil:
					col = append(col, nil)
				case string:
					col = append(col, &v)
				default:
					return nil, fmt.Errorf("batch column %d: want string, got %T", c, v)
				}
			}
			out[c] = col
		case "timestamptz":
			col := make([]*time.Time, 0, p.rows())
			for r := 0; r < p.rows(); r++ {
				switch v := p.args[r*p.cols+c].(type) {
				case nil:
					col = append(col, nil)
				case time.Time:
					col = append(col, &v)
				default:
					return nil, fmt.Errorf("batch column %d: want time, got %T", c, v)
				}
			}
			out[c] = col
		default:
			return nil, fmt.Errorf("batch column type %q", p.types[c])
		}
	}
	return out, nil
}

func (p batchPart) rows() int { return len(p.args) / p.cols }

// execBatch runs the parts in order: one statement each on SQLite; one
// statement of data-modifying CTEs on Postgres (one round trip per page).
func (db *DB) execBatch(ctx context.Context, q Querier, parts []batchPart) error {
	var live []batchPart
	for _, p := range parts {
		if len(p.args) > 0 {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return nil
	}
	if db.Dialect == SQLite {
		for _, p := range live {
			if _, err := q.ExecContext(ctx, p.head+" "+db.placeholders(p.rows(), p.cols)+" "+p.tail, p.args...); err != nil {
				return err
			}
		}
		return nil
	}
	// Postgres: one statement; each INSERT reads unnest() of one array per
	// column, so a page costs a handful of parameters, not thousands.
	var b strings.Builder
	var args []any
	b.WriteString("WITH ")
	for i, p := range live {
		if i > 0 {
			b.WriteString(", ")
		}
		cols, err := p.columns()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "p%d AS (%s SELECT * FROM unnest(", i, strings.TrimSuffix(strings.TrimSpace(p.head), "VALUES"))
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			args = append(args, cols[c])
			fmt.Fprintf(&b, "$%d::%s[]", len(args), p.types[c])
		}
		b.WriteString(") " + p.tail + ")")
	}
	b.WriteString(" SELECT 1")
	_, err := q.ExecContext(ctx, b.String(), args...)
	return err
}

// InsertHRBatch writes new employees with their provider details, audit rows
// and outbox events (in order) in as few statements as the dialect allows.
// Columns are those of InsertEmployee, UpsertHRMember, WriteAudit and WriteEvent.
func (db *DB) InsertHRBatch(ctx context.Context, q Querier, es []*domain.Employee, ms []HRMember, audits []domain.AuditEntry, evs []domain.Event) error {
	now := domain.Now()
	emp := batchPart{head: `INSERT INTO employees (id, org_id, source, external_id, hr, first_name, last_name, work_email,
		status, member_type, departments, start_date, termination_date, source_updated_at, equipment_type, notes, created_at, updated_at) VALUES`, cols: 18,
		types: []string{"text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "timestamptz",
			"text", "text", "timestamptz", "timestamptz"}}
	for _, e := range es {
		if e.ID == "" {
			e.ID = domain.NewID()
		}
		e.CreatedAt, e.UpdatedAt = now, now
		a, err := employeeArgs(e)
		if err != nil {
			return err
		}
		emp.args = append(emp.args, a...)
	}
	mem := batchPart{head: `INSERT INTO hr_members (employee_id, org_id, source, external_id, work_id, department_id,
		manager_external_id, provider_type, updated_at) VALUES`, tail: `ON CONFLICT (employee_id) DO UPDATE SET external_id = excluded.external_id,
		work_id = excluded.work_id, department_id = excluded.department_id, manager_external_id = excluded.manager_external_id,
		provider_type = excluded.provider_type, updated_at = excluded.updated_at`, cols: 9,
		types: []string{"text", "text", "text", "text", "text", "text", "text", "text", "timestamptz"}}
	for _, m := range ms {
		mem.args = append(mem.args, m.EmployeeID, m.OrgID, m.Source, m.ExternalID, m.WorkID, m.DepartmentID, m.ManagerExternalID, m.ProviderType, m.UpdatedAt.UTC())
	}
	aud := batchPart{head: `INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, before_json, after_json, request_id, at) VALUES`, cols: 10,
		types: []string{"text", "text", "text", "text", "text", "text", "text", "text", "text", "timestamptz"}}
	for _, e := range audits {
		if e.ID == "" {
			e.ID = domain.NewID()
		}
		if e.At.IsZero() {
			e.At = now
		}
		if e.Actor == "" {
			e.Actor = domain.ActorFrom(ctx).ID
		}
		aud.args = append(aud.args, e.ID, e.OrgID, e.Actor, e.Action, e.TargetType, e.TargetID, nullJSON(e.Before), nullJSON(e.After), e.RequestID, e.At.UTC())
	}
	out := batchPart{head: `INSERT INTO outbox_events (id, org_id, type, subject_type, subject_id, payload, at) VALUES`, cols: 7,
		types: []string{"text", "text", "text", "text", "text", "text", "timestamptz"}}
	for _, ev := range evs {
		if ev.ID == "" {
			ev.ID = domain.NewID()
		}
		if ev.At.IsZero() {
			ev.At = now
		}
		payload := string(ev.Payload)
		if payload == "" {
			payload = "{}"
		}
		out.args = append(out.args, ev.ID, ev.OrgID, ev.Type, ev.SubjectType, ev.SubjectID, payload, ev.At.UTC())
	}
	err := db.execBatch(ctx, q, []batchPart{emp, mem, aud, out})
	if IsUniqueViolation(err) {
		return fmt.Errorf("insert hr batch: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert hr batch: %w", err)
	}
	return nil
}

// TouchHRWebhook records when a connection last received a verified webhook.
func TouchHRWebhook(ctx context.Context, q Querier, connID string, at time.Time) error {
	if _, err := q.ExecContext(ctx, `UPDATE hr_connections SET last_webhook_at = $1 WHERE id = $2`, at.UTC(), connID); err != nil {
		return fmt.Errorf("touch hr connection %s: %w", connID, err)
	}
	return nil
}

// PruneHRWebhookEvents deletes finished webhook records received before t
// (their only use is deduplication of late retries).
func PruneHRWebhookEvents(ctx context.Context, q Querier, connID string, before time.Time) (int64, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM hr_webhook_events WHERE connection_id = $1 AND status <> 'received' AND received_at < $2`,
		connID, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("prune webhook events: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// AnalyzeHRTables refreshes Postgres planner statistics after a bulk import
// (a no-op on SQLite), so lookups right after it use the indexes.
func (db *DB) AnalyzeHRTables(ctx context.Context) error {
	if db.Dialect != Postgres {
		return nil
	}
	if _, err := db.SQL.ExecContext(ctx, `ANALYZE employees, hr_members`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// IdentityMatch is a live employee that shares a work email or work id with a
// member the sync is about to create.
type IdentityMatch struct {
	EmployeeID string
	ExternalID string
	WorkEmail  string
	WorkID     string
}

// LiveEmployeesByIdentity returns the org's non-terminated employees of a
// source whose work email (lower-cased) or provider work id is among the given
// ones. HR sync uses it to notice a member id that changed under the same
// person before it creates a duplicate.
func (db *DB) LiveEmployeesByIdentity(ctx context.Context, q Querier, orgID, source string, emails, workIDs []string) ([]IdentityMatch, error) {
	emails = slices.DeleteFunc(slices.Clone(emails), func(s string) bool { return s == "" })
	workIDs = slices.DeleteFunc(slices.Clone(workIDs), func(s string) bool { return s == "" })
	if len(emails) == 0 && len(workIDs) == 0 {
		return nil, nil
	}
	var query string
	var args []any
	const head = `SELECT e.id, e.external_id, e.work_email, COALESCE(m.work_id, '') FROM employees e
		LEFT JOIN hr_members m ON m.employee_id = e.id
		WHERE e.org_id = $1 AND e.source = $2 AND e.status <> 'terminated' AND e.external_id <> '' AND `
	if db.Dialect == Postgres {
		// Array parameters; an empty one matches nothing.
		query = head + `(e.work_email = ANY($3) OR m.work_id = ANY($4)) ORDER BY e.id`
		args = []any{orgID, source, emails, workIDs}
	} else {
		args = []any{orgID, source}
		var conds []string
		in := func(col string, vals []string) {
			if len(vals) == 0 {
				return
			}
			conds = append(conds, col+` IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+`)`)
			for _, v := range vals {
				args = append(args, v)
			}
		}
		in("e.work_email", emails)
		in("m.work_id", workIDs)
		query = strings.NewReplacer("$1", "?", "$2", "?").Replace(head) + `(` + strings.Join(conds, " OR ") + `) ORDER BY e.id`
	}
	return queryAll(ctx, q, "live employees by identity", func(s rowScanner) (IdentityMatch, error) {
		var m IdentityMatch
		err := s.Scan(&m.EmployeeID, &m.ExternalID, &m.WorkEmail, &m.WorkID)
		return m, err
	}, query, args...)
}

// HRFailureStreak counts the connection's most recent finished runs that failed or stopped
// early, newest first, up to the first that succeeded or was held (at most limit).
func HRFailureStreak(ctx context.Context, q Querier, connID string, limit int) (int, error) {
	statuses, err := queryAll(ctx, q, "hr failure streak", func(s rowScanner) (string, error) {
		var st string
		return st, s.Scan(&st)
	}, `SELECT status FROM hr_sync_runs WHERE connection_id = $1 AND status <> $2 ORDER BY started_at DESC, id DESC LIMIT $3`,
		connID, HRRunRunning, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, st := range statuses {
		if st != HRRunFailed && st != HRRunPartial {
			break
		}
		n++
	}
	return n, nil
}
