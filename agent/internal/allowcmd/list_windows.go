package allowcmd

// The programs the Windows agent runs (agent/actions names the same paths).
var allowed = []string{
	`C:\Windows\System32\net.exe`,
	`C:\Windows\System32\logoff.exe`,
	`C:\Windows\System32\shutdown.exe`,
	`C:\Windows\System32\msg.exe`,
	`C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`,
	`C:\Windows\System32\secedit.exe`,
	`C:\Windows\System32\manage-bde.exe`,
	`C:\Windows\System32\quser.exe`,
	`C:\Windows\System32\dsregcmd.exe`,
	`C:\Windows\System32\ReAgentc.exe`,
}
