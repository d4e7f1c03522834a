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
