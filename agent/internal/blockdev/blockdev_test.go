package blockdev_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev/blockdevtest"
)

func load(t *testing.T, name string) blockdev.Layout {
	t.Helper()
	spec, err := os.ReadFile(filepath.Join("testdata", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := blockdev.Discover(blockdevtest.Materialize(t, string(spec)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// summary is one store as "kind where: luks[...] exposed[...]" or "where: role".
func summary(s blockdev.Store) string {
	if s.Role != blockdev.RoleData {
		if s.Role == blockdev.RoleImage && len(s.Devices) > 0 {
			return s.Where() + ": " + string(s.Role) + " (" + s.Note + ")"
		}
		return s.Where() + ": " + string(s.Role)
	}
	var luks, exp []string
	for _, v := range s.LUKS {
		luks = append(luks, v.Crypt+"<"+v.Header)
	}
	for _, e := range s.Exposed {
		tag := "plain"
		if e.Encrypted {
			tag = "encrypted"
		}
		if e.Unknown {
			tag = "unknown"
		}
		exp = append(exp, tag+":"+e.Device)
	}
	return strings.Join(s.MountPoints, ",") + ": luks[" + strings.Join(luks, " ") + "] exposed[" + strings.Join(exp, " ") + "]"
}

func TestDiscoverLayouts(t *testing.T) {
	cases := []struct {
		layout  string
		stores  []string
		volumes []string // "LUKS2 dm-0 /dev/sda3 <uuid>"
		// erasable: every data store is under LUKS; encrypted: every data
		// store is under some encryption.
		erasable, encrypted bool
	}{
		{
			layout: "luks-root-ext4",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[dm-0<sda3] exposed[]",
				"/boot: boot", "/boot/efi: boot", "/snap/core22/1033: read-only image",
				"/swapfile: luks[dm-0<sda3] exposed[]",
			},
			volumes:  []string{"LUKS2 dm-0 /dev/sda3 4b0afb56-51ed-441e-8b95-0c5ce95d9077"},
			erasable: true, encrypted: true,
		},
		{
			// Fedora: one btrfs over two LUKS2 devices, subvolumes / and
			// /home; swap on zram.
			layout: "fedora-btrfs-two-devices",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/,/home: luks[dm-0<nvme0n1p3 dm-1<nvme1n1p1] exposed[]",
				"/boot: boot", "/boot/efi: boot",
				"/dev/zram0: memory",
			},
			volumes: []string{
				"LUKS2 dm-0 /dev/nvme0n1p3 a1e2c3d4-0000-4a4a-8b8b-111122223333",
				"LUKS2 dm-1 /dev/nvme1n1p1 b1e2c3d4-0000-4b4b-8c8c-444455556666",
			},
			erasable: true, encrypted: true,
		},
		{
			layout: "luks-home-plain-root",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[] exposed[plain:sda2]",
				"/boot/efi: boot",
				"/home: luks[dm-0<sda3] exposed[]",
			},
			volumes: []string{"LUKS1 dm-0 /dev/sda3 9c1f0b7e-2a44-4c1e-9d3a-6b0e2f1c7a58"},
		},
		{
			// Debian/Ubuntu "encrypted LVM": LV -> VG -> LUKS PV -> partition.
			layout: "lvm-on-luks",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[dm-0<nvme0n1p3] exposed[]",
				"/boot: boot", "/boot/efi: boot",
				"/dev/dm-2: luks[dm-0<nvme0n1p3] exposed[]",
			},
			volumes:  []string{"LUKS2 dm-0 /dev/nvme0n1p3 e0c3a1d2-5b6f-4f70-8a91-b2c3d4e5f601"},
			erasable: true, encrypted: true,
		},
		{
			// dm-verity is integrity, not encryption: the read-only root
			// holds no user data, the plain /home does.
			layout: "verity-root",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: read-only image (on dm-verity: read-only)",
				"/efi: boot",
				"/home: luks[] exposed[plain:nvme0n1p4]",
			},
		},
		{
			// Plain dm-crypt encrypts but has no header to erase.
			layout: "plain-dm-crypt",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[] exposed[encrypted:dm-0]",
				"/boot: boot",
				"/dev/dm-1: luks[] exposed[encrypted:dm-1]",
			},
			encrypted: true,
		},
		{
			layout: "no-encryption",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[] exposed[plain:nvme0n1p2]",
				"/boot/efi: boot",
				"/dev/nvme0n1p3: luks[] exposed[plain:nvme0n1p3]",
			},
		},
		{
			layout: "swap-on-luks",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[dm-0<nvme0n1p2] exposed[]",
				"/boot/efi: boot",
				"/dev/dm-1: luks[dm-1<nvme0n1p3] exposed[]",
			},
			volumes: []string{
				"LUKS2 dm-0 /dev/nvme0n1p2 3f9d8c7b-6a5e-4d3c-9b2a-1f0e9d8c7b6a",
				"LUKS2 dm-1 /dev/nvme0n1p3 5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
			},
			erasable: true, encrypted: true,
		},
		{
			// LUKS2 with authenticated encryption on MD RAID1: the header
			// is on md0, below cryptsetup's dm-integrity sub-device.
			layout: "luks2-integrity-on-mdraid",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[dm-1<md0] exposed[]",
				"/boot: boot",
			},
			volumes:  []string{"LUKS2 dm-1 /dev/md0 c4d5e6f7-0819-4a2b-9c3d-4e5f60718293"},
			erasable: true, encrypted: true,
		},
		{
			// A BitLocker partition opened with cryptsetup: encrypted, but
			// not something luksErase can destroy.
			layout: "bitlocker-data",
			stores: []string{
				"/run/user/1000/gvfs: stored in another mount",
				"/: luks[dm-0<nvme0n1p5] exposed[]",
				"/boot/efi: boot",
				"/mnt/windows: luks[] exposed[encrypted:dm-1]",
			},
			volumes:   []string{"LUKS2 dm-0 /dev/nvme0n1p5 0d1e2f30-4152-4637-8899-aabbccddeeff"},
			encrypted: true,
		},
		{
			// Recorded on a real kernel: btrfs RAID1 over two loop devices
			// whose image files are on the plain root.
			layout: "recorded-btrfs-on-loop",
			stores: []string{
				"/: luks[] exposed[plain:vda]",
				"/tmp/cs/mnt,/tmp/cs/mnt2: luks[] exposed[plain:loop2 plain:loop3]",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.layout, func(t *testing.T) {
			l := load(t, c.layout)
			var got []string
			for _, s := range l.Stores {
				got = append(got, summary(s))
			}
			if !slices.Equal(got, c.stores) {
				t.Errorf("stores:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.stores, "\n  "))
			}
			var vols []string
			for _, v := range l.Volumes {
				vols = append(vols, strings.Join([]string{string(v.Type), v.Crypt, v.HeaderPath(), v.UUID}, " "))
			}
			if !slices.Equal(vols, c.volumes) {
				t.Errorf("volumes %q, want %q", vols, c.volumes)
			}
			erasable, encrypted := true, true
			for _, s := range l.Data() {
				erasable = erasable && s.Erasable()
				encrypted = encrypted && s.Encrypted()
			}
			if erasable != c.erasable || encrypted != c.encrypted {
				t.Errorf("erasable %v encrypted %v, want %v %v", erasable, encrypted, c.erasable, c.encrypted)
			}
			for _, s := range l.Stores {
				t.Log(s.Describe())
				if s.Describe() == "" {
					t.Errorf("store %s has no description", s.Where())
				}
			}
		})
	}
}
