package allowcmd

var allowed = []string{
	`C:\Windows\System32\net.exe`,
	`C:\Windows\System32\logoff.exe`,
	`C:\Windows\System32\shutdown.exe`,
	`C:\Windows\System32\msg.exe`,
	`C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`,
}
