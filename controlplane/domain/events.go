package domain

import (
	"context"
	"encoding/json"
	"time"
)

// AuditEntry is one row of the append-only audit log, written in the same transaction as
// the change it records.
type AuditEntry struct {
	ID         string          `json:"id"`
	OrgID      string          `json:"org_id"`
	Actor      string          `json:"actor"` // "token:<id>", "system:hrsync", "device:<id>" ...
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
	At         time.Time       `json:"at"`
}

// Event types written to the outbox.
const (
	EventEmployeeHired                = "employee.hired"
	EventEmployeeUpdated              = "employee.updated"
	EventEmployeeTerminationScheduled = "employee.termination_scheduled"
	EventEmployeeTerminationCanceled  = "employee.termination_canceled"
	EventEmployeeTerminated           = "employee.terminated"
	EventEmployeeRehired              = "employee.rehired"
	EventDeviceAssigned               = "device.assigned"
	EventDeviceUnassigned             = "device.unassigned"
	EventDeviceStateChanged           = "device.state_changed"
	EventDeviceEnrolled               = "device.enrolled"
	EventDeviceCheckedIn              = "device.checked_in"
	EventDeviceLocked                 = "device.locked"
	EventDeviceWiped                  = "device.wiped"
	EventDeviceRetrieved              = "device.retrieved"

	// Facts that prompt people (issue 15); payloads in event_payloads.go, table in docs/events.md.
	EventTaskCreated               = "task.created"
	EventTaskOverdue               = "task.overdue"
	EventWipeApprovalPending       = "wipe.approval_pending"
	EventHRTerminationsHeld        = "hr.terminations_held"
	EventHRTerminationsReleased    = "hr.terminations_released"
	EventDeviceCommandFailed       = "device.command_failed"
	EventHRConnectionEnded         = "hr.connection_ended"
	EventHRSyncFailing             = "hr.sync_failing"
	EventHRSyncRecovered           = "hr.sync_recovered"
	EventMDMAPNsExpiring           = "mdm.apns_expiring"
	EventDeviceSilent              = "device.silent"
	EventDeviceNoncompliant        = "device.noncompliant"
	EventRetrievalKitShipped       = "retrieval.kit_shipped"
	EventRetrievalReminder         = "retrieval.reminder"
	EventEmployeeEnrollmentPending = "employee.enrollment_reminder"
	EventDigestDue                 = "digest.due"
)

// Event is a domain event in the transactional outbox.
type Event struct {
	// Seq is assigned by the store; it orders events for consumers.
	Seq         int64           `json:"seq"`
	ID          string          `json:"id"`
	OrgID       string          `json:"org_id"`
	Type        string          `json:"type"`
	SubjectType string          `json:"subject_type"`
	SubjectID   string          `json:"subject_id"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	At          time.Time       `json:"at"`
}

// Actor identifies who performs an action, and the request it came from, so audit rows
// written deep in a call chain name the caller.
type Actor struct {
	ID        string // "token:<id>", "user:<id>", "system:<component>", "device:<id>"
	UserID    string // the person behind a token or session, when there is one
	RequestID string
}

type actorKey struct{}

// WithActor returns a context carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx, or "system:unknown".
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{ID: "system:unknown"}
}
