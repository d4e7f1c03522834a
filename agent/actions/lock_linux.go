package actions

import (
	"context"
	"fmt"
)

// lockPlan locks the machine (see LinuxLockPlan) and checks the result.
func (p *LinuxPlanner) lockPlan(_ context.Context, f LinuxFacts, cmd Command) (Plan, error) {
	if err := p.needLockTools(f); err != nil {
		return Plan{}, err
	}
	return Plan{Steps: LinuxLockPlan(f, cmd.Message), Verify: func(context.Context) []Check { return VerifyLinuxLock(f) }}, nil
}

func (p *LinuxPlanner) needLockTools(f LinuxFacts) error {
	if err := need("usermod", f.Usermod); err != nil {
		return err
	}
	if f.live() && (f.Loginctl == "" || !f.Systemd) {
		return need("pkill", f.Pkill)
	}
	return nil
}

// unlockPlan restores what the lock changed.
func (p *LinuxPlanner) unlockPlan(_ context.Context, _ LinuxFacts, _ Command) (Plan, error) {
	return Plan{}, fmt.Errorf("%w: unlock", ErrUnsupported)
}
