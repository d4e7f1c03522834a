package actions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/internal/pamlock"
	"github.com/lanyardhq/lanyard/agent/internal/procs"
	"github.com/lanyardhq/lanyard/agent/posture"
)

// Plans are pure functions of facts, in files without build tags so every
// platform's plan is tested on every platform.

// DefaultLockMessage is written to nologin when the command carries none.
const DefaultLockMessage = "This device has been locked by your organization's IT department. Contact IT.\n"

// LinuxLockRecordName is the lock record's file name in the state dir.
const LinuxLockRecordName = "linux-lock-record.json"

// ErrNoLockRecord: an unlock found no record of what a lock changed, so it
// has nothing it could restore exactly.
var ErrNoLockRecord = errors.New("actions: no lock record")

// PAMAccountIncludes are the system-wide files every PAM service includes
// for its account stage: common-account on Debian, Ubuntu and SUSE;
// system-auth and password-auth on Fedora, RHEL and Arch (login services
// include the first, remote ones such as sshd the second).
var PAMAccountIncludes = []string{"/etc/pam.d/common-account", "/etc/pam.d/system-auth", "/etc/pam.d/password-auth"}

// nologinPaths: pam_nologin refuses non-root logins while one exists.
// systemd-user-sessions removes both at boot, so they only hold until the
// next reboot; the PAM rule and the shadow lock are what persist.
var nologinPaths = []string{"/etc/nologin", "/run/nologin"}

// LinuxFacts is what the Linux plans need to know about the machine.
type LinuxFacts struct {
	// Root is "/" on a real machine; a temporary directory in tests. Session
	// steps are left out unless Root is "/": sessions belong to the running
	// system, not to a directory.
	Root   string
	Humans []accounts.Account
	// Systemd: /run/systemd/system exists (use loginctl, else pkill).
	Systemd bool
	LUKS    posture.LUKSInfo
	// Absolute program paths (resolved through the allowlist).
	Usermod, Loginctl, Pkill, Cryptsetup, Systemctl, Rm, Wall string

	// The facts below serve lock and unlock (read in lock_linux.go).

	// StateDir keeps the lock record ("" : a plan that keeps none).
	StateDir string
	// Record is the lock record found in StateDir, nil when there is none;
	// RecordErr says why a record that exists could not be read.
	Record    *LinuxLockRecord
	RecordErr string
	// Shadow is every shadow entry's state (never a hash), by name;
	// ShadowErr says why shadow could not be read.
	Shadow    map[string]accounts.ShadowState
	ShadowErr string
	// PAM lists the PAMAccountIncludes that exist.
	PAM []PAMFile
	// PAMModulesMissing lists the pamlock.Modules that are not installed:
	// the rule is then not written (it would refuse root too).
	PAMModulesMissing []string
	// NologinPresent: which nologin files exist (logical paths).
	NologinPresent map[string]bool
	// DirectorySessions are accounts with a logind session that are not
	// Humans but that the PAM rule refuses (UID >= 1000, or not in
	// /etc/passwd: SSSD, LDAP, AD users). Live machines only.
	DirectorySessions []accounts.Account
	// CommandID is the lock command's id, kept in a new record.
	CommandID string
}

// PAMFile is one system-wide account include as read.
type PAMFile struct {
	// Path is the name services include ("/etc/pam.d/system-auth"); Real
	// the file behind it after symlinks (authselect links system-auth to
	// /etc/authselect/system-auth), which is what gets written. Both are
	// logical paths (without Root).
	Path, Real string
	Content    string
	Mode       os.FileMode
}

// LinuxLockRecord is what a lock changed, written before it changes
// anything and kept until a verified unlock has restored it. A re-assert
// keeps every entry as the first lock recorded it and only adds what it
// changes for the first time (an account created since, a PAM file that
// appeared).
type LinuxLockRecord struct {
	Version   int    `json:"version"`
	CommandID string `json:"command_id,omitempty"`
	// Message is what the nologin files say.
	Message  string          `json:"message"`
	Accounts []LockedAccount `json:"accounts"`
	PAMFiles []LockedPAMFile `json:"pam_files"`
	// CreatedFiles: files that did not exist and that the lock wrote
	// (logical paths); unlock removes them.
	CreatedFiles []string `json:"created_files"`
}

// LockedAccount is one account's shadow state before the lock.
type LockedAccount struct {
	Name string `json:"name"`
	UID  int    `json:"uid"`
	// WasLocked: the password was locked before; unlock leaves it locked.
	WasLocked bool `json:"was_locked"`
	// HadEmptyPassword: unlock restores an empty password field.
	HadEmptyPassword bool `json:"had_empty_password,omitempty"`
	// PreviousExpiry in days since 1970-01-01, -1 for none.
	PreviousExpiry int `json:"previous_expiry_days"`
	// Previous says the state in words, for the unlock evidence.
	Previous string `json:"previous"`
}

// LockedPAMFile is a PAM file the lock added its rule to.
type LockedPAMFile struct {
	Path string `json:"path"`
	Real string `json:"real_path"`
	// Lines are the lines inserted (pamlock.Block).
	Lines []string `json:"lines"`
	// SHA256Before is the digest of the file without the agent's lines,
	// so the unlock evidence can say whether the rest is as it was.
	SHA256Before string `json:"sha256_before"`
}

func (f LinuxFacts) live() bool { return f.Root == "" || f.Root == "/" }

func (f LinuxFacts) path(p string) string {
	if f.live() {
		return p
	}
	return filepath.Join(f.Root, p)
}

func (f LinuxFacts) recordPath() string { return filepath.Join(f.StateDir, LinuxLockRecordName) }

// sessionUsers are the accounts whose sessions a lock ends.
func (f LinuxFacts) sessionUsers() []accounts.Account {
	return append(append([]accounts.Account(nil), f.Humans...), f.DirectorySessions...)
}

func (r *LinuxLockRecord) account(name string) *LockedAccount {
	for i := range r.Accounts {
		if r.Accounts[i].Name == name {
			return &r.Accounts[i]
		}
	}
	return nil
}

func (r *LinuxLockRecord) pamFile(real string) bool {
	return slices.ContainsFunc(r.PAMFiles, func(p LockedPAMFile) bool { return p.Real == real })
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func blockLines() []string { return strings.Split(strings.TrimSuffix(pamlock.Block(), "\n"), "\n") }

// linuxLockRecord is the record a lock with facts f keeps: the existing
// record (unchanged) plus what this lock changes for the first time.
// changed reports whether it differs from f.Record.
func linuxLockRecord(f LinuxFacts, msg string) (rec LinuxLockRecord, changed bool) {
	if f.Record != nil {
		rec = *f.Record
		rec.Accounts = slices.Clone(rec.Accounts)
		rec.PAMFiles = slices.Clone(rec.PAMFiles)
		rec.CreatedFiles = slices.Clone(rec.CreatedFiles)
	} else {
		rec, changed = LinuxLockRecord{Version: 1, CommandID: f.CommandID, Message: msg}, true
	}
	for _, u := range f.Humans {
		st, ok := f.Shadow[u.Name]
		if !ok || rec.account(u.Name) != nil {
			continue // no shadow entry: nothing known to restore
		}
		rec.Accounts = append(rec.Accounts, LockedAccount{Name: u.Name, UID: u.UID, WasLocked: st.Locked,
			HadEmptyPassword: st.Empty, PreviousExpiry: st.ExpireDays, Previous: st.Describe()})
		changed = true
	}
	if len(f.PAMModulesMissing) == 0 {
		for _, p := range f.PAM {
			if rec.pamFile(p.Real) {
				continue
			}
			rec.PAMFiles = append(rec.PAMFiles, LockedPAMFile{Path: p.Path, Real: p.Real, Lines: blockLines(),
				SHA256Before: digest(pamlock.Remove(p.Content))})
			changed = true
		}
	}
	for _, p := range nologinPaths {
		if !f.NologinPresent[p] && !slices.Contains(rec.CreatedFiles, p) {
			rec.CreatedFiles = append(rec.CreatedFiles, p)
			changed = true
		}
	}
	return rec, changed
}

// LinuxLockPlan locks every account that can log in, in this order:
//  1. the lock record (what this lock changes), before anything changes;
//     a re-assert writes it only when it adds to it;
//  2. nologin files (for this boot only; honoured by pam_nologin);
//  3. the PAM account rule (pamlock) at the top of the account stack of
//     every system-wide include: refuses every account but root and the
//     local system accounts, directory accounts included, and persists;
//  4. each human account locked and expired (`usermod --lock --expiredate
//     1`: the lock stops passwords, the expiry stops SSH keys at the PAM
//     account stage even where the PAM rule was edited away);
//  5. the sessions of those accounts and of directory users with a logind
//     session ended (loginctl terminate-user, then a SIGKILL sweep by real
//     and effective UID for what logind does not track).
//
// New logins are refused (2, 3, 4) before sessions end (5), so nobody logs
// back in between. Every step is idempotent; steps whose effect is already
// in place are left out. Changing steps go on after a failure (a failed
// account must not leave the others unlocked); the verification reports it.
func LinuxLockPlan(f LinuxFacts, msg string) []Step {
	if msg == "" {
		msg = DefaultLockMessage
	}
	var steps []Step
	if rec, changed := linuxLockRecord(f, msg); changed && f.StateDir != "" && f.RecordErr == "" {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // keep "uid < 1000" readable
		enc.SetIndent("", "  ")
		_ = enc.Encode(rec) // plain structs: cannot fail
		steps = append(steps, Step{Name: "lock-record",
			Write: &FileWrite{Path: f.recordPath(), Content: b.String(), Mode: 0o600, Private: true}})
	}
	for _, p := range nologinPaths {
		if !f.NologinPresent[p] {
			steps = append(steps, Step{Name: "block-logins:" + p, ContinueOnError: true,
				Write: &FileWrite{Path: f.path(p), Content: msg, Mode: 0o644}})
		}
	}
	if len(f.PAMModulesMissing) == 0 {
		for _, p := range f.PAM {
			if pamlock.Inspect(p.Content).Holds() {
				continue
			}
			steps = append(steps, Step{Name: "pam-account-deny:" + p.Path, ContinueOnError: true,
				Write: &FileWrite{Path: f.path(p.Real), Content: pamlock.Insert(p.Content), Mode: p.Mode}})
		}
	}
	for _, u := range f.Humans {
		argv := []string{f.Usermod}
		if !f.live() {
			argv = append(argv, "--prefix", f.Root)
		}
		argv = append(argv, "--lock", "--expiredate", "1", u.Name)
		steps = append(steps, Step{Name: "lock-account:" + u.Name, Argv: argv, ContinueOnError: true})
	}
	if f.live() {
		for _, u := range f.Humans {
			steps = append(steps, endSessions(f, u, u.Name)...)
		}
		for _, u := range f.DirectorySessions {
			// By UID: a directory user's name needs NSS, its UID does not.
			steps = append(steps, endSessions(f, u, strconv.Itoa(u.UID))...)
		}
	}
	return steps
}

func endSessions(f LinuxFacts, u accounts.Account, who string) []Step {
	uid := strconv.Itoa(u.UID)
	var out []Step
	if f.Systemd && f.Loginctl != "" {
		out = append(out, Step{Name: "end-sessions:" + u.Name, Argv: []string{f.Loginctl, "terminate-user", who}, ContinueOnError: true})
	}
	// pkill exits 1 when nothing matched: not an error for the lock, the
	// sessions-ended check decides.
	return append(out,
		Step{Name: "kill-processes:" + u.Name, Argv: []string{f.Pkill, "-KILL", "-U", uid}, ContinueOnError: true},
		Step{Name: "kill-processes-euid:" + u.Name, Argv: []string{f.Pkill, "-KILL", "-u", uid}, ContinueOnError: true})
}

// LinuxMessagePlan broadcasts to every terminal.
func LinuxMessagePlan(f LinuxFacts, title, body string) []Step {
	text := body
	if title != "" {
		text = title + ": " + body
	}
	return []Step{{Name: "message", Argv: []string{f.Wall, text}}}
}

// sessionWait bounds how long the verification waits for killed processes
// to disappear (SIGKILL is delivered at once; exiting takes a moment).
const sessionWait = 10 * time.Second

// VerifyLinuxLock reads back what a lock plan achieved, one check per fact:
// the lock record kept, each human account locked and expired, each PAM
// account include holding the rule first, and (live) no process left of a
// user whose sessions were ended. The nologin files are not checked: they
// do not survive a reboot and the lock does not rely on them.
func VerifyLinuxLock(f LinuxFacts) []Check { return verifyLinuxLock(context.Background(), f) }

func verifyLinuxLock(ctx context.Context, f LinuxFacts) []Check {
	var out []Check
	if f.StateDir != "" {
		out = append(out, checkLockRecord(f))
	}
	shadow, err := accounts.ReadShadowStates(f.Root)
	for _, u := range f.Humans {
		c := Check{Name: "account-locked:" + u.Name, Expected: "password locked, account expired"}
		switch st, ok := shadow[u.Name]; {
		case err != nil:
			c.Observed = "shadow unreadable: " + err.Error()
		case !ok:
			c.Observed = "no shadow entry"
		default:
			c.Observed = st.Describe()
			c.OK = st.Locked && st.Expired()
		}
		out = append(out, c)
	}
	out = append(out, checkPAMRule(f)...)
	if f.live() {
		out = append(out, checkSessionsEnded(ctx, f)...)
	}
	return out
}

func checkLockRecord(f LinuxFacts) Check {
	c := Check{Name: "lock-record", Expected: "record of what the lock changed kept in " + f.recordPath()}
	rec, err := readLinuxLockRecord(f.recordPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.Observed = "missing"
	case err != nil:
		c.Observed = err.Error()
	default:
		c.OK = true
		c.Observed = fmt.Sprintf("kept in %s: %d accounts, %d PAM files, %d files created",
			f.recordPath(), len(rec.Accounts), len(rec.PAMFiles), len(rec.CreatedFiles))
	}
	return c
}

func readLinuxLockRecord(path string) (*LinuxLockRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec LinuxLockRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("lock record %s unreadable: %w", path, err)
	}
	if rec.Version != 1 {
		return nil, fmt.Errorf("lock record %s has unknown version %d", path, rec.Version)
	}
	return &rec, nil
}

func where(p PAMFile) string {
	if p.Real != p.Path {
		return " (in " + p.Real + ")"
	}
	return ""
}

func checkPAMRule(f LinuxFacts) []Check {
	const want = "lock rule first in the account stack"
	if len(f.PAM) == 0 {
		return []Check{{Name: "pam-account-deny", Expected: want + " of a system-wide PAM account file",
			Observed: "none of " + strings.Join(PAMAccountIncludes, ", ") + " exists: directory accounts are not refused"}}
	}
	var out []Check
	for _, p := range f.PAM {
		c := Check{Name: "pam-account-deny:" + p.Path, Expected: want}
		if len(f.PAMModulesMissing) > 0 {
			c.Observed = strings.Join(f.PAMModulesMissing, ", ") + " not installed: lock rule not added"
		} else if b, err := os.ReadFile(f.path(p.Real)); err != nil {
			c.Observed = "unreadable: " + err.Error()
		} else {
			st := pamlock.Inspect(string(b))
			c.OK, c.Observed = st.Holds(), st.Describe()+where(p)
		}
		out = append(out, c)
	}
	return out
}

// checkSessionsEnded waits (up to sessionWait or ctx) until no live
// process runs as a session user, then reports per user.
func checkSessionsEnded(ctx context.Context, f LinuxFacts) []Check {
	users := f.sessionUsers()
	if len(users) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, sessionWait)
	defer cancel()
	uids := map[int]bool{}
	for _, u := range users {
		uids[u.UID] = true
	}
	left := func() ([]procs.Proc, error) {
		ps, err := procs.List(f.path("/proc"))
		return slices.DeleteFunc(ps, func(p procs.Proc) bool {
			return !p.Live() || !uids[p.RealUID] && !uids[p.EffectiveUID]
		}), err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var ps []procs.Proc
	var err error
wait:
	for {
		if ps, err = left(); err != nil || len(ps) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			break wait
		case <-tick.C:
		}
	}
	var out []Check
	for _, u := range users {
		c := Check{Name: "sessions-ended:" + u.Name, Expected: fmt.Sprintf("no process running as %s (UID %d)", u.Name, u.UID)}
		if err != nil {
			c.Observed = "processes unreadable: " + err.Error()
			out = append(out, c)
			continue
		}
		var mine []string
		for _, p := range procs.LiveOf(ps, u.UID) {
			mine = append(mine, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
		}
		c.OK = len(mine) == 0
		c.Observed = "no process left"
		if !c.OK {
			c.Observed = fmt.Sprintf("%d processes left: %s", len(mine), strings.Join(mine, ", "))
		}
		out = append(out, c)
	}
	return out
}

// LinuxUnlockPlan restores what the lock record says the lock changed, in
// the reverse order of the lock: accounts (a password unlocked only where
// it was not locked before; the previous expiry back), the agent's PAM
// lines removed (nothing else in the files touched), the files the lock
// created removed. final removes the record; it runs only once the unlock
// verified (Plan.Final), so a failed unlock can be retried from it.
func LinuxUnlockPlan(f LinuxFacts) (steps, final []Step, err error) {
	if f.Record == nil {
		return nil, nil, noRecord(f)
	}
	rec := f.Record
	for _, a := range rec.Accounts {
		st, ok := f.Shadow[a.Name]
		if !ok {
			continue // removed since the lock: nothing to restore
		}
		var args []string
		if !a.WasLocked && st.Locked {
			if a.HadEmptyPassword {
				args = append(args, "--password", "")
			} else {
				args = append(args, "--unlock")
			}
		}
		if st.ExpireDays != a.PreviousExpiry {
			args = append(args, "--expiredate", expiryArg(a.PreviousExpiry))
		}
		if len(args) == 0 {
			continue
		}
		argv := []string{f.Usermod}
		if !f.live() {
			argv = append(argv, "--prefix", f.Root)
		}
		argv = append(append(argv, args...), a.Name)
		steps = append(steps, Step{Name: "restore-account:" + a.Name, Argv: argv, ContinueOnError: true})
	}
	for _, p := range f.PAM {
		if out := pamlock.Remove(p.Content); out != p.Content {
			steps = append(steps, Step{Name: "remove-pam-account-deny:" + p.Path, ContinueOnError: true,
				Write: &FileWrite{Path: f.path(p.Real), Content: out, Mode: p.Mode}})
		}
	}
	for _, p := range rec.CreatedFiles {
		if f.NologinPresent[p] {
			steps = append(steps, Step{Name: "remove-file:" + p, Argv: []string{f.Rm, "-f", "--", f.path(p)}, ContinueOnError: true})
		}
	}
	final = []Step{{Name: "remove-lock-record", Argv: []string{f.Rm, "-f", "--", f.recordPath()}}}
	return steps, final, nil
}

func noRecord(f LinuxFacts) error {
	if f.RecordErr != "" {
		return fmt.Errorf("%w: %s, so the agent cannot tell what to restore", ErrNoLockRecord, f.RecordErr)
	}
	return fmt.Errorf("%w: %s does not exist: this device holds no record of a Lanyard lock, so there is nothing to restore",
		ErrNoLockRecord, f.recordPath())
}

// expiryArg is usermod's --expiredate for days (-1: "" removes the expiry).
func expiryArg(days int) string {
	if days < 0 {
		return ""
	}
	return strconv.Itoa(days)
}

// VerifyLinuxUnlock reads back what an unlock restored: each recorded
// account in its state from before the lock, no agent line left in any PAM
// account include, and the files the lock created gone.
func VerifyLinuxUnlock(f LinuxFacts) []Check {
	if f.Record == nil {
		return nil
	}
	var out []Check
	shadow, err := accounts.ReadShadowStates(f.Root)
	for _, a := range f.Record.Accounts {
		c := Check{Name: "account-restored:" + a.Name, Expected: a.Previous + " (as before the lock)"}
		switch st, ok := shadow[a.Name]; {
		case err != nil:
			c.Observed = "shadow unreadable: " + err.Error()
		case !ok:
			c.OK, c.Observed = true, "account no longer exists (removed after the lock): nothing to restore"
		default:
			c.Observed = st.Describe()
			c.OK = st.Locked == a.WasLocked && st.ExpireDays == a.PreviousExpiry && (!a.HadEmptyPassword || st.Empty)
		}
		out = append(out, c)
	}
	before := map[string]string{}
	for _, p := range f.Record.PAMFiles {
		before[p.Real] = p.SHA256Before
	}
	for _, p := range f.PAM {
		c := Check{Name: "pam-account-deny-removed:" + p.Path, Expected: "no lock rule; the rest of the file untouched"}
		b, err := os.ReadFile(f.path(p.Real))
		switch {
		case err != nil:
			c.Observed = "unreadable: " + err.Error()
		case pamlock.Remove(string(b)) != string(b):
			c.Observed = pamlock.Inspect(string(b)).Describe() + where(p)
		case before[p.Real] != "" && digest(string(b)) == before[p.Real]:
			c.OK, c.Observed = true, "no lock rule; identical to before the lock"+where(p)
		default:
			c.OK, c.Observed = true, "no lock rule; lines other than the agent's changed since the lock (not by the agent)"+where(p)
		}
		out = append(out, c)
	}
	for _, p := range f.Record.CreatedFiles {
		c := Check{Name: "file-removed:" + p, Expected: "absent (the lock created it)"}
		_, err := os.Lstat(f.path(p))
		c.OK, c.Observed = errors.Is(err, os.ErrNotExist), statWord(err)
		out = append(out, c)
	}
	return out
}

func statWord(err error) string {
	if err == nil {
		return "present"
	}
	if errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	return err.Error()
}
