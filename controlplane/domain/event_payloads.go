package domain

import "time"

// Payloads of the events that prompt people. They carry ids and display facts so a
// template can render a message without reading the store again; never a secret, PIN or
// token (a lock PIN, an OAuth token and an enrollment secret stay in the store).

// TaskCreatedPayload is task.created: a manual task opened by a workflow or an admin.
// Subject: task.
type TaskCreatedPayload struct {
	TaskID     string     `json:"task_id"`
	WorkflowID string     `json:"workflow_id,omitempty"`
	Kind       string     `json:"kind"`
	Title      string     `json:"title"`
	Detail     string     `json:"detail,omitempty"`
	Assignee   string     `json:"assignee,omitempty"`
	EmployeeID string     `json:"employee_id,omitempty"`
	DueAt      *time.Time `json:"due_at,omitempty"`
}

// TaskOverduePayload is task.overdue: an open task past its due time, emitted once per task.
// Subject: task.
type TaskOverduePayload struct {
	TaskID   string    `json:"task_id"`
	Title    string    `json:"title"`
	Assignee string    `json:"assignee,omitempty"`
	DueAt    time.Time `json:"due_at"`
}

// WipeApprovalPendingPayload is wipe.approval_pending: a wipe that waits for a second
// admin. Subject: device.
type WipeApprovalPendingPayload struct {
	ApprovalID  string `json:"approval_id"`
	DeviceID    string `json:"device_id"`
	Serial      string `json:"serial,omitempty"`
	RequestedBy string `json:"requested_by"`
	Reason      string `json:"reason,omitempty"`
}

// HRTerminationsHeldPayload is hr.terminations_held (and hr.terminations_released): a mass
// termination held by the breaker until an admin releases it. Subject: hris connection.
type HRTerminationsHeldPayload struct {
	ConnectionID string `json:"connection_id"`
	Provider     string `json:"provider"`
	Count        int    `json:"count"`
	Threshold    int    `json:"threshold,omitempty"`
	ReleasedBy   string `json:"released_by,omitempty"`
}

// DeviceCommandFailedPayload is device.command_failed: a lock or wipe that ended failed or
// expired. Subject: device.
type DeviceCommandFailedPayload struct {
	CommandID string `json:"command_id"`
	DeviceID  string `json:"device_id"`
	Serial    string `json:"serial,omitempty"`
	Kind      string `json:"kind"`    // lock, wipe
	Channel   string `json:"channel"` // agent, mdm
	State     string `json:"state"`   // failed, expired
	Reason    string `json:"reason,omitempty"`
}

// HRConnectionPayload is hr.connection_ended, hr.sync_failing and hr.sync_recovered.
// Subject: hris connection.
type HRConnectionPayload struct {
	ConnectionID string `json:"connection_id"`
	Provider     string `json:"provider"`
	Reason       string `json:"reason,omitempty"`
	Failures     int    `json:"failures,omitempty"` // consecutive failed reconciles
}

// APNsExpiringPayload is mdm.apns_expiring: once per threshold (30, 7, 1 days) per
// certificate (a renewed certificate has a new expiry and starts over). Subject: org.
type APNsExpiringPayload struct {
	Topic     string    `json:"topic"`
	ExpiresAt time.Time `json:"expires_at"`
	DaysLeft  int       `json:"days_left"` // the threshold crossed
}

// DeviceSilentPayload is device.silent: not seen for the org's silence threshold.
// Subject: device.
type DeviceSilentPayload struct {
	DeviceID   string    `json:"device_id"`
	Serial     string    `json:"serial,omitempty"`
	Hostname   string    `json:"hostname,omitempty"`
	LastSeenAt time.Time `json:"last_seen_at"`
	Days       int       `json:"days"`
}

// DigestDuePayload is digest.due: 08:00 in the org's time zone, once per local day.
// Subject: org.
type DigestDuePayload struct {
	Date     string `json:"date"` // YYYY-MM-DD in TimeZone
	TimeZone string `json:"time_zone"`
}

// RetrievalPayload is retrieval.kit_shipped (the return kit is on its way) and
// retrieval.reminder (a reminder to send the device back is due; Reminder counts from 1).
// ReturnAddress is the receiving warehouse's address as one line, empty when none is set.
// DueAt is when the next reminder falls due if the device is still not back.
// Subject: retrieval.
type RetrievalPayload struct {
	RetrievalID   string     `json:"retrieval_id"`
	EmployeeID    string     `json:"employee_id"`
	DeviceID      string     `json:"device_id"`
	KitTracking   string     `json:"kit_tracking,omitempty"`
	ReturnAddress string     `json:"return_address,omitempty"`
	DueAt         *time.Time `json:"due_at,omitempty"`
	Reminder      int        `json:"reminder,omitempty"`
}

// DeviceNoncompliantPayload is device.noncompliant: a report turned a device from
// compliant (or never reported) to non-compliant. Subject: the device.
type DeviceNoncompliantPayload struct {
	DeviceID string `json:"device_id"`
	Serial   string `json:"serial_number"`
	// Failed is the failed checks in words ("disk encryption off, firewall off"), as the
	// prompt shows them; Checks is the same as a list.
	Failed string   `json:"failed"`
	Checks []string `json:"checks"`
}
