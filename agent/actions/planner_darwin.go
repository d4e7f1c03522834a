package actions

import (
	"context"
	"fmt"
)

// NewPlanner returns the planner for this OS.
func NewPlanner() Planner { return darwinPlanner{} }

// darwinPlanner defers lock and wipe to MDM (DeviceLock / EraseDevice from
// controlplane/mdm/apple): a root daemon cannot lock or erase a Mac with
// Apple silicon or a T2 chip reliably.
type darwinPlanner struct{}

func (darwinPlanner) Plan(_ context.Context, cmd Command) ([]Step, error) {
	switch cmd.Kind {
	case Lock, Wipe:
		return nil, ErrDeferredToMDM
	case Message:
		return LinuxMessagePlan(LinuxFacts{Wall: "/usr/bin/wall"}, cmd.Title, cmd.Message), nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}
