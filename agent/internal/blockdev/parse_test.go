package blockdev_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev/blockdevtest"
)

func TestCryptOf(t *testing.T) {
	for uuid, want := range map[string]blockdev.Crypt{
		"CRYPT-LUKS2-4b0afb5651ed441e8b950c5ce95d9077-luks-x": blockdev.LUKS2,
		"CRYPT-LUKS1-9c1f0b7e2a444c1e9d3a6b0e2f1c7a58-home":   blockdev.LUKS1,
		"CRYPT-PLAIN-cryptswap":                               blockdev.Plain,
		"CRYPT-VERITY-7d2c4f3b9a8e4d1c8b7a6f5e4d3c2b1a-root":  blockdev.Verity,
		"CRYPT-BITLK-5e6f70819a2b4c3d8e9f0a1b2c3d4e5f-win":    blockdev.BitLocker,
		"CRYPT-TCRYPT-vc": blockdev.TrueCrypt,
		"CRYPT-SUBDEV-c4d5e6f708194a2b9c3d4e5f60718293-r_dif": blockdev.SubDev,
		"LVM-Xq3dPz0aR8kW2mN5bV7cT1yU4iO6pL9h":                blockdev.NotCrypt,
		"mpath-3600508b400105e210000900000490000":             blockdev.NotCrypt,
		"": blockdev.NotCrypt,
	} {
		got := blockdev.CryptOf(uuid)
		if got != want {
			t.Errorf("CryptOf(%q) = %q, want %q", uuid, got, want)
		}
		if got.Erasable() != (want == blockdev.LUKS1 || want == blockdev.LUKS2) {
			t.Errorf("%q erasable = %v", uuid, got.Erasable())
		}
	}
	for c, enc := range map[blockdev.Crypt]bool{blockdev.Plain: true, blockdev.BitLocker: true, blockdev.LUKS2: true,
		blockdev.Verity: false, blockdev.Integrity: false, blockdev.SubDev: false, blockdev.NotCrypt: false} {
		if c.Encrypts() != enc {
			t.Errorf("%q encrypts = %v", c, c.Encrypts())
		}
	}
}

func TestParseMountinfoAndSwaps(t *testing.T) {
	m := blockdev.ParseMountinfo("36 35 98:0 /mnt1 /mnt/My\\040Disk rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\ngarbage\n")
	if len(m) != 1 || m[0].MountPoint != "/mnt/My Disk" || m[0].Root != "/mnt1" || m[0].DevNo != "98:0" || m[0].FSType != "ext3" || m[0].Source != "/dev/root" {
		t.Fatalf("%+v", m)
	}
	s := blockdev.ParseSwaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap\\040file file 1024 0 -2\n/dev/dm-1 partition 8388604 0 -3\n")
	if !slices.Equal(s, []blockdev.SwapEntry{{Path: "/swap file", Type: "file"}, {Path: "/dev/dm-1", Type: "partition"}}) {
		t.Fatalf("%+v", s)
	}
}

// Mounts discovery cannot follow are Unknown exposures, never "encrypted"
// and never silently dropped.
func TestDiscoverUnknowns(t *testing.T) {
	b := blockdevtest.NewBuilder().
		Disk("devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0", "sda", "8:0").Partition("sda", "sda1", "8:1", 1).
		Loop("loop3", "7:3", "/var/lib/images/old.img (deleted)").
		Mount("1 0 8:1 / / rw - ext4 /dev/sda1 rw",
			"2 1 0:50 / /tank rw - zfs tank rw,xattr,posixacl",
			"3 1 0:51 / /data rw - btrfs /dev/disk/by-label/data rw,subvolid=5",
			"4 1 7:3 / /mnt/img rw - ext4 /dev/loop3 rw",
			"5 1 8:9 / /mnt/gone rw - ext4 /dev/sdz9 rw",
			"6 1 0:52 / /home/alice/share rw - nfs4 srv:/alice rw",
			"7 1 0:53 / /tmp rw - tmpfs tmpfs rw")
	l, err := blockdev.Discover(blockdevtest.Materialize(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range l.Stores {
		var ex []string
		for _, e := range s.Exposed {
			tag := "plain"
			if e.Unknown {
				tag = "unknown"
			}
			ex = append(ex, tag+":"+e.Device+":"+e.Detail)
		}
		got[s.Where()] = string(s.Role) + " " + strings.Join(ex, "|")
	}
	for where, want := range map[string]string{
		"/":                 "data plain:sda1:not encrypted",
		"/tank":             "data unknown::zfs filesystem",
		"/data":             "data unknown::btrfs source /dev/disk/by-label/data not found",
		"/mnt/img":          "data plain:loop3:loop device backed by /var/lib/images/old.img in /, which is on sda1: not encrypted",
		"/mnt/gone":         "data unknown::block device 8:9",
		"/home/alice/share": "remote ",
	} {
		if !strings.HasPrefix(got[where], want) {
			t.Errorf("%s: %q, want prefix %q", where, got[where], want)
		}
	}
	if _, ok := got["/tmp"]; ok {
		t.Error("tmpfs listed as a store")
	}
	if s, ok := l.StoreOf("/tmp/x"); ok {
		t.Errorf("a path on tmpfs is on store %s", s.Where())
	}
	if s, ok := l.StoreOf("/home/alice/share/doc"); !ok || s.Role != blockdev.RoleRemote {
		t.Errorf("nfs path: %+v %v", s, ok)
	}
	if s, ok := l.StoreOf("/home/bob"); !ok || s.Where() != "/" {
		t.Errorf("/home/bob on %+v", s)
	}
}
