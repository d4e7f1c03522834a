//go:build !linux && !darwin && !windows

package actions

import (
	"context"
	"fmt"
)

// NewPlanner returns a planner that supports nothing on this OS.
func NewPlanner() Planner { return otherPlanner{} }

type otherPlanner struct{}

func (otherPlanner) Plan(_ context.Context, cmd Command) ([]Step, error) {
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}
