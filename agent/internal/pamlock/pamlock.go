// Package pamlock edits the text of a system-wide PAM account include
// (/etc/pam.d/common-account, system-auth, password-auth) to hold, or no
// longer hold, the rule with which a locked device refuses every account
// but root and the local system accounts at PAM's account stage.
//
// The rule is a marked block placed before every other account line, so no
// "sufficient" module earlier in the stack can let a user through before
// the rule is evaluated:
//
//	# BEGIN lanyard-lock: ...
//	account requisite pam_succeed_if.so quiet_success uid < 1000
//	account requisite pam_localuser.so
//	# END lanyard-lock
//
// Why these two modules and not pam_access with "+:root:ALL -:ALL:ALL":
// pam_access would also refuse the system accounts that display managers
// run their greeter as (gdm, lightdm, sddm include the same account file),
// leaving a locked laptop on a black screen instead of a login screen that
// refuses everybody, and it would stop the cron jobs of system accounts.
// pam_access has no notion of a UID range. "uid < 1000" refuses every
// person (local UIDs start at 1000, directory providers such as SSSD/AD
// map far above) and pam_localuser refuses any account not listed in
// /etc/passwd whatever its UID, which is the definition of a directory
// account. Root (UID 0, in /etc/passwd) passes both. Unknown users fail
// both ("requisite": any result other than success ends the stack).
//
// Insert and Remove are exact inverses: Remove(Insert(x)) == x byte for
// byte, and Remove leaves every line that is not the agent's untouched.
//
// Only packages under agent/ may import it.
package pamlock

import "strings"

// Marker lines around the agent's rule. The BEGIN text is what unlock and
// re-assert look for; it names the owner so an admin reading the file
// knows where the lines come from.
const (
	Begin = "# BEGIN lanyard-lock: added by the Lanyard agent while this device is locked; a Lanyard unlock removes it"
	End   = "# END lanyard-lock"
)

// Rules are the account lines inside the block, in order.
var Rules = []string{
	"account requisite pam_succeed_if.so quiet_success uid < 1000",
	"account requisite pam_localuser.so",
}

// Modules are the PAM modules the rules load. A line naming a module that
// is not installed makes libpam fail the whole stack, root included, so the
// block is written only when all of them are present.
var Modules = []string{"pam_succeed_if.so", "pam_localuser.so"}

// Block is the text inserted into a file (every line ends in "\n").
func Block() string {
	var b strings.Builder
	b.WriteString(Begin + "\n")
	for _, r := range Rules {
		b.WriteString(r + "\n")
	}
	b.WriteString(End + "\n")
	return b.String()
}

// Status is what a file holds of the agent's rule.
type Status struct {
	// Blocks counts BEGIN markers.
	Blocks int
	// First: the first block comes before every other account line.
	First bool
	// Intact: every block holds exactly Rules, in order, and its END line.
	Intact bool
}

// Holds reports whether the file enforces the lock: one intact block ahead
// of the rest of the account stack.
func (s Status) Holds() bool { return s.Blocks == 1 && s.First && s.Intact }

// Describe says in words what the file holds.
func (s Status) Describe() string {
	switch {
	case s.Blocks == 0:
		return "no lock rule"
	case !s.Intact:
		return "lock rule altered"
	case !s.First:
		return "lock rule present but after other account lines"
	case s.Blocks > 1:
		return "lock rule present more than once"
	}
	return "lock rule first in the account stack"
}

// line is one physical line with its terminator ("\n" or "").
type line struct {
	text string // without the terminator
	raw  string // with it
}

func split(content string) []line {
	var out []line
	for len(content) > 0 {
		i := strings.IndexByte(content, '\n')
		if i < 0 {
			out = append(out, line{text: content, raw: content})
			break
		}
		out = append(out, line{text: content[:i], raw: content[:i+1]})
		content = content[i+1:]
	}
	return out
}

// accountLines marks the physical lines that start an account-type entry
// ("account ..." or "-account ..."), skipping comments and the
// continuation lines of an entry that ends in a backslash.
func accountLines(ls []line) []bool {
	out := make([]bool, len(ls))
	cont := false
	for i, l := range ls {
		t := strings.TrimSpace(l.text)
		if cont {
			cont = strings.HasSuffix(t, `\`)
			continue
		}
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		cont = strings.HasSuffix(t, `\`)
		f := strings.Fields(t)
		out[i] = strings.EqualFold(strings.TrimPrefix(f[0], "-"), "account")
	}
	return out
}

// Inspect reports what content holds of the rule.
func Inspect(content string) Status {
	ls := split(content)
	acct := accountLines(ls)
	s := Status{Intact: true}
	seenOther := false
	for i := 0; i < len(ls); i++ {
		if strings.TrimSpace(ls[i].text) != Begin {
			seenOther = seenOther || acct[i]
			continue
		}
		s.Blocks++
		if s.Blocks == 1 {
			s.First = !seenOther
		}
		j := i + 1
		ok := true
		for _, r := range Rules {
			if j >= len(ls) || strings.TrimSpace(ls[j].text) != r {
				ok = false
				break
			}
			j++
		}
		if ok && (j >= len(ls) || strings.TrimSpace(ls[j].text) != End) {
			ok = false
		}
		if !ok {
			s.Intact = false
			continue
		}
		i = j // the END line; the loop steps past it
	}
	if s.Blocks == 0 {
		s.Intact = false
	}
	return s
}

// Insert returns content with the block placed before the first account
// line and the comments directly above it (at the top when the file has
// no account line); content that already Holds is
// returned unchanged, and a damaged or misplaced block is replaced.
func Insert(content string) string {
	if Inspect(content).Holds() {
		return content
	}
	content = Remove(content)
	ls := split(content)
	acct := accountLines(ls)
	at := 0
	for i := range ls {
		if acct[i] {
			at = i
			break
		}
	}
	// Step above the comment lines right over the first account line: on
	// Debian they open the section pam-auth-update regenerates ("here are
	// the per-package modules"), and lines above it are kept as local
	// configuration when pam-auth-update rewrites the file.
	for at > 0 && strings.HasPrefix(strings.TrimSpace(ls[at-1].text), "#") {
		at--
	}
	var b strings.Builder
	for i, l := range ls {
		if i == at {
			b.WriteString(Block())
		}
		b.WriteString(l.raw)
	}
	if len(ls) == 0 {
		b.WriteString(Block())
	}
	return b.String()
}

// Remove returns content without the agent's lines: each BEGIN marker, the
// rule lines inside its block and its END marker. Any other line, even one
// an admin put between the markers, is kept byte for byte. A block whose
// END went missing ends at its first line that is not a rule.
func Remove(content string) string {
	ls := split(content)
	drop := make([]bool, len(ls))
	for i := 0; i < len(ls); i++ {
		if strings.TrimSpace(ls[i].text) != Begin {
			continue
		}
		drop[i] = true
		end := -1
		for k := i + 1; k < len(ls); k++ {
			t := strings.TrimSpace(ls[k].text)
			if t == Begin {
				break
			}
			if t == End {
				end = k
				break
			}
		}
		k := i + 1
		for ; k < len(ls) && (end >= 0 && k < end || end < 0 && isRule(strings.TrimSpace(ls[k].text))); k++ {
			drop[k] = isRule(strings.TrimSpace(ls[k].text))
		}
		if end >= 0 {
			drop[end] = true
			k = end
		}
		i = k
	}
	var b strings.Builder
	for i, l := range ls {
		if !drop[i] {
			b.WriteString(l.raw)
		}
	}
	return b.String()
}

func isRule(t string) bool {
	for _, r := range Rules {
		if t == r {
			return true
		}
	}
	return false
}
