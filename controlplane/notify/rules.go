package notify

import (
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Event types this package writes itself; the prompts it reads are controlplane/domain's
// (written by their producers; see docs/events.md).
const (
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
	domain.EventEmployeeHired:             {"hire", "enroll_instructions"},
	domain.EventEmployeeRehired:           {"hire", "enroll_instructions"},
	domain.EventEmployeeTerminated:        {"termination", "retrieval_instructions"},
	domain.EventTaskCreated:               {"task_created", ""},
	domain.EventTaskOverdue:               {"task_overdue", ""},
	domain.EventWipeApprovalPending:       {"wipe_approval_pending", ""},
	domain.EventHRTerminationsHeld:        {"terminations_held", ""},
	domain.EventDeviceCommandFailed:       {"command_failed", ""},
	domain.EventHRConnectionEnded:         {"hr_connection_ended", ""},
	domain.EventHRSyncFailing:             {"hr_sync_failing", ""},
	domain.EventMDMAPNsExpiring:           {"apns_expiring", ""},
	domain.EventDeviceSilent:              {"device_silent", ""},
	domain.EventDeviceNoncompliant:        {"device_noncompliant", ""},
	domain.EventRetrievalKitShipped:       {"", "retrieval_instructions"},
	domain.EventRetrievalReminder:         {"", "retrieval_reminder"},
	domain.EventEmployeeEnrollmentPending: {"", "enroll_instructions"},
	domain.EventDigestDue:                 {"digest", ""},
	EventDeliveryFailed:                   {kindDeliveryFailed, ""},
}

// adminPrompts are the events the default rules send to admins and the org's non-email
// channels (the digest is opt-in: a rule for digest.due).
var adminPrompts = []string{
	domain.EventEmployeeHired, domain.EventEmployeeRehired, domain.EventEmployeeTerminated,
	domain.EventTaskCreated, domain.EventTaskOverdue, domain.EventWipeApprovalPending, domain.EventHRTerminationsHeld, domain.EventDeviceCommandFailed,
	domain.EventHRConnectionEnded, domain.EventHRSyncFailing, domain.EventMDMAPNsExpiring, domain.EventDeviceSilent, domain.EventDeviceNoncompliant, EventDeliveryFailed,
}

// employeeGuidance are the events the default rules send to the employee.
var employeeGuidance = []string{
	domain.EventEmployeeHired, domain.EventEmployeeRehired, domain.EventEmployeeTerminated,
	domain.EventRetrievalKitShipped, domain.EventRetrievalReminder, domain.EventEmployeeEnrollmentPending,
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
