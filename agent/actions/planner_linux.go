package actions

import (
	"context"
	"fmt"
	"os"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/posture"
)

// NewPlanner returns the planner for this OS.
func NewPlanner() Planner { return &LinuxPlanner{Root: "/"} }

// LinuxPlanner gathers LinuxFacts and builds plans.
type LinuxPlanner struct {
	Root string
}

// Facts reads accounts and the disk layout.
func (p *LinuxPlanner) Facts(kind Kind) (LinuxFacts, error) {
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
	if kind == Wipe && f.live() {
		if info, err := posture.RootLUKS(); err == nil {
			f.LUKS = info
		}
	}
	return f, nil
}

// Plan implements Planner.
func (p *LinuxPlanner) Plan(_ context.Context, cmd Command) ([]Step, error) {
	f, err := p.Facts(cmd.Kind)
	if err != nil {
		return nil, err
	}
	need := func(name, path string) error {
		if path == "" {
			return fmt.Errorf("%w: %s not installed", ErrUnsupported, name)
		}
		return nil
	}
	switch cmd.Kind {
	case Lock, Wipe:
		if err := need("usermod", f.Usermod); err != nil {
			return nil, err
		}
		if f.live() && (f.Loginctl == "" || !f.Systemd) {
			if err := need("pkill", f.Pkill); err != nil {
				return nil, err
			}
		}
		if cmd.Kind == Lock {
			return LinuxLockPlan(f, cmd.Message), nil
		}
		if f.LUKS.Encrypted {
			if err := need("cryptsetup", f.Cryptsetup); err != nil {
				return nil, err
			}
		} else if err := need("rm", f.Rm); err != nil {
			return nil, err
		}
		if f.live() {
			if err := need("systemctl", f.Systemctl); err != nil {
				return nil, err
			}
		}
		return LinuxWipePlan(f), nil
	case Message:
		if err := need("wall", f.Wall); err != nil {
			return nil, err
		}
		return LinuxMessagePlan(f, cmd.Title, cmd.Message), nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}
