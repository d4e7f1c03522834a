package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Aggregates the dashboard reads: each is one grouped query over an org, so the home page
// costs a handful of statements whatever the fleet's size.

// CountDevicesByState returns how many of an org's devices are in each state.
func (db *DB) CountDevicesByState(ctx context.Context, orgID string) (map[string]int, error) {
	out := map[string]int{}
	err := queryEach(ctx, db.SQL, "count devices by state", func(s rowScanner) error {
		var state string
		var n int
		if err := s.Scan(&state, &n); err != nil {
			return err
		}
		out[state] = n
		return nil
	}, `SELECT state, COUNT(*) FROM devices WHERE org_id = $1 GROUP BY state`, orgID)
	return out, err
}

// PostureGroup is how many in-service devices share one platform, reported OS version and
// posture ("on", "off", "unknown"; "" when the check was not reported). Reported is false
// for the group of devices no agent has reported posture for.
type PostureGroup struct {
	Platform                             string
	Reported                             bool
	OSVersion                            string
	DiskEncryption, Firewall, ScreenLock string
	Count                                int
}

// CountPosture groups an org's in-service devices (not retired or lost) by platform, OS
// version and the three posture checks of their last report. It reads the posture columns
// agent tracking writes with each report, not the report's JSON: parsing 10,000 reports
// per dashboard was most of its time.
func (db *DB) CountPosture(ctx context.Context, orgID string) ([]PostureGroup, error) {
	return queryAll(ctx, db.SQL, "count posture", func(s rowScanner) (PostureGroup, error) {
		var g PostureGroup
		err := s.Scan(&g.Platform, &g.Reported, &g.OSVersion, &g.DiskEncryption, &g.Firewall, &g.ScreenLock, &g.Count)
		return g, err
	}, `SELECT d.platform, COALESCE(t.posture_reported, FALSE), COALESCE(t.os_version, ''), COALESCE(t.disk_encryption, ''),
			COALESCE(t.firewall, ''), COALESCE(t.screen_lock, ''), COUNT(*)
		FROM devices d LEFT JOIN device_tracking t ON t.device_id = d.id
		WHERE d.org_id = $1 AND d.state NOT IN ('retired', 'lost')
		GROUP BY 1, 2, 3, 4, 5, 6`, orgID)
}

// OpenWorkflow is a workflow that has not finished, with the person it is for.
type OpenWorkflow struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind" enum:"onboarding,offboarding"`
	State        string    `json:"state" enum:"scheduled,running,paused,failed"`
	RunAt        time.Time `json:"run_at"`
	EmployeeID   string    `json:"employee_id"`
	EmployeeName string    `json:"employee_name"`
}

// WorkflowCount is how many open workflows share a kind and state.
type WorkflowCount struct {
	Kind  string `json:"kind" enum:"onboarding,offboarding"`
	State string `json:"state" enum:"scheduled,running,paused,failed"`
	Count int    `json:"count"`
}

const openWorkflowStates = `('scheduled', 'running', 'paused', 'failed')`

// OpenWorkflows counts an org's unfinished workflows by kind and state and returns the
// first limit of them by run time (running ones first, then the next to start).
func (db *DB) OpenWorkflows(ctx context.Context, orgID string, limit int) ([]WorkflowCount, []OpenWorkflow, error) {
	counts, err := queryAll(ctx, db.SQL, "count open workflows", func(s rowScanner) (WorkflowCount, error) {
		var c WorkflowCount
		err := s.Scan(&c.Kind, &c.State, &c.Count)
		return c, err
	}, `SELECT kind, state, COUNT(*) FROM lifecycle_workflows WHERE org_id = $1 AND state IN `+openWorkflowStates+`
		GROUP BY kind, state ORDER BY kind, state`, orgID)
	if err != nil {
		return nil, nil, err
	}
	next, err := queryAll(ctx, db.SQL, "list open workflows", func(s rowScanner) (OpenWorkflow, error) {
		var w OpenWorkflow
		var first, last string
		err := s.Scan(&w.ID, &w.Kind, &w.State, &w.RunAt, &w.EmployeeID, &first, &last)
		w.EmployeeName = trimJoin(first, last)
		return w, err
	}, fmt.Sprintf(`SELECT w.id, w.kind, w.state, w.run_at, w.employee_id, e.first_name, e.last_name
		FROM lifecycle_workflows w JOIN employees e ON e.id = w.employee_id
		WHERE w.org_id = $1 AND w.state IN `+openWorkflowStates+`
		ORDER BY CASE w.state WHEN 'running' THEN 0 ELSE 1 END, w.run_at, w.id LIMIT %d`, limit), orgID)
	return counts, next, err
}

func trimJoin(first, last string) string {
	switch {
	case first == "":
		return last
	case last == "":
		return first
	}
	return first + " " + last
}

// PendingApproval is a device command waiting for a second admin.
type PendingApproval struct {
	CommandID    string    `json:"command_id"`
	Type         string    `json:"type" enum:"lock,unlock,wipe,message,collect_inventory"`
	DeviceID     string    `json:"device_id"`
	SerialNumber string    `json:"serial_number"`
	Model        string    `json:"model"`
	CreatedBy    string    `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// PendingApprovals returns how many of an org's commands await a second approval and the
// oldest limit of them.
func (db *DB) PendingApprovals(ctx context.Context, orgID string, limit int) (int, []PendingApproval, error) {
	var n int
	if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM device_commands WHERE org_id = $1 AND state = $2`,
		orgID, CommandAwaitingApproval).Scan(&n); err != nil {
		return 0, nil, fmt.Errorf("count pending approvals: %w", err)
	}
	items, err := queryAll(ctx, db.SQL, "list pending approvals", func(s rowScanner) (PendingApproval, error) {
		var a PendingApproval
		err := s.Scan(&a.CommandID, &a.Type, &a.DeviceID, &a.SerialNumber, &a.Model, &a.CreatedBy, &a.CreatedAt, &a.ExpiresAt)
		return a, err
	}, fmt.Sprintf(`SELECT c.id, c.type, c.device_id, d.serial_number, d.model, c.created_by, c.created_at, c.expires_at
		FROM device_commands c JOIN devices d ON d.id = c.device_id
		WHERE c.org_id = $1 AND c.state = $2 ORDER BY c.created_at, c.id LIMIT %d`, limit), orgID, CommandAwaitingApproval)
	return n, items, err
}

// LatestHRSyncRuns returns an org's newest HR sync run and its newest run that failed or
// did not finish cleanly (failed, partial, blocked) or recorded an error; either may be nil.
func (db *DB) LatestHRSyncRuns(ctx context.Context, orgID string) (last, lastFailed *HRSyncRun, err error) {
	get := func(cond string) (*HRSyncRun, error) {
		r, err := scanHRRun(db.SQL.QueryRowContext(ctx, `SELECT `+hrRunCols+` FROM hr_sync_runs WHERE org_id = $1`+cond+` ORDER BY id DESC LIMIT 1`, orgID))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("latest hr sync run: %w", err)
		}
		return &r, nil
	}
	if last, err = get(""); err != nil || last == nil {
		return last, nil, err
	}
	lastFailed, err = get(` AND (status IN ('failed', 'partial', 'blocked') OR error <> '')`)
	return last, lastFailed, err
}

// LatestHRConnection is GetLatestHRConnection for consumers holding a *DB (nil when the
// org never connected an HR system).
func (db *DB) LatestHRConnection(ctx context.Context, orgID string) (*HRConnection, error) {
	c, err := GetLatestHRConnection(ctx, db.SQL, orgID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}
