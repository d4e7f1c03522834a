package posture

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParsers feeds any tool output to every parser of this package. Whatever a tool
// prints, a parser answers one of the three states, and the detail that reaches the
// report is valid UTF-8, bounded and free of control characters (protobuf refuses
// the first, the server the last; either would lose the whole posture report).
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		"FileVault is On.", "FileVault is Off.\nmore", "Firewall is enabled. (State = 1)",
		"Firewall is disabled. (State = 0)", "Status: active\n", "running", "not running",
		"table inet filter {\n chain input {\n type filter hook input priority 0; policy drop;\n tcp dport 22 accept\n }\n}",
		"29 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw", "1", "no", "\xff\xfe\x1b[2J", "State = 9 \u202e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		results := map[string]result{
			"fdesetup":       parseFdesetup(out),
			"socketfilterfw": parseSocketfilterfw(out),
			"defaults":       parseDefaultsBool(out, "askForPassword"),
		}
		for name, r := range results {
			details := map[string]string{}
			st := record(details, name, r)
			if st != On && st != Off && st != Unknown {
				t.Fatalf("%s: state %q", name, st)
			}
			d := details[name]
			if !utf8.ValidString(d) || len(d) > maxDetail+utf8.UTFMax || strings.IndexFunc(d, unicode.IsControl) >= 0 {
				t.Fatalf("%s: detail %q is not sendable", name, d)
			}
		}
		for name, parse := range map[string]func(string) (State, bool){"ufw": parseUfw, "firewall-cmd": parseFirewallCmd} {
			if st, ok := parse(out); ok != (st != Unknown) {
				t.Fatalf("%s: state %q with ok=%v", name, st, ok)
			}
		}
		_ = nftHasRules(out)
		if majmin, _, _, err := RootDevice(out); err == nil && majmin == "" {
			t.Fatal("RootDevice: no error and no device")
		}
	})
}
