package actions

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Windows program paths (fixed: the allowlist holds exactly these).
const (
	WinNet        = `C:\Windows\System32\net.exe`
	WinLogoff     = `C:\Windows\System32\logoff.exe`
	WinShutdown   = `C:\Windows\System32\shutdown.exe`
	WinMsg        = `C:\Windows\System32\msg.exe`
	WinPowerShell = `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`
	WinSecedit    = `C:\Windows\System32\secedit.exe`
	WinManageBDE  = `C:\Windows\System32\manage-bde.exe`
	WinQuser      = `C:\Windows\System32\quser.exe`
	WinDsregcmd   = `C:\Windows\System32\dsregcmd.exe`
	WinReagentc   = `C:\Windows\System32\ReAgentc.exe`
)

// The principals the lock denies interactive and Remote Desktop logon.
//
// Authenticated Users (S-1-5-11) is in the token of every account that
// signed in with credentials: local accounts including the built-in
// Administrator, domain accounts (also offline, from cached credentials),
// Entra ID (AzureAD\) and Microsoft accounts. It is the one principal that
// holds a directory account we cannot enumerate ahead of time (any member
// of the tenant may sign in to an Entra-joined PC), so it is the one to
// deny. Local account (S-1-5-113) or Domain Users would miss Entra ID
// users. Guests (S-1-5-32-546) adds the Guest account, which is not an
// authenticated user, and is Microsoft's own default for this right.
//
// SYSTEM, LOCAL SERVICE, NETWORK SERVICE and service accounts are not
// affected: these rights are checked only for interactive (console,
// unlock, cached) and Remote Desktop logons, and services start with a
// service logon (or, as SYSTEM, none at all). The agent, which runs as
// SYSTEM, keeps working and can unlock. Nobody can sign in at the
// console or over Remote Desktop until the unlock, including IT with the
// built-in Administrator: the unlock from Lanyard, or the BitLocker
// recovery password and a reinstall, are the ways back in.
var lockDenySIDs = []string{"*S-1-5-11", "*S-1-5-32-546"}

const (
	winLockRecordName = "windows-lock.json"
	winRestartDelay   = "15" // seconds: the committed result is on its way first
)

// winLockRecord is what a lock changed, kept in the agent's state dir
// before anything changes, so an unlock restores exactly that and a
// re-assert never overwrites it.
type winLockRecord struct {
	Version   int       `json:"version"`
	CommandID string    `json:"command_id"`
	LockedAt  time.Time `json:"locked_at"`
	// DisabledAccounts are the local accounts this lock disabled (they
	// were enabled before); the unlock re-enables only these.
	DisabledAccounts []winAccountRef `json:"disabled_accounts"`
	// PreviousRights are the deny rights before the lock, as secedit
	// exported them.
	PreviousRights map[string]rightValue `json:"previous_rights"`
	// BitLocker is set when the OS volume was encrypted at the lock.
	BitLocker *winBitLockerRecord `json:"bitlocker,omitempty"`
}

type winAccountRef struct {
	Name string `json:"name"`
	SID  string `json:"sid"`
}

type winBitLockerRecord struct {
	Volume string `json:"volume"`
	// ForcedRecovery: the lock deleted the TPM protectors so the next
	// boot needs the recovery password.
	ForcedRecovery bool `json:"forced_recovery"`
	// TPMProtectorsBefore are the TPM-based protectors present before the
	// lock (type and id): the ones -forcerecovery deletes. The unlock adds
	// a TPM protector back when there were any and none is left.
	TPMProtectorsBefore []winProtectorRef `json:"tpm_protectors_before,omitempty"`
	// EscrowedProtectorIDs are the recovery-password protectors the
	// server held at the lock.
	EscrowedProtectorIDs []string `json:"escrowed_protector_ids,omitempty"`
}

type winProtectorRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

func (r winLockRecord) json() string {
	b, _ := json.MarshalIndent(r, "", "  ")
	return string(b) + "\n"
}

// winPaths are the files the plans keep in the state dir.
type winPaths struct {
	Record, LockINF, UnlockINF, DB, Log, Export, CheckExport string
}

func newWinPaths(stateDir string) winPaths {
	j := func(n string) string { return filepath.Join(stateDir, n) }
	return winPaths{
		Record: j(winLockRecordName), LockINF: j("lock-rights.inf"), UnlockINF: j("unlock-rights.inf"),
		DB: j("lanyard-rights.sdb"), Log: j("lanyard-rights.log"),
		Export: j("rights-export.inf"), CheckExport: j("rights-check.inf"),
	}
}

// seceditConfigure applies an INF's user rights only (/areas USER_RIGHTS);
// /overwrite replaces what an earlier run left in the agent's own database
// instead of merging with it, /quiet answers its prompt.
func seceditConfigure(p winPaths, inf string) []string {
	return []string{WinSecedit, "/configure", "/db", p.DB, "/cfg", inf, "/overwrite", "/areas", "USER_RIGHTS", "/log", p.Log, "/quiet"}
}

func seceditExport(path string) []string {
	return []string{WinSecedit, "/export", "/cfg", path, "/areas", "USER_RIGHTS", "/quiet"}
}

// winLockedRights: each deny right with the lock's principals added to
// what it held before (secedit replaces a right's whole value).
func winLockedRights(current map[string]rightValue) map[string][]string {
	out := map[string][]string{}
	for _, r := range lockRights {
		ms := append([]string(nil), current[r].Members...)
		for _, sid := range lockDenySIDs {
			if !hasPrincipal(ms, sid) {
				ms = append(ms, sid)
			}
		}
		out[r] = ms
	}
	return out
}

// winRestoredRights: each deny right as the record says it was ("not
// defined" is written as an empty value, which denies nobody).
func winRestoredRights(rec winLockRecord) map[string][]string {
	out := map[string][]string{}
	for _, r := range lockRights {
		out[r] = append([]string{}, rec.PreviousRights[r].Members...)
	}
	return out
}

func winRestartStep(msg string) Step {
	if msg == "" {
		msg = "This computer was locked by IT."
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	if len(msg) > 500 { // shutdown /c takes at most 512 characters
		msg = msg[:500]
	}
	return Step{Name: "restart", Argv: []string{WinShutdown, "/r", "/f", "/t", winRestartDelay, "/c", msg}}
}

func winSessionStep(id uint32) Step {
	s := strconv.FormatUint(uint64(id), 10)
	return Step{Name: "log-off-session:" + s, Argv: []string{WinLogoff, s}, ContinueOnError: true}
}

// wipeProtectedPS invokes the MDM RemoteWipe CSP through the WMI bridge
// (root\cimv2\mdm\dmmap, MDM_RemoteWipe; needs Local System).
// doWipeProtected also wipes when the device cannot boot into recovery.
const wipeProtectedPS = `$ErrorActionPreference='Stop'; ` +
	`$w = Get-CimInstance -Namespace 'root/cimv2/mdm/dmmap' -ClassName 'MDM_RemoteWipe' ` +
	`-Filter "ParentID='./Vendor/MSFT' and InstanceID='RemoteWipe'"; ` +
	`Invoke-CimMethod -InputObject $w -MethodName 'doWipeProtectedMethod' -Arguments @{param=''} | Out-String`

// remoteWipeProbePS reads the same instance without calling it.
const remoteWipeProbePS = `$ErrorActionPreference='Stop'; ` +
	`Get-CimInstance -Namespace 'root/cimv2/mdm/dmmap' -ClassName 'MDM_RemoteWipe' ` +
	`-Filter "ParentID='./Vendor/MSFT' and InstanceID='RemoteWipe'" | Select-Object ParentID,InstanceID | ConvertTo-Json`

// localUsersPS lists local accounts with their SIDs as JSON (UTF-8, so
// names outside the OEM code page survive the pipe).
const localUsersPS = `$ErrorActionPreference='Stop'; [Console]::OutputEncoding=[Text.Encoding]::UTF8; ` +
	`ConvertTo-Json -InputObject @(Get-LocalUser | Select-Object Name,Enabled,@{n='SID';e={$_.SID.Value}})`

func powershell(script string) []string {
	return []string{WinPowerShell, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", script}
}

func winWipeFinal() []Step {
	return []Step{{Name: "remote-wipe-csp:doWipeProtected", Destructive: true, Argv: powershell(wipeProtectedPS)}}
}

// WindowsMessagePlan shows a message box in every session.
func WindowsMessagePlan(title, body string) []Step {
	text := body
	if title != "" {
		text = title + ": " + body
	}
	return []Step{{Name: "message", Argv: []string{WinMsg, "*", "/TIME:0", text}}}
}
