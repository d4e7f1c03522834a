package actions

import (
	"context"

	"github.com/lanyardhq/lanyard/agent/posture"
)

// wipePlan locks the machine, destroys its data and powers it off.
func (p *LinuxPlanner) wipePlan(_ context.Context, f LinuxFacts, _ Command) (Plan, error) {
	if err := p.needLockTools(f); err != nil {
		return Plan{}, err
	}
	if f.live() {
		if info, err := posture.RootLUKS(); err == nil {
			f.LUKS = info
		}
	}
	if f.LUKS.Encrypted {
		if err := need("cryptsetup", f.Cryptsetup); err != nil {
			return Plan{}, err
		}
	} else if err := need("rm", f.Rm); err != nil {
		return Plan{}, err
	}
	if f.live() {
		if err := need("systemctl", f.Systemctl); err != nil {
			return Plan{}, err
		}
	}
	plan := Plan{Verify: func(context.Context) []Check { return VerifyLinuxLock(f) }}
	for _, s := range LinuxWipePlan(f) {
		if s.Name == "power-off" {
			plan.Final, plan.FinalAction = append(plan.Final, s), "power-off"
		} else {
			plan.Steps = append(plan.Steps, s)
		}
	}
	return plan, nil
}
