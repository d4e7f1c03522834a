package inventory

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParsers feeds any command output to the macOS and Windows parsers. A serial that
// comes out is one the server accepts (valid UTF-8, no control character), else it is
// unknown; every parsed key and value is taken from the input, never invented.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		"+-o Root  <class IORegistryEntry>\n  \"IOPlatformSerialNumber\" = \"C02XG0FDH7JY\"\n  \"IOPlatformUUID\" = \"564D1A2B-0000-1111-2222-333344445555\"\n  \"model\" = <\"MacBookPro18,3\">",
		"  \"IOPlatformSerialNumber\" = \"\x1b[2J\"", "  \"IOPlatformSerialNumber\" = \"\xff\xfe\"", "  \"IOPlatformSerialNumber\" = \"0000000\"",
		"root 0\nalice 501\n_spotlight 89", "GroupMembership: root alice", "10.0.22631.4460 Build 22631.4460", "S-1-5-21-1-2-3-1001",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		m := ParseIoreg(out)
		for k, v := range m {
			if !strings.Contains(out, k) || !strings.Contains(out, v) {
				t.Fatalf("ioreg %q = %q is not in the output", k, v)
			}
		}
		hw := hardwareFromIoreg(m)
		for _, s := range []string{hw.SerialNumber, hw.HardwareUUID} {
			if s != "" && (!utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 || s != strings.TrimSpace(s)) {
				t.Fatalf("serial %q would be refused", s)
			}
		}
		if (hw.SerialNumber == "") != (hw.SerialSource == "") {
			t.Fatalf("serial %q with source %q", hw.SerialNumber, hw.SerialSource)
		}
		if s := CleanSerial(out); s != "" && CleanSerial(s) != s {
			t.Fatalf("CleanSerial is not idempotent: %q -> %q", s, CleanSerial(s))
		}
		for name, value := range ParseDsclList(out) {
			if name == "" || value == "" || strings.ContainsAny(name, " \t\n") {
				t.Fatalf("dscl %q = %q", name, value)
			}
		}
		for name := range ParseDsclGroupMembership(out) {
			if name == "" || strings.ContainsAny(name, " \t\n") {
				t.Fatalf("group member %q", name)
			}
		}
		if b := WindowsBuild(out); b != "" && !strings.Contains(out, b) {
			t.Fatalf("build %q is not in %q", b, out)
		}
		_ = IsHumanWindowsSID(out)
	})
}
