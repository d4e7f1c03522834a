package actions

import (
	"path/filepath"
	"strconv"

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

// LinuxWipePlan locks the machine, then either crypto-erases the LUKS
// header of the root volume (all keyslots gone: the data is unreadable
// once the kernel forgets the volume key, so power off at once) or, without
// LUKS, removes user data; then powers off.
func LinuxWipePlan(f LinuxFacts) []Step {
	steps := LinuxLockPlan(f, "This device is being erased by your organization's IT department.\n")
	if f.LUKS.Encrypted && f.LUKS.Backing != "" {
		steps = append(steps, Step{
			Name: "crypto-erase:/dev/" + f.LUKS.Backing, Destructive: true,
			Argv: []string{f.Cryptsetup, "luksErase", "--batch-mode", "/dev/" + f.LUKS.Backing},
		})
	} else {
		targets := []string{f.path("/root")}
		for _, u := range f.Humans {
			if u.Home != "" && u.Home != "/" {
				targets = append(targets, f.path(u.Home))
			}
		}
		for _, t := range targets {
			steps = append(steps, Step{
				Name: "remove-user-data:" + t, Destructive: true, ContinueOnError: true,
				Argv: []string{f.Rm, "-rf", "--one-file-system", "--preserve-root", "--", t},
			})
		}
	}
	if f.live() {
		steps = append(steps, Step{Name: "power-off", Destructive: true,
			Argv: []string{f.Systemctl, "poweroff", "--force", "--force"}})
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

// Windows program paths (fixed: the allowlist holds exactly these).
const (
	WinNet        = `C:\Windows\System32\net.exe`
	WinLogoff     = `C:\Windows\System32\logoff.exe`
	WinShutdown   = `C:\Windows\System32\shutdown.exe`
	WinMsg        = `C:\Windows\System32\msg.exe`
	WinPowerShell = `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`
)

// WindowsFacts: enabled local human accounts and interactive session ids.
type WindowsFacts struct {
	Users    []string
	Sessions []uint32
}

// WindowsLockPlan disables every enabled local human account, logs off the
// interactive sessions and shuts the machine down.
func WindowsLockPlan(f WindowsFacts, msg string) []Step {
	var steps []Step
	for _, u := range f.Users {
		steps = append(steps, Step{Name: "disable-account:" + u, Argv: []string{WinNet, "user", u, "/active:no"}})
	}
	for _, id := range f.Sessions {
		s := strconv.FormatUint(uint64(id), 10)
		steps = append(steps, Step{Name: "log-off-session:" + s, Argv: []string{WinLogoff, s}, ContinueOnError: true})
	}
	if msg == "" {
		msg = "Locked by IT"
	}
	if len(msg) > 500 { // shutdown /c limit is 512 characters
		msg = msg[:500]
	}
	steps = append(steps, Step{Name: "shut-down", Argv: []string{WinShutdown, "/s", "/f", "/t", "15", "/c", msg}})
	return steps
}

// wipeProtectedPS invokes the MDM RemoteWipe CSP through the WMI bridge
// (root\cimv2\mdm\dmmap, MDM_RemoteWipe; needs Local System).
// doWipeProtected also wipes when the device cannot boot into recovery.
const wipeProtectedPS = `$ErrorActionPreference='Stop'; ` +
	`$w = Get-CimInstance -Namespace 'root/cimv2/mdm/dmmap' -ClassName 'MDM_RemoteWipe' ` +
	`-Filter "ParentID='./Vendor/MSFT' and InstanceID='RemoteWipe'"; ` +
	`Invoke-CimMethod -InputObject $w -MethodName 'doWipeProtectedMethod' -Arguments @{param=''} | Out-String`

// WindowsWipePlan: RemoteWipe CSP doWipeProtected via WMI.
func WindowsWipePlan() []Step {
	return []Step{{
		Name: "remote-wipe-csp:doWipeProtected", Destructive: true,
		Argv: []string{WinPowerShell, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", wipeProtectedPS},
	}}
}

// WindowsMessagePlan shows a message box in every session.
func WindowsMessagePlan(title, body string) []Step {
	text := body
	if title != "" {
		text = title + ": " + body
	}
	return []Step{{Name: "message", Argv: []string{WinMsg, "*", "/TIME:0", text}}}
}
