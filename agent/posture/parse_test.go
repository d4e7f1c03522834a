package posture

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev/blockdevtest"
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

// recorded materializes one of blockdev's recorded layouts.
func recorded(t *testing.T, name string) blockdev.Roots {
	t.Helper()
	spec, err := os.ReadFile(filepath.Join("..", "internal", "blockdev", "testdata", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return blockdevtest.Materialize(t, string(spec))
}

func TestLUKSForDevice(t *testing.T) {
	for _, tc := range []struct {
		layout, devno string
		want          LUKSInfo
	}{
		// LVM LV -> LUKS2 PV -> partition.
		{"lvm-on-luks", "253:1", LUKSInfo{Encrypted: true, CryptName: "dm-0", Backing: "nvme0n1p3", Type: "LUKS2"}},
		{"luks2-integrity-on-mdraid", "253:1", LUKSInfo{Encrypted: true, CryptName: "dm-1", Backing: "md0", Type: "LUKS2"}},
		// Plain dm-crypt and dm-verity are not LUKS.
		{"plain-dm-crypt", "253:0", LUKSInfo{}},
		{"verity-root", "253:0", LUKSInfo{}},
		{"no-encryption", "259:2", LUKSInfo{}},
	} {
		r := recorded(t, tc.layout)
		got, err := LUKSForDevice(r.Sys, tc.devno)
		if err != nil || got != tc.want {
			t.Errorf("%s %s: %+v %v, want %+v", tc.layout, tc.devno, got, err, tc.want)
		}
	}
	if _, err := LUKSForDevice(recorded(t, "no-encryption").Sys, "0:52"); !errors.Is(err, ErrNoBlockDevice) {
		t.Fatalf("overlay: err = %v, want ErrNoBlockDevice", err)
	}
}

// TestLinuxDiskEncryption: the posture check reads the same discovery as
// the wipe; plain dm-crypt is encryption (On) but not crypto-erasable.
func TestLinuxDiskEncryption(t *testing.T) {
	for _, tc := range []struct {
		layout string
		want   State
		detail string
	}{
		{"luks-root-ext4", On, "encrypted: /, /swapfile"},
		{"fedora-btrfs-two-devices", On, "encrypted: /"},
		{"lvm-on-luks", On, "encrypted: /, /dev/dm-2"},
		{"swap-on-luks", On, "encrypted"},
		{"plain-dm-crypt", On, "cannot crypto-erase: /, /dev/dm-1"},
		{"bitlocker-data", On, "cannot crypto-erase: /mnt/windows"},
		{"luks-home-plain-root", Off, "not encrypted: / (ext4 on sda2"},
		{"verity-root", Off, "/home (ext4 on nvme0n1p4"},
		{"no-encryption", Off, "/dev/nvme0n1p3 (swap on nvme0n1p3: not encrypted)"},
		{"recorded-btrfs-on-loop", Off, "loop device backed by"},
	} {
		l, err := blockdev.Discover(recorded(t, tc.layout))
		if err != nil {
			t.Fatal(err)
		}
		got := linuxDiskEncryption(l)
		if got.state != tc.want || !strings.Contains(got.detail, tc.detail) {
			t.Errorf("%s: %s %q, want %s containing %q", tc.layout, got.state, got.detail, tc.want, tc.detail)
		}
	}
	// A container: overlay root, nothing on a block device.
	l, err := blockdev.Discover(blockdevtest.Materialize(t, "== mountinfo\n"+mountinfoContainer+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := linuxDiskEncryption(l); got.state != Unknown || !strings.Contains(got.detail, "not on a block device") {
		t.Fatalf("container: %+v", got)
	}
}
