package actions

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
)

// NewPlanner returns the planner for this OS.
func NewPlanner(o PlannerOptions) Planner { return &LinuxPlanner{Root: "/", StateDir: o.StateDir} }

// LinuxPlanner gathers LinuxFacts and builds plans. Lock and unlock plans
// are built in lock_linux.go, wipe plans in wipe_linux.go.
type LinuxPlanner struct {
	Root string
	// StateDir holds the lock record (what a lock changed).
	StateDir string
	// wipe is where a wipe looks and what it runs last (the live machine
	// unless NewLinuxPlannerAt set it).
	wipe linuxWipeEnv
}

// LinuxPlannerRoots point a LinuxPlanner at a machine other than the one it
// runs on. TEST SUPPORT ONLY: the end-to-end suite (agent/e2e) runs the
// real agent client and the real wipe against LUKS headers on loop devices,
// with a recorded disk layout and a harmless program in place of the
// power-off. The agent builds its planner with NewPlanner; nothing on its
// command line, in its config file or in its environment reaches this
// (cmd/lanyard-agent's knobs test checks that the constructor is not even
// linked into the agent).
type LinuxPlannerRoots struct {
	// Root holds the accounts and PAM files ("/" when empty). Session
	// steps run only on "/".
	Root string
	// StateDir keeps the lock record (PlannerOptions.StateDir).
	StateDir string
	// Sys, Proc and Dev are where a wipe reads the block-device layout
	// (blockdev.Roots; all empty: /sys, /proc and /dev).
	Sys, Proc, Dev string
	// PowerOff replaces `systemctl poweroff --force --force` as a wipe's
	// final step; its program must be on the agent's allowlist.
	PowerOff []string
}

// NewLinuxPlannerAt returns a planner for the machine r describes. Test
// support only (see LinuxPlannerRoots).
func NewLinuxPlannerAt(r LinuxPlannerRoots) *LinuxPlanner {
	root := r.Root
	if root == "" {
		root = "/"
	}
	return &LinuxPlanner{Root: root, StateDir: r.StateDir, wipe: linuxWipeEnv{
		roots:    blockdev.Roots{Sys: r.Sys, Proc: r.Proc, Dev: r.Dev},
		powerOff: slices.Clone(r.PowerOff),
	}}
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
