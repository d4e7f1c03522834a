package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/inventory"
)

// winTools runs the programs the Windows planner reads facts from (and, for
// RecoveryKeys, adds a recovery password with). planner_windows.go runs
// them through the allowlist; tests replay recorded outputs.
type winTools interface {
	Output(ctx context.Context, argv ...string) (string, error)
}

// winPlanner builds Windows lock, unlock, wipe and message plans. It is
// pure apart from its tools and the state dir, so it is tested on every OS.
type winPlanner struct {
	stateDir string
	volume   string // the OS volume, "C:"
	tools    winTools
	// wtsSessions lists sessions where quser.exe is missing (Home editions).
	wtsSessions func(context.Context) ([]winSession, error)
	// sessionWait bounds how long Verify waits for logged-off sessions to
	// close (logoff.exe returns before the session is gone).
	sessionWait, pollEvery time.Duration
	now                    func() time.Time
}

func (p *winPlanner) paths() winPaths { return newWinPaths(p.stateDir) }

func (p *winPlanner) clock() time.Time {
	if p.now != nil {
		return p.now().UTC()
	}
	return time.Now().UTC()
}

// Plan implements Planner.
func (p *winPlanner) Plan(ctx context.Context, cmd Command) (Plan, error) {
	switch cmd.Kind {
	case Lock:
		return p.lockPlan(ctx, cmd)
	case Unlock:
		return p.unlockPlan(ctx, cmd)
	case Wipe:
		return p.wipePlan(ctx)
	case Message:
		return Plan{Steps: WindowsMessagePlan(cmd.Title, cmd.Message)}, nil
	}
	return Plan{}, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}

// ---- facts -------------------------------------------------------------

type winBitLocker struct {
	Available  bool // manage-bde.exe present
	Status     bdeStatus
	Protectors []bdeProtector
	Err        error // status or protectors could not be read
}

func (b winBitLocker) encrypted() bool { return b.Available && b.Err == nil && b.Status.encrypted() }

func (b winBitLocker) tpmProtectors() []bdeProtector {
	var out []bdeProtector
	for _, pr := range b.Protectors {
		if pr.isTPM() {
			out = append(out, pr)
		}
	}
	return out
}

func (b winBitLocker) recoveryPasswords() []bdeProtector {
	var out []bdeProtector
	for _, pr := range b.Protectors {
		if pr.isRecoveryPassword() {
			out = append(out, pr)
		}
	}
	return out
}

// escrowed returns the recovery-password protectors whose id the server
// holds.
func (b winBitLocker) escrowed(ids []string) []bdeProtector {
	var out []bdeProtector
	for _, pr := range b.recoveryPasswords() {
		if slices.ContainsFunc(ids, func(id string) bool { return normProtectorID(id) == normProtectorID(pr.ID) }) {
			out = append(out, pr)
		}
	}
	return out
}

func (p *winPlanner) localUsers(ctx context.Context) ([]winLocalUser, error) {
	out, err := p.tools.Output(ctx, powershell(localUsersPS)...)
	if err != nil {
		return nil, fmt.Errorf("listing local accounts (Get-LocalUser): %w", err)
	}
	return parseLocalUsers(out)
}

// enabledHumans: enabled local accounts of people (RID ≥ 1000; the built-in
// Administrator, Guest, DefaultAccount and WDAGUtilityAccount are left as
// they are: the deny rights hold them).
func enabledHumans(us []winLocalUser) []winLocalUser {
	var out []winLocalUser
	for _, u := range us {
		if u.Enabled && inventory.IsHumanWindowsSID(u.SID) {
			out = append(out, u)
		}
	}
	return out
}

func (p *winPlanner) sessions(ctx context.Context) ([]winSession, error) {
	out, err := p.tools.Output(ctx, WinQuser)
	if errors.Is(err, allowcmd.ErrNotFound) && p.wtsSessions != nil {
		return p.wtsSessions(ctx)
	}
	if err != nil {
		// quser exits 1 with "No User exists for *" (localized) on stderr
		// and nothing on stdout when nobody is signed in.
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) && ec.ExitCode() == 1 && strings.TrimSpace(out) == "" {
			return nil, nil
		}
		return nil, fmt.Errorf("listing sessions (quser): %w", err)
	}
	return parseQuser(out)
}

func (p *winPlanner) join(ctx context.Context) (winJoin, error) {
	out, err := p.tools.Output(ctx, WinDsregcmd, "/status")
	if err != nil {
		return winJoin{}, fmt.Errorf("dsregcmd /status: %w", err)
	}
	return parseDsregStatus(out)
}

// rights exports the user rights to path, reads and removes the file.
func (p *winPlanner) rights(ctx context.Context, path string) (map[string]rightValue, error) {
	_ = os.Remove(path) // a stale export must never pass for a fresh one
	if _, err := p.tools.Output(ctx, seceditExport(path)...); err != nil {
		return nil, fmt.Errorf("reading logon rights (secedit /export): %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading logon rights: secedit wrote no export: %w", err)
	}
	_ = os.Remove(path)
	return parsePrivilegeRights(b)
}

func (p *winPlanner) bitlocker(ctx context.Context) winBitLocker {
	out, err := p.tools.Output(ctx, WinManageBDE, "-status", p.volume)
	if errors.Is(err, allowcmd.ErrNotFound) {
		return winBitLocker{}
	}
	b := winBitLocker{Available: true}
	if err != nil {
		b.Err = fmt.Errorf("manage-bde -status %s: %w", p.volume, err)
		return b
	}
	if b.Status, b.Err = parseBdeStatus(out); b.Err != nil || !b.Status.encrypted() {
		return b
	}
	out, err = p.tools.Output(ctx, WinManageBDE, "-protectors", "-get", p.volume)
	if ps, perr := parseProtectors(out); perr == nil {
		b.Protectors = ps
	} else if !errors.Is(perr, errNoProtectors) {
		b.Err = fmt.Errorf("manage-bde -protectors -get %s: %w", p.volume, errors.Join(perr, err))
	}
	return b
}

// ---- lock record ---------------------------------------------------------

func (p *winPlanner) readRecord() (winLockRecord, bool, error) {
	b, err := os.ReadFile(p.paths().Record)
	if errors.Is(err, fs.ErrNotExist) {
		return winLockRecord{}, false, nil
	}
	if err != nil {
		return winLockRecord{}, false, fmt.Errorf("reading the lock record: %w", err)
	}
	var r winLockRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return winLockRecord{}, false, fmt.Errorf("lock record %s is damaged: %w", p.paths().Record, err)
	}
	return r, true, nil
}

// ---- lock ----------------------------------------------------------------

func (p *winPlanner) lockPlan(ctx context.Context, cmd Command) (Plan, error) {
	if p.stateDir == "" {
		return Plan{}, errors.New("windows lock: no state dir to keep the lock record in")
	}
	paths := p.paths()
	rec, haveRecord, err := p.readRecord()
	if err != nil {
		return Plan{}, err
	}
	rights, err := p.rights(ctx, paths.Export)
	if err != nil {
		return Plan{}, err
	}
	users, usersErr := p.localUsers(ctx)
	sessions, sessionsErr := p.sessions(ctx)
	join, joinErr := p.join(ctx)
	bl := p.bitlocker(ctx)

	var steps []Step
	toDisable := enabledHumans(users)
	// The ids the server named in the first lock still count on a
	// re-assert: the password the server holds has not changed.
	escrowedIDs := slices.Clone(cmd.EscrowedProtectors)
	if haveRecord && rec.BitLocker != nil {
		escrowedIDs = append(escrowedIDs, rec.BitLocker.EscrowedProtectorIDs...)
	}
	if !haveRecord {
		rec = winLockRecord{Version: 1, CommandID: cmd.ID, LockedAt: p.clock(), PreviousRights: map[string]rightValue{}}
		for _, u := range toDisable {
			rec.DisabledAccounts = append(rec.DisabledAccounts, winAccountRef{Name: u.Name, SID: u.SID})
		}
		for _, r := range lockRights {
			rec.PreviousRights[r] = rights[r]
		}
		if bl.encrypted() {
			brec := &winBitLockerRecord{Volume: p.volume}
			for _, pr := range bl.escrowed(escrowedIDs) {
				brec.EscrowedProtectorIDs = append(brec.EscrowedProtectorIDs, pr.ID)
			}
			brec.ForcedRecovery = len(brec.EscrowedProtectorIDs) > 0 && len(bl.tpmProtectors()) > 0
			for _, pr := range bl.tpmProtectors() {
				brec.TPMProtectorsBefore = append(brec.TPMProtectorsBefore, winProtectorRef{Type: pr.Type, ID: pr.ID})
			}
			rec.BitLocker = brec
		}
		// Before anything changes, so an unlock can restore it even if
		// the lock stops half way.
		steps = append(steps, Step{Name: "write-lock-record", Write: &FileWrite{Path: paths.Record, Content: rec.json(), Mode: 0o600}})
	}
	for _, u := range toDisable {
		steps = append(steps, Step{Name: "disable-account:" + u.Name, Argv: []string{WinNet, "user", u.Name, "/active:no"}, ContinueOnError: true})
	}
	// Rights before logoff: a signed-out user cannot sign straight back in.
	steps = append(steps,
		Step{Name: "write-rights-template", Write: &FileWrite{Path: paths.LockINF, Content: rightsTemplate(winLockedRights(rights)), Mode: 0o600}},
		Step{Name: "deny-logon-rights", Argv: seceditConfigure(paths, paths.LockINF), ContinueOnError: true},
	)
	for _, s := range sessions {
		steps = append(steps, winSessionStep(s.ID))
	}
	escrowed := bl.escrowed(escrowedIDs)
	forcing := false
	if bl.encrypted() && len(escrowed) > 0 {
		if !bl.Status.protectionOn() {
			// Suspended protection keeps a clear key: no recovery would
			// be asked for at boot.
			steps = append(steps, Step{Name: "resume-bitlocker:" + p.volume, Argv: []string{WinManageBDE, "-protectors", "-enable", p.volume}, ContinueOnError: true})
		}
		if len(bl.tpmProtectors()) > 0 {
			forcing = true
			steps = append(steps, Step{Name: "force-bitlocker-recovery:" + p.volume, Argv: []string{WinManageBDE, "-forcerecovery", p.volume}, ContinueOnError: true})
		}
	}
	disabled := append([]winAccountRef(nil), rec.DisabledAccounts...)
	for _, u := range toDisable {
		if !slices.ContainsFunc(disabled, func(a winAccountRef) bool { return strings.EqualFold(a.SID, u.SID) }) {
			disabled = append(disabled, winAccountRef{Name: u.Name, SID: u.SID})
		}
	}
	plan := Plan{
		Steps: steps,
		Verify: func(ctx context.Context) []Check {
			return p.verifyLock(ctx, lockExpect{
				accounts: disabled, usersErr: usersErr, sessionsErr: sessionsErr, join: join, joinErr: joinErr,
				bitlocker: bl, escrowedIDs: escrowedIDs,
			})
		},
		Message: "logons denied, local accounts disabled, sessions signed out",
	}
	// The restart makes a forced recovery take effect now. A re-assert at
	// start restarts only when it had to force recovery again; otherwise
	// it would restart the machine at every boot.
	if !cmd.Reassert || forcing {
		plan.Final, plan.FinalAction = []Step{winRestartStep(cmd.Message)}, "restart"
	}
	return plan, nil
}

type lockExpect struct {
	accounts    []winAccountRef
	usersErr    error
	sessionsErr error
	join        winJoin
	joinErr     error
	bitlocker   winBitLocker
	escrowedIDs []string
}

func (p *winPlanner) verifyLock(ctx context.Context, e lockExpect) []Check {
	var cs []Check
	rec, ok, err := p.readRecord()
	switch {
	case err != nil:
		cs = append(cs, Check{Name: "lock-record", Observed: err.Error(), Expected: "lock record kept in the agent's state dir"})
	case !ok:
		cs = append(cs, Check{Name: "lock-record", Observed: "no lock record in " + p.stateDir, Expected: "lock record kept in the agent's state dir"})
	default:
		cs = append(cs, Check{Name: "lock-record", OK: true,
			Observed: fmt.Sprintf("kept since %s: %d accounts disabled by the lock, previous logon rights saved", rec.LockedAt.Format(time.RFC3339), len(rec.DisabledAccounts)),
			Expected: "lock record kept in the agent's state dir"})
	}

	cs = append(cs, p.accountChecks(ctx, e)...)
	cs = append(cs, p.denyChecks(ctx, e)...)
	cs = append(cs, p.sessionCheck(ctx, e.sessionsErr))
	cs = append(cs, p.bitlockerLockCheck(ctx, e))
	return cs
}

func (p *winPlanner) accountChecks(ctx context.Context, e lockExpect) []Check {
	const want = "disabled"
	if e.usersErr != nil {
		return []Check{{Name: "local-accounts-disabled", Observed: "could not list local accounts before the lock: " + e.usersErr.Error(), Expected: "every local account of a person disabled"}}
	}
	users, err := p.localUsers(ctx)
	if err != nil {
		return []Check{{Name: "local-accounts-disabled", Observed: "could not list local accounts: " + err.Error(), Expected: "every local account of a person disabled"}}
	}
	var cs []Check
	for _, a := range e.accounts {
		c := Check{Name: "account-disabled:" + a.Name, Expected: want}
		i := slices.IndexFunc(users, func(u winLocalUser) bool { return strings.EqualFold(u.SID, a.SID) })
		switch {
		case i < 0:
			c.OK, c.Observed = true, a.Name+" ("+a.SID+") no longer exists"
		case users[i].Enabled:
			c.Observed = users[i].Name + " (" + a.SID + ") is enabled"
		default:
			c.OK, c.Observed = true, users[i].Name+" ("+a.SID+") is disabled"
		}
		cs = append(cs, c)
	}
	left := enabledHumans(users)
	c := Check{Name: "local-accounts-disabled", Expected: "every local account of a person disabled"}
	if len(left) == 0 {
		c.OK = true
		c.Observed = fmt.Sprintf("no enabled local account of a person (%d disabled by this lock; built-in accounts are held by the denied logon rights)", len(e.accounts))
	} else {
		var n []string
		for _, u := range left {
			n = append(n, u.Name)
		}
		c.Observed = "still enabled: " + strings.Join(n, ", ")
	}
	return append(cs, c)
}

func rightTitle(r string) string {
	switch r {
	case RightDenyInteractive:
		return "Deny log on locally"
	case RightDenyRemoteInteractive:
		return "Deny log on through Remote Desktop Services"
	}
	return r
}

func (p *winPlanner) denyChecks(ctx context.Context, e lockExpect) []Check {
	want := "includes " + describePrincipals(lockDenySIDs)
	rights, err := p.rights(ctx, p.paths().CheckExport)
	var cs []Check
	allHeld := err == nil
	for _, r := range lockRights {
		c := Check{Name: "logon-right-denied:" + r, Expected: want}
		if err != nil {
			c.Observed = err.Error()
		} else {
			ms := rights[r].Members
			c.OK = slices.IndexFunc(lockDenySIDs, func(sid string) bool { return !hasPrincipal(ms, sid) }) < 0
			c.Observed = rightTitle(r) + ": " + describePrincipals(ms)
			allHeld = allHeld && c.OK
		}
		cs = append(cs, c)
	}
	// Directory accounts have no local account to disable: they are held
	// only by the rights above. Say so where it matters.
	if e.joinErr == nil && (e.join.Domain || e.join.AzureAD || e.join.Enterprise) {
		c := Check{Name: "directory-accounts-denied", OK: allHeld, Expected: "domain and Entra ID accounts denied local and Remote Desktop logon"}
		if allHeld {
			c.Observed = e.join.String() + "; its accounts sign in as Authenticated Users, which is denied local and Remote Desktop logon"
		} else {
			c.Observed = e.join.String() + "; the deny rights do not hold, so its accounts can still sign in"
		}
		cs = append(cs, c)
	}
	return cs
}

func (p *winPlanner) sessionCheck(ctx context.Context, before error) Check {
	c := Check{Name: "sessions-ended", Expected: "no interactive or Remote Desktop session signed in"}
	if before != nil {
		c.Observed = "could not list sessions before the lock: " + before.Error()
		return c
	}
	deadline := p.clock().Add(p.sessionWait)
	var ss []winSession
	var err error
	for {
		ss, err = p.sessions(ctx)
		if (err == nil && len(ss) == 0) || !p.clock().Before(deadline) || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(p.pollEvery)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	switch {
	case err != nil:
		c.Observed = err.Error()
	case len(ss) == 0:
		c.OK, c.Observed = true, "nobody signed in"
	default:
		var n []string
		for _, s := range ss {
			n = append(n, s.String())
		}
		c.Observed = "still signed in: " + strings.Join(n, "; ")
	}
	return c
}

func (p *winPlanner) bitlockerLockCheck(ctx context.Context, e lockExpect) Check {
	c := Check{Name: "bitlocker-recovery:" + p.volume, Expected: "BitLocker off, or recovery forced at next boot with a recovery password escrowed in Lanyard"}
	before := e.bitlocker
	switch {
	case !before.Available:
		c.OK, c.Observed = true, "manage-bde.exe not present: BitLocker is not available on this Windows"
		return c
	case before.Err != nil:
		c.Observed = "BitLocker state unknown: " + before.Err.Error()
		return c
	case !before.Status.encrypted():
		now := p.bitlocker(ctx)
		if now.Err == nil && now.Available && !now.Status.encrypted() {
			c.OK, c.Observed = true, fmt.Sprintf("BitLocker off on %s (%s): no recovery to force", p.volume, now.Status.Conversion)
		} else {
			c.Observed = "BitLocker state changed during the lock; run the lock again"
		}
		return c
	}
	if len(before.escrowed(e.escrowedIDs)) == 0 {
		var ids []string
		for _, pr := range before.recoveryPasswords() {
			ids = append(ids, pr.ID)
		}
		what := "no recovery password protector"
		if len(ids) > 0 {
			what = "recovery password " + strings.Join(ids, ", ") + " unknown to the server"
		}
		c.Observed = fmt.Sprintf("BitLocker on %s; recovery password not escrowed in Lanyard (%s); recovery not forced", p.volume, what)
		return c
	}
	now := p.bitlocker(ctx)
	if now.Err != nil || !now.Available {
		c.Observed = "could not read BitLocker after the lock: " + errString(now.Err)
		return c
	}
	var problems []string
	if tpm := now.tpmProtectors(); len(tpm) > 0 {
		var t []string
		for _, pr := range tpm {
			t = append(t, pr.Type+" "+pr.ID)
		}
		problems = append(problems, "TPM protector still present ("+strings.Join(t, ", ")+"), so Windows starts without the recovery password")
	}
	if !now.Status.protectionOn() {
		problems = append(problems, "protection is "+now.Status.Protection)
	}
	esc := now.escrowed(e.escrowedIDs)
	if len(esc) == 0 {
		problems = append(problems, "no escrowed recovery password protector left")
	}
	if len(problems) > 0 {
		c.Observed = "BitLocker on " + p.volume + ": " + strings.Join(problems, "; ")
		return c
	}
	c.OK = true
	c.Observed = fmt.Sprintf("BitLocker on %s, %s, no TPM protector: the next boot asks for recovery password %s, which Lanyard holds", p.volume, now.Status.Protection, esc[0].ID)
	return c
}

func errString(err error) string {
	if err == nil {
		return "manage-bde.exe not present"
	}
	return err.Error()
}

// ---- unlock --------------------------------------------------------------

func (p *winPlanner) unlockPlan(ctx context.Context, cmd Command) (Plan, error) {
	if p.stateDir == "" {
		return Plan{}, errors.New("windows unlock: no state dir holding a lock record")
	}
	rec, ok, err := p.readRecord()
	if err != nil {
		return Plan{}, err
	}
	if !ok {
		// Nothing recorded, so nothing to restore: prove that the lock's
		// rights are not in place (an unlock repeated after success).
		return Plan{Verify: p.verifyNoLock, Message: "no Lanyard lock on this device: nothing to restore"}, nil
	}
	paths := p.paths()
	var steps []Step
	for _, a := range rec.DisabledAccounts {
		steps = append(steps, Step{Name: "enable-account:" + a.Name, Argv: []string{WinNet, "user", a.Name, "/active:yes"}, ContinueOnError: true})
	}
	steps = append(steps,
		Step{Name: "write-rights-template", Write: &FileWrite{Path: paths.UnlockINF, Content: rightsTemplate(winRestoredRights(rec)), Mode: 0o600}},
		Step{Name: "restore-logon-rights", Argv: seceditConfigure(paths, paths.UnlockINF), ContinueOnError: true},
	)
	restoreTPM := rec.BitLocker != nil && len(rec.BitLocker.TPMProtectorsBefore) > 0
	if restoreTPM {
		if bl := p.bitlocker(ctx); bl.encrypted() && len(bl.tpmProtectors()) == 0 {
			steps = append(steps, Step{Name: "restore-tpm-protector:" + rec.BitLocker.Volume,
				Argv: []string{WinManageBDE, "-protectors", "-add", rec.BitLocker.Volume, "-tpm"}, ContinueOnError: true})
		}
	}
	return Plan{
		Steps:   steps,
		Verify:  func(ctx context.Context) []Check { return p.verifyUnlock(ctx, rec, restoreTPM) },
		Message: "logon rights and local accounts restored as before the lock",
	}, nil
}

func (p *winPlanner) verifyUnlock(ctx context.Context, rec winLockRecord, restoreTPM bool) []Check {
	var cs []Check
	users, err := p.localUsers(ctx)
	for _, a := range rec.DisabledAccounts {
		c := Check{Name: "account-enabled:" + a.Name, Expected: "enabled, as before the lock"}
		i := slices.IndexFunc(users, func(u winLocalUser) bool { return strings.EqualFold(u.SID, a.SID) })
		switch {
		case err != nil:
			c.Observed = "could not list local accounts: " + err.Error()
		case i < 0:
			c.OK, c.Observed = true, a.Name+" ("+a.SID+") no longer exists; nothing to re-enable"
		case users[i].Enabled:
			c.OK, c.Observed = true, users[i].Name+" ("+a.SID+") is enabled"
		default:
			c.Observed = users[i].Name + " (" + a.SID + ") is still disabled"
		}
		cs = append(cs, c)
	}
	rights, rerr := p.rights(ctx, p.paths().CheckExport)
	for _, r := range lockRights {
		prev := rec.PreviousRights[r].Members
		c := Check{Name: "logon-right-restored:" + r, Expected: rightTitle(r) + ": " + describePrincipals(prev) + " (as before the lock)"}
		if rerr != nil {
			c.Observed = rerr.Error()
		} else {
			c.OK = samePrincipals(rights[r].Members, prev)
			c.Observed = rightTitle(r) + ": " + describePrincipals(rights[r].Members)
		}
		cs = append(cs, c)
	}
	if restoreTPM {
		vol := rec.BitLocker.Volume
		c := Check{Name: "bitlocker-tpm-restored:" + vol, Expected: "a TPM protector, so Windows starts without the recovery password"}
		bl := p.bitlocker(ctx)
		switch {
		case bl.Err != nil || !bl.Available:
			c.Observed = "could not read BitLocker: " + errString(bl.Err)
		case !bl.Status.encrypted():
			c.OK, c.Observed = true, "BitLocker is off on "+vol+" ("+bl.Status.Conversion+"); no protector needed"
		case len(bl.tpmProtectors()) > 0:
			c.OK, c.Observed = true, "TPM protector "+bl.tpmProtectors()[0].ID+" on "+vol
		default:
			c.Observed = "no TPM protector on " + vol + ": every boot asks for the recovery password"
		}
		cs = append(cs, c)
	}
	// The record goes only once everything it describes is restored: a
	// failed unlock can be repeated.
	rc := Check{Name: "lock-record-removed", Expected: "lock record removed after the restore"}
	if bad := failedChecks(cs); bad != "" {
		rc.Observed = "kept, because the restore is incomplete"
	} else if err := os.Remove(p.paths().Record); err != nil && !errors.Is(err, fs.ErrNotExist) {
		rc.Observed = "could not remove: " + err.Error()
	} else {
		rc.OK, rc.Observed = true, "removed"
	}
	return append(cs, rc)
}

func (p *winPlanner) verifyNoLock(ctx context.Context) []Check {
	c := Check{Name: "no-lock-held", Expected: "no lock record, and Authenticated Users not denied logon"}
	rights, err := p.rights(ctx, p.paths().CheckExport)
	if err != nil {
		c.Observed = "no lock record; " + err.Error()
		return []Check{c}
	}
	for _, r := range lockRights {
		if hasPrincipal(rights[r].Members, lockDenySIDs[0]) {
			c.Observed = "no lock record, but " + rightTitle(r) + " still holds Authenticated Users: the previous value is unknown, restore it in Local Security Policy"
			return []Check{c}
		}
	}
	c.OK, c.Observed = true, "no lock record; Authenticated Users is not denied logon"
	return []Check{c}
}

// ---- wipe ----------------------------------------------------------------

func (p *winPlanner) winreEnabled(ctx context.Context) (bool, error) {
	out, err := p.tools.Output(ctx, WinReagentc, "/info")
	if err != nil {
		return false, fmt.Errorf("reagentc /info: %w", err)
	}
	return parseReagentcInfo(out)
}

func (p *winPlanner) remoteWipe(ctx context.Context) (bool, string) {
	out, err := p.tools.Output(ctx, powershell(remoteWipeProbePS)...)
	if err != nil {
		return false, "WMI bridge not reachable: " + err.Error()
	}
	inst, ok, err := parseRemoteWipeInstance(out)
	switch {
	case err != nil:
		return false, err.Error()
	case !ok:
		return false, "no MDM_RemoteWipe instance in root\\cimv2\\mdm\\dmmap (the bridge needs the device to have, or have had, an MDM enrollment)"
	}
	return true, fmt.Sprintf("MDM_RemoteWipe %s/%s found in root\\cimv2\\mdm\\dmmap", inst.ParentID, inst.InstanceID)
}

func (p *winPlanner) wipePlan(ctx context.Context) (Plan, error) {
	var steps []Step
	// Fleet's finding: a disabled Windows RE is the usual reason the CSP's
	// reset fails. Repair it before committing.
	if on, err := p.winreEnabled(ctx); err == nil && !on {
		steps = append(steps, Step{Name: "enable-winre", Argv: []string{WinReagentc, "/enable"}, ContinueOnError: true})
	}
	// After a lock forced recovery there is no TPM protector: the reset's
	// reboot into Windows RE would stop at the recovery screen. Suspend
	// protection for that one reboot; the reset then clears the drive.
	if bl := p.bitlocker(ctx); bl.encrypted() && len(bl.tpmProtectors()) == 0 {
		steps = append(steps, Step{Name: "suspend-bitlocker-for-reset:" + p.volume,
			Argv: []string{WinManageBDE, "-protectors", "-disable", p.volume, "-RebootCount", "1"}, ContinueOnError: true})
	}
	return Plan{
		Steps: steps,
		Verify: func(ctx context.Context) []Check {
			re := Check{Name: "winre-enabled", Expected: "Windows RE enabled (the reset runs in it)"}
			if on, err := p.winreEnabled(ctx); err != nil {
				re.Observed = err.Error()
			} else if on {
				re.OK, re.Observed = true, "Windows RE status: Enabled"
			} else {
				re.Observed = "Windows RE status: Disabled (reagentc /enable did not enable it)"
			}
			csp := Check{Name: "remote-wipe-csp-reachable", Expected: "RemoteWipe CSP reachable through the WMI bridge"}
			csp.OK, csp.Observed = p.remoteWipe(ctx)
			return []Check{re, csp}
		},
		Final: winWipeFinal(), FinalAction: "reset", WipeMethod: WipeRemoteCSP,
		Message: "RemoteWipe CSP doWipeProtected: Windows resets and cleans the drive",
	}, nil
}

// ---- BitLocker recovery escrow -------------------------------------------

// recoveryPasswordRE: 48 digits in 8 groups of 6.
var recoveryPasswordRE = regexp.MustCompile(`^\d{6}(-\d{6}){7}$`)

// RecoveryKeys implements RecoveryKeyReader: the OS volume's
// recovery-password protectors, for the client to escrow. When BitLocker
// is on and there is none, one is added first so the server can hold it.
// The passwords are returned, never logged or put in an error.
func (p *winPlanner) RecoveryKeys(ctx context.Context) ([]RecoveryKey, error) {
	bl := p.bitlocker(ctx)
	if !bl.Available {
		return nil, nil
	}
	if bl.Err != nil {
		return nil, bl.Err
	}
	if !bl.Status.encrypted() {
		return nil, nil
	}
	keys, err := p.readRecoveryPasswords(ctx)
	if errors.Is(err, errNoProtectors) {
		// The output of -add carries the new password: discarded.
		if _, err := p.tools.Output(ctx, WinManageBDE, "-protectors", "-add", p.volume, "-RecoveryPassword"); err != nil {
			return nil, fmt.Errorf("adding a recovery password protector to %s: %w", p.volume, err)
		}
		keys, err = p.readRecoveryPasswords(ctx)
	}
	if err != nil {
		return nil, err
	}
	return keys, nil
}

func (p *winPlanner) readRecoveryPasswords(ctx context.Context) ([]RecoveryKey, error) {
	out, runErr := p.tools.Output(ctx, WinManageBDE, "-protectors", "-get", p.volume, "-Type", "RecoveryPassword")
	ps, err := parseProtectors(out)
	if errors.Is(err, errNoProtectors) {
		return nil, errNoProtectors
	}
	if err != nil {
		return nil, fmt.Errorf("reading recovery passwords of %s: %w", p.volume, errors.Join(err, runErr))
	}
	var keys []RecoveryKey
	for _, pr := range ps {
		if !pr.isRecoveryPassword() {
			continue
		}
		if !recoveryPasswordRE.MatchString(pr.Password) {
			return nil, fmt.Errorf("recovery password protector %s of %s: password not shown or malformed", pr.ID, p.volume)
		}
		keys = append(keys, RecoveryKey{Kind: "bitlocker", Volume: p.volume, ProtectorID: pr.ID, Password: pr.Password})
	}
	if len(keys) == 0 {
		return nil, errNoProtectors
	}
	return keys, nil
}
