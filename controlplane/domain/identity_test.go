package domain

import "testing"

// The cases of agent/inventory's TestCleanSerial, upper-cased: the server and the agent
// must call the same values junk.
func TestCleanSerial(t *testing.T) {
	for in, want := range map[string]string{
		"  C02XK1ZXJGH5 \n":        "C02XK1ZXJGH5",
		"To Be Filled By O.E.M.":   "",
		"To be filled by O.E.M.":   "",
		"Default string":           "",
		"0000000000":               "",
		"0":                        "",
		"None":                     "",
		"System Serial Number":     "",
		"FFFFFFFF":                 "",
		"VMware-56 4d 1a":          "VMWARE-56 4D 1A",
		"PF2ABCDE\x00":             "PF2ABCDE",
		"":                         "",
		"Not Specified":            "",
		"5cg1234xyz":               "5CG1234XYZ",
		"00000000-0000-0000-0000-": "00000000-0000-0000-0000-",
		"bad\x01serial":            "",
	} {
		if got := CleanSerial(in); got != want {
			t.Errorf("CleanSerial(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIdentifyDevice(t *testing.T) {
	for _, c := range []struct {
		name, serial, uuid, key, source string
	}{
		{"serial wins", "PF2ABCDE", "4c4c4544-0042-3510-8056-b7c04f4e3332", "PF2ABCDE", IdentitySerial},
		{"junk serial: uuid, upper case", "To be filled by O.E.M.", "4c4c4544-0042-3510-8056-b7c04f4e3332",
			"4C4C4544-0042-3510-8056-B7C04F4E3332", IdentityHardwareUUID},
		{"empty serial: uuid", "", " 8A1F2C3D-4E5F-6071-8293-A4B5C6D7E8F9 ", "8A1F2C3D-4E5F-6071-8293-A4B5C6D7E8F9", IdentityHardwareUUID},
		{"all-zero uuid is no identity", "", "00000000-0000-0000-0000-000000000000", "", ""},
		{"all-F uuid is no identity", "Default string", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "", ""},
		{"shared placeholder uuid is no identity", "", "03000200-0400-0500-0006-000700080009", "", ""},
		{"nothing", "", "", "", ""},
	} {
		key, src := IdentifyDevice(c.serial, c.uuid)
		if key != c.key || src != c.source {
			t.Errorf("%s: IdentifyDevice(%q, %q) = %q, %q; want %q, %q", c.name, c.serial, c.uuid, key, src, c.key, c.source)
		}
	}
}
