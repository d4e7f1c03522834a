package inventory

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseIoreg: keys and values come from `"key" = "value"` lines only; a
// map written back in that form parses to itself; the hardware derived from
// it carries clean identifiers.
func FuzzParseIoreg(f *testing.F) {
	f.Add("+-o J314sAP  <class IOPlatformExpertDevice>\n    {\n      \"IOPlatformSerialNumber\" = \"C02XL0GZJGH5\"\n      \"IOPlatformUUID\" = \"6A1B2C3D-0000-1111-2222-333344445555\"\n      \"model\" = <\"MacBookPro18,3\">\n      \"manufacturer\" = <\"Apple Inc.\x00\">\n      \"board-id\" = <4a 33 31 34>\n    }\n")
	f.Add("\"k\" = \"\"\n\"\" = \"x\"\n\"a\"b\" = \"c\"")
	f.Add("\"IOPlatformSerialNumber\" = \" \x00 0000 \"")
	f.Fuzz(func(t *testing.T, out string) {
		m := ParseIoreg(out)
		var b strings.Builder
		for k, v := range m {
			if k == "" || strings.ContainsAny(k, "\"\n") {
				t.Fatalf("key %q from %q", k, out)
			}
			if strings.HasPrefix(v, "\x00") || strings.HasSuffix(v, "\x00") || strings.Contains(v, "\n") {
				t.Fatalf("value %q of %q keeps NULs or a newline", v, k)
			}
			fmt.Fprintf(&b, "  \"%s\" = \"%s\"\n", k, v)
		}
		back := ParseIoreg(b.String())
		if len(back) != len(m) {
			t.Fatalf("round trip: %q then %q", m, back)
		}
		for k, v := range m {
			if back[k] != v {
				t.Fatalf("round trip of %q: %q became %q", k, v, back[k])
			}
		}
		hw := hardwareFromIoreg(m)
		for _, id := range []string{hw.SerialNumber, hw.HardwareUUID} {
			if id != strings.TrimSpace(id) || strings.HasPrefix(id, "\x00") || strings.HasSuffix(id, "\x00") {
				t.Fatalf("identifier %q is not clean", id)
			}
		}
		if (hw.SerialNumber != "") != (hw.SerialSource != "") {
			t.Fatalf("serial %q with source %q", hw.SerialNumber, hw.SerialSource)
		}
	})
}

// FuzzCleanIdentifiers: CleanSerial and CleanUUID return trimmed values with
// no NUL at either end, are idempotent, and never return a placeholder.
func FuzzCleanIdentifiers(f *testing.F) {
	// The NUL-padded crashers live in testdata/fuzz/FuzzCleanIdentifiers.
	for _, s := range []string{"C02XL0GZJGH5", "To Be Filled By O.E.M.", "FFFFFFFF", "03000200-0400-0500-0006-000700080009", "ffffffff-ffff-ffff-ffff-ffffffffffff", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, clean := range map[string]func(string) string{"CleanSerial": CleanSerial, "CleanUUID": CleanUUID} {
			c := clean(s)
			if c != strings.TrimSpace(c) || strings.HasPrefix(c, "\x00") || strings.HasSuffix(c, "\x00") {
				t.Fatalf("%s(%q) = %q, not trimmed", name, s, c)
			}
			if again := clean(c); again != c {
				t.Fatalf("%s is not idempotent: %q -> %q -> %q", name, s, c, again)
			}
			if c != "" && (junkSerials[strings.ToLower(c)] || strings.Trim(c, "0 ") == "") {
				t.Fatalf("%s(%q) = placeholder %q", name, s, c)
			}
		}
	})
}

// FuzzDsclAndWindows: the dscl readers and the Windows helpers return only
// what their input says, in canonical form.
func FuzzDsclAndWindows(f *testing.F) {
	f.Add("ada   501\n_spotlight 89\nroot 0\n", "GroupMembership: root ada", "10.0.22631.4460 Build 22631.4460", "S-1-5-21-1-2-3-1001")
	f.Add("a\tb c\n\n", "no members", "10.0.19045", "S-1-5-21-500")
	f.Fuzz(func(t *testing.T, list, group, kernel, sid string) {
		for k, v := range ParseDsclList(list) {
			if k == "" || len(strings.Fields(k)) != 1 || v == "" || v != strings.Join(strings.Fields(v), " ") {
				t.Fatalf("dscl list %q gave %q = %q", list, k, v)
			}
		}
		for n, ok := range ParseDsclGroupMembership(group) {
			if !ok || len(strings.Fields(n)) != 1 || !strings.Contains(group, n) {
				t.Fatalf("dscl group %q gave member %q", group, n)
			}
		}
		if b := WindowsBuild(kernel); b != strings.TrimSpace(b) || b != "" && !strings.Contains(kernel, b) {
			t.Fatalf("WindowsBuild(%q) = %q", kernel, b)
		}
		if IsHumanWindowsSID(sid) {
			rid, err := strconv.Atoi(sid[strings.LastIndexByte(sid, '-')+1:])
			if err != nil || rid < 1000 {
				t.Fatalf("SID %q counted as a person", sid)
			}
		}
	})
}
