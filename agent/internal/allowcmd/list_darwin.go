package allowcmd

var allowed = []string{
	"/usr/sbin/ioreg",
	"/usr/sbin/system_profiler",
	"/usr/bin/sw_vers",
	"/usr/bin/fdesetup",
	"/usr/libexec/ApplicationFirewall/socketfilterfw",
	"/usr/bin/defaults",
	"/usr/bin/dscl",
	"/usr/bin/wall",
}
