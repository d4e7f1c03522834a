package actions

import "strconv"

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
