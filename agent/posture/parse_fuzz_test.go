package posture

import (
	"strings"
	"testing"
)

// validState: the parsers only ever report the three states.
func validState(t *testing.T, what string, s State) {
	t.Helper()
	if s != On && s != Off && s != Unknown {
		t.Fatalf("%s: state %q", what, s)
	}
}

// FuzzCommandOutputs feeds one tool output to every text parser of the
// posture checks. The rule they share: output that does not say Off is never
// reported Off (Unknown instead), and no parser reports a state outside
// On/Off/Unknown.
func FuzzCommandOutputs(f *testing.F) {
	for _, s := range []string{
		"FileVault is On.\n", "FileVault is Off.", "FileVault is Off?\nDeferred enablement appears to be active",
		"Firewall is enabled. (State = 1)", "Firewall is disabled. (State = 0)", "Firewall is enabled. (State = 0)",
		"1\n", " NO ", "Status: active\n\nTo Action From", "Status: inactive", "running", "not running",
		"table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}",
		"APT::Periodic::Unattended-Upgrade \"1\";", "APT::Periodic::Unattended-Upgrade \"0\";", "",
	} {
		f.Add(s, true, false)
	}
	f.Fuzz(func(t *testing.T, out string, installed, packagekit bool) {
		s := strings.TrimSpace(out)
		r := parseFdesetup(out)
		validState(t, "fdesetup", r.state)
		if (r.state == On) != strings.HasPrefix(s, "FileVault is On") || (r.state == Off) != strings.HasPrefix(s, "FileVault is Off") {
			t.Fatalf("fdesetup %q read as %v", out, r)
		}
		if strings.Contains(r.detail, "\n") {
			t.Fatalf("fdesetup detail %q spans lines", r.detail)
		}
		r = parseSocketfilterfw(out)
		validState(t, "socketfilterfw", r.state)
		if r.state == Off && !strings.Contains(s, "State = 0") && !strings.Contains(s, "Firewall is disabled") {
			t.Fatalf("socketfilterfw %q read as off", out)
		}
		r = parseDefaultsBool(out, "key")
		validState(t, "defaults", r.state)
		if v := strings.ToLower(s); r.state == Off && v != "0" && v != "false" && v != "no" {
			t.Fatalf("defaults %q read as off", out)
		}
		if st, ok := parseUfw(out); !ok && st != Unknown || ok && st == Unknown {
			t.Fatalf("ufw %q: %v %v", out, st, ok)
		} else if st == Off && !strings.HasPrefix(s, "Status: inactive") {
			t.Fatalf("ufw %q read as off", out)
		}
		if st, ok := parseFirewallCmd(out); !ok && st != Unknown || st == Off && s != "not running" {
			t.Fatalf("firewall-cmd %q: %v %v", out, st, ok)
		}
		if nftHasRules(out) && strings.TrimSpace(strings.ReplaceAll(out, "}", "")) == "" {
			t.Fatalf("nft %q has rules", out)
		}
		r = parseAptConfig(out, installed, packagekit)
		validState(t, "apt-config", r.state)
		if r.state == On && (!installed || !strings.Contains(out, "APT::Periodic::Unattended-Upgrade")) {
			t.Fatalf("apt-config %q (installed %v) read as on", out, installed)
		}
		if r.state == Off && installed && !strings.Contains(out, `APT::Periodic::Unattended-Upgrade "`) {
			t.Fatalf("apt-config %q with unattended-upgrades installed read as off", out)
		}
		// linuxFirewall: On as soon as one tool says so, Off only when none does.
		lf := linuxFirewall(&toolAnswer{out: out}, &toolAnswer{out: out}, &toolAnswer{out: out})
		validState(t, "linux firewall", lf.state)
		ufw, _ := parseUfw(out)
		fwd, _ := parseFirewallCmd(out)
		if anyOn := ufw == On || fwd == On || nftHasRules(out); anyOn != (lf.state == On) {
			t.Fatalf("linux firewall %q read as %v (ufw %v, firewalld %v, nft rules %v)", out, lf, ufw, fwd, nftHasRules(out))
		}
	})
}

// FuzzRootDevice: what RootDevice returns comes from one mountinfo line whose
// mount point is "/", and every value is a single non-empty field.
func FuzzRootDevice(f *testing.F) {
	f.Add("22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n25 22 0:23 / /proc rw - proc proc rw\n")
	f.Add("30 1 0:31 / / rw - overlay overlay rw,lowerdir=/a\n")
	f.Add("1 2 3 4 /\n - x\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, mountinfo string) {
		majmin, source, fstype, err := RootDevice(mountinfo)
		if err != nil {
			if majmin != "" || source != "" || fstype != "" {
				t.Fatalf("error %v with values %q %q %q", err, majmin, source, fstype)
			}
			return
		}
		for _, v := range []string{majmin, source, fstype} {
			if v == "" || len(strings.Fields(v)) != 1 || strings.Contains(v, "\n") {
				t.Fatalf("RootDevice(%q) = %q %q %q", mountinfo, majmin, source, fstype)
			}
		}
		found := false
		for _, l := range strings.Split(mountinfo, "\n") {
			pre, post, ok := strings.Cut(l, " - ")
			f, g := strings.Fields(pre), strings.Fields(post)
			if ok && len(f) >= 5 && len(g) >= 2 && f[4] == "/" && f[2] == majmin && g[0] == fstype && g[1] == source {
				found = true
			}
		}
		if !found {
			t.Fatalf("RootDevice(%q) = %q %q %q, from no root line", mountinfo, majmin, source, fstype)
		}
	})
}
