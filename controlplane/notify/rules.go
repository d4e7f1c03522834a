package notify

import (
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Event types this package reads besides those in controlplane/domain (the prompts are
// written by their producers; see docs/events.md).
const (
	EventTaskCreated          = "task.created"
	EventTaskOverdue          = "task.overdue"
	EventWipeApprovalPending  = "wipe.approval_pending"
	EventTerminationsHeld     = "hr.terminations_held"
	EventCommandFailed        = "device.command_failed"
	EventHRConnectionEnded    = "hr.connection_ended"
	EventHRSyncFailing        = "hr.sync_failing"
	EventAPNsExpiring         = "mdm.apns_expiring"
	EventDeviceSilent         = "device.silent"
	EventDeviceNoncompliant   = "device.noncompliant"
	EventRetrievalKitShipped  = "retrieval.kit_shipped"
	EventRetrievalReminder    = "retrieval.reminder"
	EventEnrollmentReminder   = "employee.enrollment_reminder"
	EventDigestDue            = "digest.due"
	EventDeliveryFailed       = "notify.delivery_failed"
	EventChannelTest          = "notify.test"
	audienceAdmins            = "admins"
	audienceAddress           = "address"
	audienceChannel           = "channel"
	audienceEmployee          = "employee"
	kindDeliveryFailed        = "delivery_failed"
	defaultAdminRole          = domain.RoleIT
	channelEmail, channelLog  = "email", "log"
	channelSlack, channelHook = "slack", "webhook"
)

// templates maps an event type to the template each audience gets: admins (and the
// channels that stand for them) the prompt, the employee the guidance. An empty kind
// means that audience gets nothing for the event; webhooks get every event a rule sends
// them, templated or not (their payload is the event's data).
var templates = map[string]struct{ admin, employee string }{
	domain.EventEmployeeHired:      {"hire", "enroll_instructions"},
	domain.EventEmployeeRehired:    {"hire", "enroll_instructions"},
	domain.EventEmployeeTerminated: {"termination", "retrieval_instructions"},
	EventTaskCreated:               {"task_created", ""},
	EventTaskOverdue:               {"task_overdue", ""},
	EventWipeApprovalPending:       {"wipe_approval_pending", ""},
	EventTerminationsHeld:          {"terminations_held", ""},
	EventCommandFailed:             {"command_failed", ""},
	EventHRConnectionEnded:         {"hr_connection_ended", ""},
	EventHRSyncFailing:             {"hr_sync_failing", ""},
	EventAPNsExpiring:              {"apns_expiring", ""},
	EventDeviceSilent:              {"device_silent", ""},
	EventDeviceNoncompliant:        {"device_noncompliant", ""},
	EventRetrievalKitShipped:       {"", "retrieval_instructions"},
	EventRetrievalReminder:         {"", "retrieval_reminder"},
	EventEnrollmentReminder:        {"", "enroll_instructions"},
	EventDigestDue:                 {"digest", ""},
	EventDeliveryFailed:            {kindDeliveryFailed, ""},
}

// adminPrompts are the events the default rules send to admins and the org's non-email
// channels (the digest is opt-in: a rule for digest.due).
var adminPrompts = []string{
	domain.EventEmployeeHired, domain.EventEmployeeRehired, domain.EventEmployeeTerminated,
	EventTaskCreated, EventTaskOverdue, EventWipeApprovalPending, EventTerminationsHeld, EventCommandFailed,
	EventHRConnectionEnded, EventHRSyncFailing, EventAPNsExpiring, EventDeviceSilent, EventDeviceNoncompliant, EventDeliveryFailed,
}

// employeeGuidance are the events the default rules send to the employee.
var employeeGuidance = []string{
	domain.EventEmployeeHired, domain.EventEmployeeRehired, domain.EventEmployeeTerminated,
	EventRetrievalKitShipped, EventRetrievalReminder, EventEnrollmentReminder,
}

// DefaultRules is the rule set a new organization starts with, so notifications work
// without setup: admins (IT and up) get the prompts by email and on every non-email
// channel; employees get enrollment and retrieval mail.
func DefaultRules(orgID string) []store.NotifyRule {
	return []store.NotifyRule{
		{OrgID: orgID, Events: adminPrompts, Audience: audienceAdmins, MinRole: string(defaultAdminRole)},
		{OrgID: orgID, Events: adminPrompts, Audience: audienceChannel},
		{OrgID: orgID, Events: employeeGuidance, Audience: audienceEmployee},
	}
}

// KnownEvents lists the event types rules can name (for validation and docs).
func KnownEvents() []string {
	out := make([]string, 0, len(templates))
	for t := range templates {
		out = append(out, t)
	}
	return out
}
