package actions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/pamlock"
)

// lockPlan locks the machine (see LinuxLockPlan) and checks the result.
// Without a state dir the machine is still locked (refusing would leave it
// open), but no record is kept, so the lock is reported failed: no unlock
// could restore what it changed.
func (p *LinuxPlanner) lockPlan(_ context.Context, f LinuxFacts, cmd Command) (Plan, error) {
	if err := p.needLockTools(f); err != nil {
		return Plan{}, err
	}
	f.CommandID = cmd.ID
	verify := func(ctx context.Context) []Check {
		cs := verifyLinuxLock(ctx, f)
		if f.StateDir == "" {
			cs = append([]Check{{Name: "lock-record", Expected: "record of what the lock changed kept in the agent's state directory",
				Observed: "no state directory configured: nothing recorded, an unlock could not restore this lock"}}, cs...)
		}
		return cs
	}
	return Plan{
		Steps:   LinuxLockPlan(f, cmd.Message),
		Verify:  verify,
		Message: "local accounts locked and expired; every account but root and the system accounts refused at PAM's account stage; sessions ended",
	}, nil
}

func (p *LinuxPlanner) needLockTools(f LinuxFacts) error {
	if err := need("usermod", f.Usermod); err != nil {
		return err
	}
	if f.live() {
		// The SIGKILL sweep runs with or without systemd.
		return need("pkill", f.Pkill)
	}
	return nil
}

// unlockPlan restores what the lock record says the lock changed.
func (p *LinuxPlanner) unlockPlan(_ context.Context, f LinuxFacts, _ Command) (Plan, error) {
	if f.Record == nil {
		return Plan{}, noRecord(f)
	}
	if err := need("usermod", f.Usermod); err != nil {
		return Plan{}, err
	}
	if err := need("rm", f.Rm); err != nil {
		return Plan{}, err
	}
	steps, final, err := LinuxUnlockPlan(f)
	if err != nil {
		return Plan{}, err
	}
	return Plan{
		Steps:       steps,
		Verify:      func(context.Context) []Check { return VerifyLinuxUnlock(f) },
		Final:       final,
		FinalAction: "remove-lock-record",
		Message:     "restored what the lock changed (accounts, PAM account rule, nologin files)",
	}, nil
}

// pamModuleDirs are where distributions install PAM modules (Debian's
// multiarch dirs are globbed).
var pamModuleDirs = []string{
	"/lib/security", "/lib64/security", "/usr/lib/security", "/usr/lib64/security",
	"/lib/*-linux-gnu/security", "/usr/lib/*-linux-gnu/security",
}

// lockFacts reads what lock and unlock plans need beyond the accounts: the
// lock record, shadow states, the PAM account includes and modules, the
// nologin files, and (live) directory users with a logind session. What
// cannot be read is left empty with the reason where a check needs it: a
// lock must still lock what it can.
func (p *LinuxPlanner) lockFacts(f *LinuxFacts, passwd []accounts.Account) {
	f.StateDir = p.StateDir
	if f.StateDir != "" {
		rec, err := readLinuxLockRecord(f.recordPath())
		switch {
		case err == nil:
			f.Record = rec
		case !errors.Is(err, os.ErrNotExist):
			f.RecordErr = err.Error()
		}
	}
	if sh, err := accounts.ReadShadowStates(f.Root); err != nil {
		f.ShadowErr = err.Error()
	} else {
		f.Shadow = sh
	}
	seen := map[string]bool{}
	for _, inc := range PAMAccountIncludes {
		real, err := resolveIn(f.Root, inc)
		if err != nil || seen[real] {
			continue
		}
		full := f.path(real)
		st, err := os.Stat(full)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(full)
		if err != nil {
			continue
		}
		seen[real] = true
		f.PAM = append(f.PAM, PAMFile{Path: inc, Real: real, Content: string(b), Mode: st.Mode().Perm()})
	}
	for _, m := range pamlock.Modules {
		if !pamModuleInstalled(f, m) {
			f.PAMModulesMissing = append(f.PAMModulesMissing, m)
		}
	}
	f.NologinPresent = map[string]bool{}
	for _, n := range nologinPaths {
		if _, err := os.Lstat(f.path(n)); err == nil {
			f.NologinPresent[n] = true
		}
	}
	if f.live() {
		f.DirectorySessions = directorySessions("/run/systemd/users", passwd, f.Humans)
	}
}

func pamModuleInstalled(f *LinuxFacts, module string) bool {
	for _, d := range pamModuleDirs {
		matches, _ := filepath.Glob(filepath.Join(f.path(d), module))
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
				return true
			}
		}
	}
	return false
}

// directorySessions lists the users logind tracks (one file per UID in
// usersDir, with NAME=) that are not humans and that the PAM rule refuses:
// UID >= 1000, or not in /etc/passwd. Local system accounts (a display
// manager's greeter) are left alone.
func directorySessions(usersDir string, passwd, humans []accounts.Account) []accounts.Account {
	entries, err := os.ReadDir(usersDir)
	if err != nil {
		return nil
	}
	local := map[int]string{}
	for _, a := range passwd {
		local[a.UID] = a.Name
	}
	var out []accounts.Account
	for _, e := range entries {
		uid, err := strconv.Atoi(e.Name())
		if err != nil || uid <= 0 || slices.ContainsFunc(humans, func(h accounts.Account) bool { return h.UID == uid }) {
			continue
		}
		name, isLocal := local[uid]
		if isLocal && uid < 1000 {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(usersDir, e.Name())); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "NAME="); ok && v != "" {
					name = v
				}
			}
		}
		if name == "" {
			name = "uid-" + e.Name()
		}
		out = append(out, accounts.Account{Name: name, UID: uid})
	}
	return out
}
