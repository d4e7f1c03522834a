package actions

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
	"github.com/lanyardhq/lanyard/agent/posture"
)

// Plans are pure functions of facts, in files without build tags so every
// platform's plan is tested on every platform.

// DefaultLockMessage is written to nologin when the command carries none.
const DefaultLockMessage = "This device has been locked by your organization's IT department. Contact IT.\n"

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
}

func (f LinuxFacts) live() bool { return f.Root == "" || f.Root == "/" }

func (f LinuxFacts) path(p string) string {
	if f.live() {
		return p
	}
	return filepath.Join(f.Root, p)
}

// LinuxLockPlan: block new logins (nologin, honoured by pam_nologin for every
// account source, LDAP/SSSD included), then lock and expire each human
// account (`usermod --lock --expiredate 1`: the lock stops passwords, the
// expiry stops SSH keys at the PAM account stage), then end their sessions.
func LinuxLockPlan(f LinuxFacts, msg string) []Step {
	if msg == "" {
		msg = DefaultLockMessage
	}
	steps := []Step{
		{Name: "block-logins:/etc/nologin", Write: &FileWrite{Path: f.path("/etc/nologin"), Content: msg, Mode: 0o644}},
		{Name: "block-logins:/run/nologin", Write: &FileWrite{Path: f.path("/run/nologin"), Content: msg, Mode: 0o644}},
	}
	for _, u := range f.Humans {
		argv := []string{f.Usermod}
		if !f.live() {
			argv = append(argv, "--prefix", f.Root)
		}
		argv = append(argv, "--lock", "--expiredate", "1", u.Name)
		steps = append(steps, Step{Name: "lock-account:" + u.Name, Argv: argv})
	}
	if f.live() {
		for _, u := range f.Humans {
			var argv []string
			if f.Systemd && f.Loginctl != "" {
				argv = []string{f.Loginctl, "terminate-user", u.Name}
			} else {
				argv = []string{f.Pkill, "-KILL", "-u", u.Name}
			}
			steps = append(steps, Step{Name: "end-sessions:" + u.Name, Argv: argv, ContinueOnError: true})
		}
	}
	return steps
}

// LinuxMessagePlan broadcasts to every terminal.
func LinuxMessagePlan(f LinuxFacts, title, body string) []Step {
	text := body
	if title != "" {
		text = title + ": " + body
	}
	return []Step{{Name: "message", Argv: []string{f.Wall, text}}}
}

// VerifyLinuxLock reads back what a lock plan changed: every human account
// locked and expired in shadow, and the nologin files in place.
func VerifyLinuxLock(f LinuxFacts) []Check {
	var out []Check
	for _, p := range []string{"/etc/nologin", "/run/nologin"} {
		_, err := os.Stat(f.path(p))
		out = append(out, Check{Name: "nologin:" + p, OK: err == nil, Observed: statWord(err), Expected: "present"})
	}
	shadow, err := accounts.ReadShadow(f.Root)
	for _, u := range f.Humans {
		c := Check{Name: "account-locked:" + u.Name, Expected: "password locked, account expired"}
		switch e, ok := shadow[u.Name]; {
		case err != nil:
			c.Observed = "shadow unreadable: " + err.Error()
		case !ok:
			c.Observed = "no shadow entry"
		default:
			c.Observed = e.Describe()
			c.OK = e.PasswordLocked() && e.Expired()
		}
		out = append(out, c)
	}
	return out
}

func statWord(err error) string {
	if err == nil {
		return "present"
	}
	if errors.Is(err, os.ErrNotExist) {
		return "missing"
	}
	return err.Error()
}
