package actions

import (
	"context"
	"fmt"
)

// NewPlanner returns the planner for this OS.
func NewPlanner(PlannerOptions) Planner { return darwinPlanner{} }

// darwinPlanner defers lock and wipe to MDM (DeviceLock / EraseDevice from
// controlplane/mdm/apple): a root daemon cannot lock or erase a Mac with
// Apple silicon or a T2 chip reliably.
type darwinPlanner struct{}

func (darwinPlanner) Plan(_ context.Context, cmd Command) (Plan, error) {
	switch cmd.Kind {
	case Lock, Unlock, Wipe:
		return Plan{}, ErrDeferredToMDM
	case Message:
		return Plan{Steps: LinuxMessagePlan(LinuxFacts{Wall: "/usr/bin/wall"}, cmd.Title, cmd.Message)}, nil
	}
	return Plan{}, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}
