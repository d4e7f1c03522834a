package store

import (
	"context"
	"time"
)

// OverdueTasks lists open tasks of every org whose due time is before now (the watcher
// prompts once per task).
func (db *DB) OverdueTasks(ctx context.Context, now time.Time) ([]LifecycleTask, error) {
	return queryAll(ctx, db.SQL, "overdue tasks", scanTask, `SELECT `+taskCols+` FROM lifecycle_tasks
		WHERE state = 'open' AND due_at IS NOT NULL AND due_at < $1 ORDER BY due_at, id`, now.UTC())
}

// SilentDevice is an in-service device last seen before a cutoff.
type SilentDevice struct {
	DeviceID   string
	Serial     string
	Hostname   string
	LastSeenAt time.Time
}

// SilentDevices lists an org's devices (not retired) whose agent last reported before
// `before`; a device never seen is not silent, it is not enrolled yet.
func (db *DB) SilentDevices(ctx context.Context, orgID string, before time.Time) ([]SilentDevice, error) {
	return queryAll(ctx, db.SQL, "silent devices", func(s rowScanner) (SilentDevice, error) {
		var d SilentDevice
		err := s.Scan(&d.DeviceID, &d.Serial, &d.Hostname, &d.LastSeenAt)
		return d, err
	}, `SELECT d.id, d.serial_number, t.hostname, t.last_seen_at FROM device_tracking t JOIN devices d ON d.id = t.device_id
		WHERE t.org_id = $1 AND t.last_seen_at IS NOT NULL AND t.last_seen_at < $2 AND d.state <> 'retired'
		ORDER BY t.last_seen_at, d.id`, orgID, before.UTC())
}
