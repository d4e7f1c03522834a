package inventory

import (
	"slices"
	"testing"
	"time"
)

func TestCleanSerial(t *testing.T) {
	for in, want := range map[string]string{
		"  C02XK1ZXJGH5 \n":        "C02XK1ZXJGH5",
		"To Be Filled By O.E.M.":   "",
		"Default string":           "",
		"0000000000":               "",
		"System Serial Number":     "",
		"FFFFFFFF":                 "",
		"VMware-56 4d 1a":          "VMware-56 4d 1a",
		"PF2ABCDE\x00":             "PF2ABCDE",
		"":                         "",
		"Not Specified":            "",
		"5CG1234XYZ":               "5CG1234XYZ",
		"00000000-0000-0000-0000-": "00000000-0000-0000-0000-",
	} {
		if got := CleanSerial(in); got != want {
			t.Errorf("CleanSerial(%q) = %q, want %q", in, got, want)
		}
	}
}

const ioreg = `+-o J314sAP  <class IOPlatformExpertDevice, id 0x100000206, registered, matched, active, busy 0 (6 ms), retain 33>
    {
      "IOPolledInterface" = "AppleARMWatchdogTimerHibernateHandler is not serializable"
      "IOPlatformUUID" = "8A1F2C3D-4E5F-6071-8293-A4B5C6D7E8F9"
      "serial-number" = <43303258000000000000000000>
      "manufacturer" = <"Apple Inc.">
      "IOPlatformSerialNumber" = "C02XK1ZXJGH5"
      "model" = <"MacBookPro18,3">
      "compatible" = <"J314sAP","MacBookPro18,3","AppleARM">
    }
`

func TestParseIoreg(t *testing.T) {
	hw := hardwareFromIoreg(ParseIoreg(ioreg))
	want := Hardware{
		SerialNumber: "C02XK1ZXJGH5", SerialSource: "ioreg:IOPlatformSerialNumber",
		HardwareUUID: "8a1f2c3d-4e5f-6071-8293-a4b5c6d7e8f9", Vendor: "Apple Inc.", Model: "MacBookPro18,3",
	}
	if hw != want {
		t.Fatalf("got %+v\nwant %+v", hw, want)
	}
	if hw := hardwareFromIoreg(ParseIoreg("")); hw.SerialNumber != "" || hw.SerialSource != "" {
		t.Fatalf("empty ioreg invented %+v", hw)
	}
}

func TestMacUsers(t *testing.T) {
	uids := ParseDsclList("_mbsetupuser 248\nalice 501\nbob 502\nroot 0\nnobody -2\n")
	names := ParseDsclList("alice Alice Smith\nbob Bob\n")
	homes := ParseDsclList("alice /Users/alice\nbob /Users/bob\n")
	admins := ParseDsclGroupMembership("GroupMembership: root alice\n")
	users := macUsers(uids, names, homes, admins)
	sortInventory(&Inventory{Users: users})
	slices.SortFunc(users, func(a, b User) int {
		if a.Username < b.Username {
			return -1
		}
		return 1
	})
	want := []User{
		{Username: "alice", UID: "501", FullName: "Alice Smith", Home: "/Users/alice", Admin: true},
		{Username: "bob", UID: "502", FullName: "Bob", Home: "/Users/bob"},
	}
	if !slices.Equal(users, want) {
		t.Fatalf("got %+v", users)
	}
}

func TestWindowsHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.22631.4460 Build 22631.4460": "22631.4460",
		"10.0.19045.5011":                  "19045.5011",
		"":                                 "",
	} {
		if got := WindowsBuild(in); got != want {
			t.Errorf("WindowsBuild(%q) = %q", in, got)
		}
	}
	for sid, want := range map[string]bool{
		"S-1-5-21-1-2-3-500":  false,
		"S-1-5-21-1-2-3-503":  false,
		"S-1-5-21-1-2-3-1001": true,
		"garbage":             false,
	} {
		if got := IsHumanWindowsSID(sid); got != want {
			t.Errorf("IsHumanWindowsSID(%q) = %v", sid, got)
		}
	}
}

func TestHashesAndChanged(t *testing.T) {
	base := Inventory{
		Hostname: "h", MemoryBytes: 8 << 30, BootTime: time.Unix(1700000000, 0),
		Disks:         []Disk{{Device: "/dev/sda1", Mountpoint: "/", TotalBytes: 100 << 30, FreeBytes: 50<<30 + 10}},
		UptimeSeconds: 100,
	}
	h1 := base.SectionHashes()
	same := base
	same.UptimeSeconds = 999999                                                                                  // uptime is not hashed
	same.Disks = []Disk{{Device: "/dev/sda1", Mountpoint: "/", TotalBytes: 100 << 30, FreeBytes: 50<<30 + 4096}} // sub-GiB churn
	h2 := same.SectionHashes()
	if Hash(h1) != Hash(h2) {
		t.Fatalf("uptime or sub-GiB churn changed the hash: %v", Changed(h1, h2))
	}
	diff := base
	diff.Hostname = "h2"
	diff.Users = []User{{Username: "alice"}}
	h3 := diff.SectionHashes()
	if got := Changed(h1, h3); !slices.Equal(got, []string{"hostname", "users"}) {
		t.Fatalf("Changed = %v", got)
	}
	if got := Changed(nil, h3); !slices.Equal(got, Sections) {
		t.Fatalf("Changed(nil) = %v", got)
	}
	if len(Hash(h1)) != 64 {
		t.Fatal("hash not hex sha256")
	}
}

func TestCleanUUID(t *testing.T) {
	for in, want := range map[string]string{
		"4C4C4544-0042-3510-8052-B4C04F4E3732\n": "4c4c4544-0042-3510-8052-b4c04f4e3732",
		"00000000-0000-0000-0000-000000000000":   "",
		"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF":   "",
		"03000200-0400-0500-0006-000700080009":   "", // factory default on many boards
		"Not Settable":                           "",
		"":                                       "",
	} {
		if got := CleanUUID(in); got != want {
			t.Errorf("CleanUUID(%q) = %q, want %q", in, got, want)
		}
	}
}
