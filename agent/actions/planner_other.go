//go:build !linux && !darwin && !windows

package actions

import (
	"context"
	"fmt"
)

// NewPlanner returns a planner that supports nothing on this OS.
func NewPlanner(PlannerOptions) Planner { return otherPlanner{} }

type otherPlanner struct{}

func (otherPlanner) Plan(_ context.Context, cmd Command) (Plan, error) {
	return Plan{}, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}
