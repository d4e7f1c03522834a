package lifecycle

import (
	"errors"
	"testing"
)

func TestStepTransitions(t *testing.T) {
	cases := []struct {
		name     string
		from, to StepState
		ok       bool
	}{
		{"claim", StepPending, StepRunning, true},
		{"skip pending", StepPending, StepSkipped, true},
		{"finish", StepRunning, StepSucceeded, true},
		{"retryable error", StepRunning, StepPending, true},
		{"manual task", StepRunning, StepWaiting, true},
		{"lease takeover", StepRunning, StepRunning, true},
		{"task done", StepWaiting, StepSucceeded, true},
		{"admin retry", StepFailed, StepPending, true},
		{"admin skip failed", StepFailed, StepSkipped, true},
		{"no rerun of success", StepSucceeded, StepPending, false},
		{"no skip of success", StepSucceeded, StepSkipped, false},
		{"no revive cancelled", StepCancelled, StepPending, false},
		{"pending cannot succeed unclaimed", StepPending, StepSucceeded, false},
		{"failed cannot succeed without retry", StepFailed, StepSucceeded, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckStepTransition(tc.from, tc.to)
			if tc.ok != (err == nil) {
				t.Fatalf("%s → %s: err = %v, want ok=%v", tc.from, tc.to, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("error not ErrInvalidTransition: %v", err)
			}
		})
	}
}

func TestWorkflowTransitions(t *testing.T) {
	cases := []struct {
		name     string
		from, to WorkflowState
		ok       bool
	}{
		{"start", WorkflowScheduled, WorkflowRunning, true},
		{"cancel scheduled", WorkflowScheduled, WorkflowCancelled, true},
		{"pause", WorkflowRunning, WorkflowPaused, true},
		{"resume", WorkflowPaused, WorkflowRunning, true},
		{"fail", WorkflowRunning, WorkflowFailed, true},
		{"retry after fail", WorkflowFailed, WorkflowRunning, true},
		{"finish", WorkflowRunning, WorkflowSucceeded, true},
		{"no restart of finished", WorkflowSucceeded, WorkflowRunning, false},
		{"no restart of cancelled", WorkflowCancelled, WorkflowRunning, false},
		{"scheduled cannot succeed", WorkflowScheduled, WorkflowSucceeded, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckWorkflowTransition(tc.from, tc.to); tc.ok != (err == nil) {
				t.Fatalf("%s → %s: err = %v, want ok=%v", tc.from, tc.to, err, tc.ok)
			}
		})
	}
}

func TestPlansDescribed(t *testing.T) {
	for _, k := range []Kind{KindOnboarding, KindOffboarding} {
		steps := Plan(k)
		if len(steps) == 0 {
			t.Fatalf("%s has no steps", k)
		}
		for _, s := range steps {
			if s.Describe() == "" {
				t.Fatalf("%s has no description", s)
			}
		}
	}
	if Plan("nope") != nil {
		t.Fatal("unknown kind has steps")
	}
}
