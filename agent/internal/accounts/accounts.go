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
	"time"
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

// ShadowEntry is the part of a shadow(5) line a lock changes.
type ShadowEntry struct {
	Name     string
	Password string
	// ExpireDays is the account expiration date in days since 1970-01-01
	// (-1 when the field is empty).
	ExpireDays int
}

// PasswordLocked reports a password prefixed with "!" (usermod --lock,
// passwd -l).
func (e ShadowEntry) PasswordLocked() bool { return strings.HasPrefix(e.Password, "!") }

// Expired reports an expiration date in the past (any day before today;
// a lock sets 1, the day after the epoch).
func (e ShadowEntry) Expired() bool {
	return e.ExpireDays >= 0 && int64(e.ExpireDays) < time.Now().Unix()/86400
}

// Describe says what the entry holds, without the hash.
func (e ShadowEntry) Describe() string { return e.State().Describe() }

// State is the entry without its hash: what a lock changes and an unlock
// restores.
func (e ShadowEntry) State() ShadowState {
	return ShadowState{Name: e.Name, Locked: e.PasswordLocked(), Empty: e.Password == "",
		NoPassword: strings.HasPrefix(e.Password, "*"), ExpireDays: e.ExpireDays}
}

// ShadowState is what a lock changes of a shadow entry, never the hash.
type ShadowState struct {
	Name string
	// Locked: the password field starts with "!" (usermod --lock).
	Locked bool
	// Empty: the password field is empty (no password needed, a state an
	// unlock must restore with usermod --password "").
	Empty bool
	// NoPassword: "*": no password can match (key-only or service login).
	NoPassword bool
	// ExpireDays: account expiry in days since 1970-01-01, -1 for none.
	ExpireDays int
}

// Expired reports an expiry before today (a lock sets 1).
func (s ShadowState) Expired() bool {
	return s.ExpireDays >= 0 && int64(s.ExpireDays) < time.Now().Unix()/86400
}

// Describe says in words what the state is ("password locked, expires
// 1970-01-02").
func (s ShadowState) Describe() string {
	pw := "password usable"
	switch {
	case s.Locked:
		pw = "password locked"
	case s.Empty:
		pw = "empty password"
	case s.NoPassword:
		pw = "no password set"
	}
	return pw + ", " + DescribeExpiry(s.ExpireDays)
}

// DescribeExpiry says an expiry field in words.
func DescribeExpiry(days int) string {
	if days < 0 {
		return "no expiry"
	}
	return "expires " + time.Unix(int64(days)*86400, 0).UTC().Format("2006-01-02")
}

// ReadShadowStates is ReadShadow without the hashes.
func ReadShadowStates(root string) (map[string]ShadowState, error) {
	entries, err := ReadShadow(root)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ShadowState, len(entries))
	for n, e := range entries {
		out[n] = e.State()
	}
	return out, nil
}

// ReadShadow parses root/etc/shadow into entries by name.
func ReadShadow(root string) (map[string]ShadowEntry, error) {
	b, err := os.ReadFile(filepath.Join(root, "etc", "shadow"))
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	out := map[string]ShadowEntry{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 8 || f[0] == "" {
			continue
		}
		e := ShadowEntry{Name: f[0], Password: f[1], ExpireDays: -1}
		if n, err := strconv.Atoi(f[7]); err == nil {
			e.ExpireDays = n
		}
		out[f[0]] = e
	}
	return out, nil
}
