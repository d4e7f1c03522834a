package allowcmd

var allowed = []string{
	"/usr/sbin/usermod", "/sbin/usermod",
	"/usr/bin/loginctl", "/bin/loginctl",
	"/usr/bin/pkill", "/bin/pkill",
	"/usr/sbin/cryptsetup", "/sbin/cryptsetup",
	"/usr/bin/systemctl", "/bin/systemctl",
	"/usr/bin/rm", "/bin/rm",
	"/usr/bin/wall", "/bin/wall",
	"/usr/sbin/ufw", "/sbin/ufw",
	"/usr/bin/firewall-cmd", "/bin/firewall-cmd",
	"/usr/sbin/nft", "/sbin/nft",
	"/usr/bin/lsblk", "/bin/lsblk",
	"/usr/bin/apt-config", "/bin/apt-config",
	"/usr/bin/id", "/bin/id",
}
