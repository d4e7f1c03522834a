package accounts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const passwd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# comment
alice:x:1000:1000:Alice Smith,,,:/home/alice:/bin/bash
bob:x:1001:1001:Bob:/home/bob:/usr/bin/zsh
svc:x:1002:1002::/var/svc:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken:line
`

const group = `root:x:0:
sudo:x:27:alice
wheel:x:10:bob, carol
users:x:100:alice,bob
`

func TestLocalAndHumans(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(passwd), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte(group), 0o644)
	accts, admins, err := Local(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 6 {
		t.Fatalf("parsed %d accounts, want 6", len(accts))
	}
	var names []string
	for _, a := range Humans(accts) {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "alice,bob" {
		t.Fatalf("humans = %s, want alice,bob", got)
	}
	if !admins["alice"] || !admins["bob"] || !admins["carol"] || admins["root"] {
		t.Fatalf("admins = %v", admins)
	}
	if accts[2].FullName() != "Alice Smith" {
		t.Fatalf("FullName = %q", accts[2].FullName())
	}
}

func TestShadowStates(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	shadow := "alice:$y$j9T$hash:20000:0:99999:7:::\n" +
		"bob:!$y$j9T$hash:20000:0:99999:7::1:\n" +
		"carol::20000:0:99999:7::19000:\n" +
		"svc:*:20000:0:99999:7:::\n" +
		"dan:!:20000::::::\n" +
		"short:x\n"
	os.WriteFile(filepath.Join(root, "etc", "shadow"), []byte(shadow), 0o640)
	got, err := ReadShadowStates(root)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		want    ShadowState
		words   string
		expired bool
	}{
		{"alice", ShadowState{Name: "alice", ExpireDays: -1}, "password usable, no expiry", false},
		{"bob", ShadowState{Name: "bob", Locked: true, ExpireDays: 1}, "password locked, expires 1970-01-02", true},
		{"carol", ShadowState{Name: "carol", Empty: true, ExpireDays: 19000}, "empty password, expires 2022-01-08", true},
		{"svc", ShadowState{Name: "svc", NoPassword: true, ExpireDays: -1}, "no password set, no expiry", false},
		{"dan", ShadowState{Name: "dan", Locked: true, ExpireDays: -1}, "password locked, no expiry", false},
	}
	for _, tc := range cases {
		s, ok := got[tc.name]
		if !ok || s != tc.want || s.Describe() != tc.words || s.Expired() != tc.expired {
			t.Errorf("%s: %+v %q expired=%v, want %+v %q %v", tc.name, s, s.Describe(), s.Expired(), tc.want, tc.words, tc.expired)
		}
		if strings.Contains(s.Describe(), "$") {
			t.Errorf("%s: description leaks the hash", tc.name)
		}
	}
	if _, ok := got["short"]; ok || len(got) != 5 {
		t.Fatalf("malformed line parsed: %v", got)
	}
}
