package actions

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func recorded(t *testing.T, machine, state, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", machine, state, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseLocalUsers(t *testing.T) {
	cases := []struct {
		machine, state string
		all            int
		humans         []string
	}{
		{"standalone", "before", 6, []string{"alice", "bob"}},
		{"standalone", "locked", 6, nil},
		{"domain", "before", 4, nil},
		{"entra", "before", 5, nil}, // defaultuser0 (RID 1000) is disabled
	}
	for _, tc := range cases {
		t.Run(tc.machine+"/"+tc.state, func(t *testing.T) {
			us, err := parseLocalUsers(recorded(t, tc.machine, tc.state, "local-users.json"))
			if err != nil {
				t.Fatal(err)
			}
			var humans []string
			for _, u := range enabledHumans(us) {
				humans = append(humans, u.Name)
			}
			if len(us) != tc.all || !slices.Equal(humans, tc.humans) {
				t.Fatalf("%d users, enabled people %v; want %d, %v", len(us), humans, tc.all, tc.humans)
			}
		})
	}
	one, err := parseLocalUsers(`{"Name":  "alice", "Enabled":  true, "SID":  "S-1-5-21-1-2-3-1001"}`)
	if err != nil || len(one) != 1 || one[0].Name != "alice" {
		t.Fatalf("lone object: %v %v", one, err)
	}
	for _, bad := range []string{"", "Get-LocalUser : Access is denied.", `[{"Name": "x"}]`} {
		if _, err := parseLocalUsers(bad); err == nil {
			t.Errorf("parseLocalUsers(%q) accepted", bad)
		}
	}
}

func TestParseQuser(t *testing.T) {
	cases := []struct {
		machine string
		want    []winSession
	}{
		{"standalone", []winSession{{User: "alice", Name: "console", ID: 1, State: "Active"}, {User: "bob", ID: 2, State: "Disc"}}},
		{"domain", []winSession{{User: "jsmith", Name: "console", ID: 1, State: "Active"}, {User: "m.garcia", Name: "rdp-tcp#0", ID: 3, State: "Active"}}},
		{"entra", []winSession{{User: "janedoe", Name: "console", ID: 1, State: "Active"}, {User: "rajpatel", ID: 2, State: "Disc"}}},
	}
	for _, tc := range cases {
		got, err := parseQuser(recorded(t, tc.machine, "before", "quser.txt"))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %+v %v, want %+v", tc.machine, got, err, tc.want)
		}
	}
	// The current session is marked with '>'; a user name may hold spaces.
	got, err := parseQuser(" USERNAME  SESSIONNAME  ID  STATE  IDLE TIME  LOGON TIME\r\n>ann lee   console  1  Active  none  1/2/2026 8:00 AM\r\n")
	if err != nil || len(got) != 1 || got[0].User != "ann lee" || got[0].ID != 1 {
		t.Fatalf("marked row: %+v %v", got, err)
	}
	if _, err := parseQuser(" USERNAME  SESSIONNAME  ID  STATE\r\n garbage line\r\n"); err == nil {
		t.Fatal("unrecognised row accepted")
	}
}

func TestParseDsregStatus(t *testing.T) {
	cases := []struct {
		machine string
		want    winJoin
		text    string
	}{
		{"standalone", winJoin{}, "not joined to a domain or Entra ID"},
		{"domain", winJoin{Domain: true, DomainName: "CONTOSO"}, "joined to domain CONTOSO"},
		{"entra", winJoin{AzureAD: true, TenantName: "Example Corp"}, "joined to Entra ID tenant Example Corp"},
	}
	for _, tc := range cases {
		got, err := parseDsregStatus(recorded(t, tc.machine, "before", "dsregcmd-status.txt"))
		if err != nil || got != tc.want || got.String() != tc.text {
			t.Errorf("%s: %+v (%q) %v, want %+v", tc.machine, got, got.String(), err, tc.want)
		}
	}
	if _, err := parseDsregStatus("'dsregcmd' is not recognized"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestParsePrivilegeRights(t *testing.T) {
	cases := []struct {
		machine, state string
		interactive    []string
		remote         rightValue
	}{
		{"standalone", "before", []string{"Guest"}, rightValue{}},
		{"standalone", "locked", []string{"Guest", "*S-1-5-11", "*S-1-5-32-546"}, rightValue{Defined: true, Members: []string{"*S-1-5-11", "*S-1-5-32-546"}}},
		{"domain", "before", []string{"Guest"}, rightValue{Defined: true, Members: []string{"*S-1-5-21-2718281828-3141592653-1618033988-1120"}}},
	}
	for _, tc := range cases {
		b, err := os.ReadFile(filepath.Join("testdata", "windows", tc.machine, tc.state, "secedit-export.inf"))
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != 0xFF || b[1] != 0xFE {
			t.Fatalf("%s/%s: recorded export is not UTF-16LE", tc.machine, tc.state)
		}
		r, err := parsePrivilegeRights(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r[RightDenyInteractive].Members, tc.interactive) || r[RightDenyRemoteInteractive].Defined != tc.remote.Defined ||
			!slices.Equal(r[RightDenyRemoteInteractive].Members, tc.remote.Members) {
			t.Errorf("%s/%s: %+v", tc.machine, tc.state, r)
		}
		if !slices.Equal(r["SeNetworkLogonRight"].Members, []string{"*S-1-1-0", "*S-1-5-32-544", "*S-1-5-32-545", "*S-1-5-32-551"}) {
			t.Errorf("%s/%s: SeNetworkLogonRight %v", tc.machine, tc.state, r["SeNetworkLogonRight"])
		}
	}
	// A template the lock writes reads back as written (UTF-16, CRLF).
	tmpl := rightsTemplate(map[string][]string{RightDenyInteractive: {"Guest", "*S-1-5-11"}, RightDenyRemoteInteractive: {}})
	r, err := parsePrivilegeRights([]byte(tmpl))
	if err != nil || !slices.Equal(r[RightDenyInteractive].Members, []string{"Guest", "*S-1-5-11"}) || !r[RightDenyRemoteInteractive].Defined ||
		len(r[RightDenyRemoteInteractive].Members) != 0 {
		t.Fatalf("template round trip: %+v %v", r, err)
	}
	if !strings.Contains(decodeINF([]byte(tmpl)), "[Version]\r\nsignature=\"$CHICAGO$\"\r\n") {
		t.Fatal("template lacks the [Version] signature")
	}
	if _, err := parsePrivilegeRights([]byte("[Unicode]\r\nUnicode=yes\r\n")); err == nil {
		t.Fatal("export without [Privilege Rights] accepted")
	}
}

func TestParseProtectors(t *testing.T) {
	ps, err := parseProtectors(recorded(t, "entra", "before", "manage-bde-protectors.txt"))
	if err != nil || len(ps) != 3 {
		t.Fatalf("%+v %v", ps, err)
	}
	if !ps[0].isTPM() || ps[0].ID != "{5B7E9A13-2C4D-4E6F-8A0B-1C3D5E7F9A2B}" || ps[0].Password != "" {
		t.Fatalf("tpm %+v", ps[0])
	}
	if !ps[1].isRecoveryPassword() || ps[1].ID != "{E1D2C3B4-A596-4877-8899-AABBCCDDEEFF}" ||
		ps[1].Password != "395120-663531-328207-002398-209495-634458-530079-233948" {
		t.Fatalf("recovery password %+v", ps[1])
	}
	if _, err := parseProtectors(recorded(t, "tpm-only", "before", "manage-bde-protectors-recoverypassword.txt")); !errors.Is(err, errNoProtectors) {
		t.Fatalf("no protectors: %v", err)
	}
	if _, err := parseProtectors("ERROR: An attempt to access a required resource was denied.\r\n"); err == nil || errors.Is(err, errNoProtectors) {
		t.Fatalf("access denied read as %v", err)
	}
	if _, err := parseProtectors("Volume C: [Windows]\r\nAll Key Protectors\r\n\r\n    TPM:\r\n      PCR Validation Profile:\r\n"); err == nil {
		t.Fatal("protector without id accepted")
	}
}

func TestParseBdeStatusReagentcRemoteWipe(t *testing.T) {
	for _, tc := range []struct {
		machine, state string
		encrypted, on  bool
	}{
		{"standalone", "before", false, false},
		{"domain", "before", true, true},
		{"domain", "locked", true, true},
	} {
		s, err := parseBdeStatus(recorded(t, tc.machine, tc.state, "manage-bde-status.txt"))
		if err != nil || s.encrypted() != tc.encrypted || s.protectionOn() != tc.on {
			t.Errorf("%s/%s: %+v %v", tc.machine, tc.state, s, err)
		}
	}
	if s, _ := parseBdeStatus("    Conversion Status:    Fully Encrypted\r\n    Protection Status:    Protection Off (1 reboots left)\r\n"); s.protectionOn() || !s.encrypted() {
		t.Fatalf("suspended: %+v", s)
	}
	if _, err := parseBdeStatus("Konvertierungsstatus: Vollständig verschlüsselt"); err == nil {
		t.Fatal("unrecognised status accepted")
	}
	for _, tc := range []struct {
		machine, state string
		want           bool
	}{{"standalone", "before", true}, {"entra", "before", false}, {"entra", "wipe-ready", true}} {
		on, err := parseReagentcInfo(recorded(t, tc.machine, tc.state, "reagentc-info.txt"))
		if err != nil || on != tc.want {
			t.Errorf("reagentc %s/%s: %v %v", tc.machine, tc.state, on, err)
		}
	}
	if _, found, err := parseRemoteWipeInstance(recorded(t, "domain", "before", "remotewipe.json")); !found || err != nil {
		t.Fatalf("domain remote wipe: %v %v", found, err)
	}
	if _, found, err := parseRemoteWipeInstance(recorded(t, "standalone", "before", "remotewipe.json")); found || err != nil {
		t.Fatalf("standalone remote wipe: %v %v", found, err)
	}
}
