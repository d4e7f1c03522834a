// Package lifecycle runs the device work that follows HR changes: onboarding (stock or
// procurement → assign → enroll → apps → first check-in), offboarding (apps off → lock →
// retrieval → wipe → cleaning → redeploy), asset management and warehousing.
//
// It is the one package that crosses capabilities (headscale's "state" layer): it
// consumes the outbox, drives device state through the domain state machine (via the
// store), and calls the app connectors, the device command model and Apple ADE through
// small interfaces declared here (see ports.go). Only controlplane/server, the jobs
// workers and cmd/lanyardctl tests import it.
package lifecycle

import (
	"errors"
	"fmt"
	"slices"
)

// Kind is the type of a workflow.
type Kind string

const (
	KindOnboarding  Kind = "onboarding"
	KindOffboarding Kind = "offboarding"
)

// WorkflowState is where a workflow is.
type WorkflowState string

const (
	// WorkflowScheduled waits for its run_at (onboarding lead time, termination date).
	WorkflowScheduled WorkflowState = "scheduled"
	WorkflowRunning   WorkflowState = "running"
	// WorkflowPaused stops new steps from starting; the running one finishes.
	WorkflowPaused WorkflowState = "paused"
	// WorkflowFailed has a failed step waiting for an admin (retry, skip or cancel).
	WorkflowFailed    WorkflowState = "failed"
	WorkflowSucceeded WorkflowState = "succeeded"
	WorkflowCancelled WorkflowState = "cancelled"
)

var workflowTransitions = map[WorkflowState][]WorkflowState{
	WorkflowScheduled: {WorkflowRunning, WorkflowCancelled, WorkflowPaused},
	WorkflowRunning:   {WorkflowPaused, WorkflowFailed, WorkflowSucceeded, WorkflowCancelled},
	WorkflowPaused:    {WorkflowRunning, WorkflowScheduled, WorkflowCancelled},
	WorkflowFailed:    {WorkflowRunning, WorkflowCancelled, WorkflowSucceeded},
	WorkflowSucceeded: nil,
	WorkflowCancelled: nil,
}

// Terminal reports whether nothing more will happen to the workflow.
func (s WorkflowState) Terminal() bool { return s == WorkflowSucceeded || s == WorkflowCancelled }

// Open reports whether the workflow still holds the employee's slot for its kind.
func (s WorkflowState) Open() bool { return !s.Terminal() }

// StepState is where a step is.
type StepState string

const (
	// StepPending has not run yet (or is due again after a poll / a retryable error).
	StepPending StepState = "pending"
	// StepRunning is claimed by one worker.
	StepRunning StepState = "running"
	// StepWaiting waits for a person (a manual task) or an outside event.
	StepWaiting StepState = "waiting"
	// StepBlocked cannot finish without a person: a lock or wipe did not end done on a
	// device (failed, expired, canceled, simulated by a dry-run agent, or no channel).
	// The step's output names each device's state and reason, its last_error sums it up,
	// and a manual task per device says what to do. Completing the tasks (or retrying the
	// step once the cause is fixed) unblocks it.
	StepBlocked   StepState = "blocked"
	StepSucceeded StepState = "succeeded"
	// StepFailed ran out of attempts or hit a permanent error; an admin decides.
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped"
	StepCancelled StepState = "cancelled"
)

var stepTransitions = map[StepState][]StepState{
	StepPending:   {StepRunning, StepSkipped, StepCancelled},
	StepRunning:   {StepPending, StepWaiting, StepBlocked, StepSucceeded, StepFailed, StepCancelled, StepRunning},
	StepWaiting:   {StepSucceeded, StepSkipped, StepCancelled, StepFailed, StepPending},
	StepBlocked:   {StepSkipped, StepCancelled, StepPending},
	StepFailed:    {StepPending, StepSkipped, StepCancelled},
	StepSucceeded: nil,
	StepSkipped:   nil,
	StepCancelled: nil,
}

// Done reports whether the step no longer blocks the workflow.
func (s StepState) Done() bool { return s == StepSucceeded || s == StepSkipped }

// Terminal reports whether the step will not change again.
func (s StepState) Terminal() bool {
	return s == StepSucceeded || s == StepSkipped || s == StepCancelled
}

// ErrInvalidTransition is returned for a state change the tables above forbid.
var ErrInvalidTransition = errors.New("invalid state transition")

// CheckWorkflowTransition validates a workflow state change.
func CheckWorkflowTransition(from, to WorkflowState) error {
	if slices.Contains(workflowTransitions[from], to) {
		return nil
	}
	return fmt.Errorf("workflow cannot go from %s to %s: %w", from, to, ErrInvalidTransition)
}

// CheckStepTransition validates a step state change. running → running is a
// takeover of an expired lease (a replica died mid-step).
func CheckStepTransition(from, to StepState) error {
	if slices.Contains(stepTransitions[from], to) {
		return nil
	}
	return fmt.Errorf("step cannot go from %s to %s: %w", from, to, ErrInvalidTransition)
}

// StepKind names what a step does.
type StepKind string

// Onboarding steps.
const (
	StepAllocateDevice StepKind = "allocate_device" // take one from stock, or order one
	StepAwaitDelivery  StepKind = "await_delivery"  // procurement order delivered
	StepAssignDevice   StepKind = "assign_device"
	StepEnrollDevice   StepKind = "enroll_device" // ADE profile (Mac) or enrollment link
	StepGrantApps      StepKind = "grant_apps"
	StepAwaitCheckIn   StepKind = "await_checkin" // done when the device has checked in
)

// Offboarding steps.
const (
	StepRevokeApps    StepKind = "revoke_apps"
	StepLockDevices   StepKind = "lock_devices"
	StepOpenRetrieval StepKind = "open_retrieval"
	StepAwaitReceipt  StepKind = "await_receipt"
	StepWipeDevices   StepKind = "wipe_devices"
	StepCleanDevices  StepKind = "clean_devices"
)

// Plan returns the ordered steps of a workflow kind.
func Plan(k Kind) []StepKind {
	switch k {
	case KindOnboarding:
		return []StepKind{StepAllocateDevice, StepAwaitDelivery, StepAssignDevice, StepEnrollDevice, StepGrantApps, StepAwaitCheckIn}
	case KindOffboarding:
		return []StepKind{StepRevokeApps, StepLockDevices, StepOpenRetrieval, StepAwaitReceipt, StepWipeDevices, StepCleanDevices}
	}
	return nil
}

// describe is the human text for each step (dry-run and CLI).
var describe = map[StepKind]string{
	StepAllocateDevice: "take a device of the requested equipment type from stock, or create a procurement order",
	StepAwaitDelivery:  "wait for the procurement order to be delivered",
	StepAssignDevice:   "assign the device to the employee",
	StepEnrollDevice:   "enroll: ADE profile assignment (Mac, by serial) or an enrollment link for the employee",
	StepGrantApps:      "grant application access by the org's rules",
	StepAwaitCheckIn:   "wait for the device's first check-in",
	StepRevokeApps:     "remove application access",
	StepLockDevices:    "lock every assigned device (agent or MDM, PIN escrowed); a device counts as locked only when it proves it",
	StepOpenRetrieval:  "open a retrieval: ship a return kit to the employee's HR address",
	StepAwaitReceipt:   "wait for the device to be received at a warehouse",
	StepWipeDevices:    "wipe the received devices; a device counts as wiped only when it proves it, or a person records wiping it by hand",
	StepCleanDevices:   "clean the wiped devices and mark them ready for redeploy (a device not proven wiped stays received)",
}

// Describe returns what a step kind does.
func (k StepKind) Describe() string { return describe[k] }
