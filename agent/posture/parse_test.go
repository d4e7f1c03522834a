package posture

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParsers(t *testing.T) {
	cases := []struct {
		name string
		got  result
		want State
	}{
		{"fde on", parseFdesetup("FileVault is On.\n"), On},
		{"fde off", parseFdesetup("FileVault is Off.\n"), Off},
		{"fde deferred", parseFdesetup("FileVault is Off, but will be enabled after the next restart.\n"), Off},
		{"fde error text", parseFdesetup("Error: must be run as root\n"), Unknown},
		{"fde empty", parseFdesetup(""), Unknown},
		{"sfw on", parseSocketfilterfw("Firewall is enabled. (State = 1)"), On},
		{"sfw block all", parseSocketfilterfw("Firewall is enabled. (State = 2)"), On},
		{"sfw off", parseSocketfilterfw("Firewall is disabled. (State = 0)"), Off},
		{"sfw garbage", parseSocketfilterfw("usage: ..."), Unknown},
		{"defaults 1", parseDefaultsBool("1\n", "k"), On},
		{"defaults 0", parseDefaultsBool("0\n", "k"), Off},
		{"defaults missing", parseDefaultsBool("", "k"), Unknown},
		{"bitlocker on", bitLockerState(1), On},
		{"bitlocker off", bitLockerState(0), Off},
		{"bitlocker locked", bitLockerState(2), Unknown},
		{"fw all on", firewallProfiles(map[string]bool{"Domain": true, "Private": true, "Public": true}), On},
		{"fw public off", firewallProfiles(map[string]bool{"Domain": true, "Private": true, "Public": false}), Off},
		{"fw none", firewallProfiles(nil), Unknown},
		{"apt on", parseAptConfig(`APT::Periodic::Unattended-Upgrade "1";`, true, false), On},
		{"apt zero", parseAptConfig(`APT::Periodic::Unattended-Upgrade "0";`, true, false), Off},
		{"apt unset installed", parseAptConfig(`APT "";`, true, false), Unknown},
		{"apt set not installed", parseAptConfig(`APT::Periodic::Unattended-Upgrade "1";`, false, false), Unknown},
		{"apt nothing, server", parseAptConfig(`APT "";`, false, false), Off},
		{"apt nothing, desktop with PackageKit", parseAptConfig(`APT "";`, false, true), Unknown},
		{"linux fw: no tools", linuxFirewall(nil, nil, nil), Unknown},
		{"linux fw: all errored", linuxFirewall(&toolAnswer{err: errors.New("exit 1")}, nil, &toolAnswer{err: errors.New("permission denied")}), Unknown},
		{"linux fw: ufw active", linuxFirewall(&toolAnswer{out: "Status: active\n"}, nil, nil), On},
		{"linux fw: ufw inactive, nft rules", linuxFirewall(&toolAnswer{out: "Status: inactive"}, nil,
			&toolAnswer{out: "table inet filter {\n chain input {\n type filter hook input priority 0; policy drop;\n tcp dport 22 accept\n }\n}\n"}), On},
		{"linux fw: firewalld not running, nft empty", linuxFirewall(nil, &toolAnswer{out: "not running\n", err: errors.New("exit 252")},
			&toolAnswer{out: "table inet filter {\n chain input {\n type filter hook input priority 0; policy accept;\n }\n}\n"}), Off},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.state != tc.want {
				t.Fatalf("state = %q (%s), want %q", tc.got.state, tc.got.detail, tc.want)
			}
			if tc.got.detail == "" {
				t.Fatal("no detail")
			}
		})
	}
}

func TestRecordNeverEmpty(t *testing.T) {
	d := map[string]string{}
	if got := record(d, "x", result{}); got != Unknown {
		t.Fatalf("empty result recorded as %q", got)
	}
}

func TestDconfScreenLock(t *testing.T) {
	root := t.TempDir()
	if got := dconfScreenLock(root); got.state != Unknown {
		t.Fatalf("no dconf: %q", got.state)
	}
	dir := filepath.Join(root, "etc", "dconf", "db", "local.d")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "00-other"), []byte("[org/gnome/desktop/interface]\nlock-enabled=false\n"), 0o644)
	if got := dconfScreenLock(root); got.state != Unknown {
		t.Fatalf("key in other section: %q", got.state)
	}
	os.WriteFile(filepath.Join(dir, "01-screensaver"), []byte("[org/gnome/desktop/screensaver]\nidle-delay=uint32 300\nlock-enabled=true\n"), 0o644)
	if got := dconfScreenLock(root); got.state != On {
		t.Fatalf("lock-enabled=true: %q", got.state)
	}
}

const mountinfoContainer = `552 480 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/x
553 552 0:55 / /proc rw,nosuid - proc proc rw`

const mountinfoLUKS = `22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw
23 22 259:2 / /boot rw - ext4 /dev/nvme0n1p2 rw`

func TestRootDevice(t *testing.T) {
	mm, src, fs, err := RootDevice(mountinfoContainer)
	if err != nil || mm != "0:52" || src != "overlay" || fs != "overlay" {
		t.Fatalf("container: %q %q %q %v", mm, src, fs, err)
	}
	mm, src, _, err = RootDevice(mountinfoLUKS)
	if err != nil || mm != "253:1" || src != "/dev/mapper/vg-root" {
		t.Fatalf("luks: %q %q %v", mm, src, err)
	}
	if _, _, _, err := RootDevice("garbage"); err == nil {
		t.Fatal("no / entry accepted")
	}
}

// fakeSysfs builds /sys/dev/block and /sys/class/block-like links:
// dm-1 (LVM) -> dm-0 (CRYPT) -> nvme0n1p3, and sda1 plain.
func fakeSysfs(t *testing.T) string {
	sys := t.TempDir()
	blk := filepath.Join(sys, "devices", "virtual", "block")
	mk := func(name, uuid string, slaves ...string) {
		d := filepath.Join(blk, name)
		os.MkdirAll(filepath.Join(d, "slaves"), 0o755)
		if uuid != "" {
			os.MkdirAll(filepath.Join(d, "dm"), 0o755)
			os.WriteFile(filepath.Join(d, "dm", "uuid"), []byte(uuid+"\n"), 0o644)
		}
		for _, s := range slaves {
			os.Symlink(filepath.Join(blk, s), filepath.Join(d, "slaves", s))
		}
	}
	mk("nvme0n1p3", "")
	mk("dm-0", "CRYPT-LUKS2-0123456789abcdef-luks-root", "nvme0n1p3")
	mk("dm-1", "LVM-abcdef", "dm-0")
	mk("sda1", "")
	os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
	os.Symlink(filepath.Join(blk, "dm-1"), filepath.Join(sys, "dev", "block", "253:1"))
	os.Symlink(filepath.Join(blk, "sda1"), filepath.Join(sys, "dev", "block", "8:1"))
	return sys
}

func TestLUKSForDevice(t *testing.T) {
	sys := fakeSysfs(t)
	info, err := LUKSForDevice(sys, "253:1")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Encrypted || info.CryptName != "dm-0" || info.Backing != "nvme0n1p3" {
		t.Fatalf("LVM on LUKS: %+v", info)
	}
	info, err = LUKSForDevice(sys, "8:1")
	if err != nil || info.Encrypted {
		t.Fatalf("plain partition: %+v %v", info, err)
	}
	if _, err := LUKSForDevice(sys, "0:52"); !errors.Is(err, ErrNoBlockDevice) {
		t.Fatalf("overlay: err = %v, want ErrNoBlockDevice", err)
	}
}
