// Package accounts reads local Unix accounts from passwd/group files under a
// root prefix, so lock plans can be built (and tested) against a fake root.
//
// Only packages under agent/ may import it.
package accounts

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Account is one passwd entry.
type Account struct {
	Name  string
	UID   int
	GID   int
	Gecos string
	Home  string
	Shell string
}

// Human UID range used by Debian, Fedora, Arch and SUSE (login.defs UID_MIN /
// UID_MAX defaults); 65534 (nobody) is outside it.
const (
	HumanUIDMin = 1000
	HumanUIDMax = 59999
)

// IsHuman reports whether a is an interactive person's account: UID in the
// human range and a login shell.
func (a Account) IsHuman() bool {
	if a.UID < HumanUIDMin || a.UID > HumanUIDMax {
		return false
	}
	base := filepath.Base(a.Shell)
	return a.Shell != "" && base != "nologin" && base != "false"
}

// FullName is the first GECOS field.
func (a Account) FullName() string {
	name, _, _ := strings.Cut(a.Gecos, ",")
	return name
}

// ParsePasswd parses passwd(5) lines; malformed lines are skipped.
func ParsePasswd(r io.Reader) ([]Account, error) {
	var out []Account
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 7 {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || f[0] == "" || strings.HasPrefix(f[0], "+") || strings.HasPrefix(f[0], "-") {
			continue
		}
		out = append(out, Account{Name: f[0], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("accounts: read passwd: %w", err)
	}
	return out, nil
}

// ParseGroupMembers returns group name → member names from group(5) lines.
func ParseGroupMembers(r io.Reader) (map[string][]string, error) {
	out := map[string][]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) != 4 || f[0] == "" {
			continue
		}
		var members []string
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		out[f[0]] = members
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("accounts: read group: %w", err)
	}
	return out, nil
}

// AdminGroups are the groups whose members can become root.
var AdminGroups = []string{"sudo", "wheel", "admin"}

// Local reads root/etc/passwd and root/etc/group. It returns the accounts
// and the set of names that are members of an admin group.
func Local(root string) ([]Account, map[string]bool, error) {
	pf, err := os.Open(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		return nil, nil, fmt.Errorf("accounts: %w", err)
	}
	defer pf.Close()
	accts, err := ParsePasswd(pf)
	if err != nil {
		return nil, nil, err
	}
	admins := map[string]bool{}
	gf, err := os.Open(filepath.Join(root, "etc", "group"))
	if err != nil {
		return accts, admins, nil // no group file: nobody known as admin
	}
	defer gf.Close()
	groups, err := ParseGroupMembers(gf)
	if err != nil {
		return accts, admins, nil
	}
	for _, g := range AdminGroups {
		for _, m := range groups[g] {
			admins[m] = true
		}
	}
	return accts, admins, nil
}

// Humans filters accounts to IsHuman ones.
func Humans(accts []Account) []Account {
	var out []Account
	for _, a := range accts {
		if a.IsHuman() {
			out = append(out, a)
		}
	}
	return out
}
