package actions

import (
	"context"
	"fmt"
	"strings"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
)

// wipePlan locks the machine, crypto-erases it (or, when the org allows it
// and no crypto-erase is possible, removes user data) and powers it off.
func (p *LinuxPlanner) wipePlan(ctx context.Context, f LinuxFacts, cmd Command) (Plan, error) {
	return p.wipe.plan(ctx, f, cmd)
}

// linuxWipeEnv is where a wipe looks and what it runs last. The zero value
// is the live machine; tests point it at recorded trees and replace the
// power-off (NewLinuxPlannerAt). Nothing on the device configures it.
type linuxWipeEnv struct {
	roots blockdev.Roots
	// powerOff replaces `systemctl poweroff --force --force`.
	powerOff []string
}

func (env linuxWipeEnv) plan(ctx context.Context, f LinuxFacts, cmd Command) (Plan, error) {
	if env.roots == (blockdev.Roots{}) {
		env.roots = blockdev.Roots{Sys: "/sys", Proc: "/proc", Dev: "/dev"}
	}
	layout, err := blockdev.Discover(env.roots)
	if err != nil {
		return Plan{}, fmt.Errorf("actions: wipe: %w", err)
	}
	w := LinuxWipeFacts{LinuxFacts: f, Storage: layout, Headers: map[string]HeaderProbe{}}
	cs := cryptsetup{path: f.Cryptsetup}
	if len(layout.Volumes) > 0 {
		if err := need("cryptsetup", f.Cryptsetup); err != nil {
			return Plan{}, err
		}
		for _, v := range layout.Volumes {
			if v.Header == "" {
				continue
			}
			uuid, err := cs.UUID(ctx, v.HeaderPath())
			w.Headers[v.Crypt] = HeaderProbe{UUID: uuid, Err: err}
		}
	}
	if cmd.AllowBestEffort {
		w.UserData = LinuxUserData(f.Root, f.Humans)
	}
	d, err := DecideLinuxWipe(w, cmd.AllowBestEffort)
	if err != nil {
		return Plan{}, err
	}
	if len(d.Remove) > 0 {
		if err := need("rm", f.Rm); err != nil {
			return Plan{}, err
		}
	}
	w.PowerOff = Step{Name: "power-off", Argv: env.powerOff}
	if env.powerOff == nil {
		if err := need("systemctl", f.Systemctl); err != nil {
			return Plan{}, err
		}
		w.PowerOff.Argv = []string{f.Systemctl, "poweroff", "--force", "--force"}
	}
	steps, final := LinuxWipePlan(w, d)
	for _, s := range append(append([]Step(nil), steps...), final...) {
		if s.Write == nil && (len(s.Argv) == 0 || s.Argv[0] == "") {
			return Plan{}, fmt.Errorf("%w: step %s has no program on this machine", ErrUnsupported, s.Name)
		}
	}
	return Plan{
		Steps: steps, Final: final, FinalAction: "power-off", WipeMethod: d.Method, Message: d.Summary(),
		Verify: func(ctx context.Context) []Check { return VerifyLinuxWipe(ctx, w, d, cs) },
	}, nil
}

// cryptsetup reads LUKS headers through the allowlisted binary.
type cryptsetup struct{ path string }

func (c cryptsetup) UUID(ctx context.Context, dev string) (string, error) {
	out, err := allowcmd.Run(ctx, c.path, "luksUUID", dev)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Keyslots reads a LUKS2 header's JSON metadata (the keyslots object is
// cryptsetup's own table), falling back to the text dump on cryptsetup
// before 2.4, which has no --dump-json-metadata.
func (c cryptsetup) Keyslots(ctx context.Context, dev string, t blockdev.Crypt) ([]string, error) {
	if t == blockdev.LUKS2 {
		out, err := allowcmd.Run(ctx, c.path, "luksDump", "--dump-json-metadata", dev)
		if err == nil {
			return ParseLUKS2Keyslots(string(out))
		}
		if !strings.Contains(err.Error(), "dump-json-metadata") {
			return nil, err
		}
	}
	out, err := allowcmd.Run(ctx, c.path, "luksDump", dev)
	if err != nil {
		return nil, err
	}
	return ParseLUKSDump(string(out), t)
}
