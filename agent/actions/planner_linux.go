package actions

import (
	"context"
	"fmt"
	"os"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

// NewPlanner returns the planner for this OS.
func NewPlanner(o PlannerOptions) Planner { return &LinuxPlanner{Root: "/", StateDir: o.StateDir} }

// LinuxPlanner gathers LinuxFacts and builds plans. Lock and unlock plans
// are built in lock_linux.go, wipe plans in wipe_linux.go.
type LinuxPlanner struct {
	Root string
	// StateDir holds the lock record (what a lock changed).
	StateDir string
}

// Facts reads accounts, the programs the plans use and what a lock and an
// unlock need to know (lockFacts).
func (p *LinuxPlanner) Facts() (LinuxFacts, error) {
	accts, _, err := accounts.Local(p.Root)
	if err != nil {
		return LinuxFacts{}, err
	}
	f := LinuxFacts{
		Root:       p.Root,
		Humans:     accounts.Humans(accts),
		Usermod:    allowcmd.First("/usr/sbin/usermod", "/sbin/usermod"),
		Loginctl:   allowcmd.First("/usr/bin/loginctl", "/bin/loginctl"),
		Pkill:      allowcmd.First("/usr/bin/pkill", "/bin/pkill"),
		Cryptsetup: allowcmd.First("/usr/sbin/cryptsetup", "/sbin/cryptsetup"),
		Systemctl:  allowcmd.First("/usr/bin/systemctl", "/bin/systemctl"),
		Rm:         allowcmd.First("/usr/bin/rm", "/bin/rm"),
		Wall:       allowcmd.First("/usr/bin/wall", "/bin/wall"),
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		f.Systemd = true
	}
	p.lockFacts(&f, accts)
	return f, nil
}

// Plan implements Planner.
func (p *LinuxPlanner) Plan(ctx context.Context, cmd Command) (Plan, error) {
	f, err := p.Facts()
	if err != nil {
		return Plan{}, err
	}
	switch cmd.Kind {
	case Lock:
		return p.lockPlan(ctx, f, cmd)
	case Unlock:
		return p.unlockPlan(ctx, f, cmd)
	case Wipe:
		return p.wipePlan(ctx, f, cmd)
	case Message:
		if err := need("wall", f.Wall); err != nil {
			return Plan{}, err
		}
		return Plan{Steps: LinuxMessagePlan(f, cmd.Title, cmd.Message)}, nil
	}
	return Plan{}, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}

func need(name, path string) error {
	if path == "" {
		return fmt.Errorf("%w: %s not installed", ErrUnsupported, name)
	}
	return nil
}
