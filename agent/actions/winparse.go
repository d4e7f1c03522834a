package actions

// Parsers for the output of the Windows tools the lock, unlock and wipe
// plans consult. They are pure (tested on every OS with recorded outputs in
// testdata/windows) and fail closed: output they do not recognise is an
// error, never an empty answer that a check could mistake for "nothing
// left to do".

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
)

// winLocalUser is one local account as Get-LocalUser reports it.
type winLocalUser struct {
	Name    string `json:"Name"`
	Enabled bool   `json:"Enabled"`
	SID     string `json:"SID"`
}

// parseLocalUsers reads `ConvertTo-Json -InputObject @(Get-LocalUser |
// Select-Object Name,Enabled,@{n='SID';e={$_.SID.Value}})`. PowerShell 5.1
// prints a lone object instead of a one-element array when @() is lost, so
// both are accepted.
func parseLocalUsers(out string) ([]winLocalUser, error) {
	out = strings.TrimSpace(strings.TrimPrefix(out, "\ufeff"))
	if out == "" {
		return nil, errors.New("Get-LocalUser printed nothing")
	}
	var users []winLocalUser
	if strings.HasPrefix(out, "{") {
		var u winLocalUser
		if err := json.Unmarshal([]byte(out), &u); err != nil {
			return nil, fmt.Errorf("Get-LocalUser output: %w", err)
		}
		users = []winLocalUser{u}
	} else if err := json.Unmarshal([]byte(out), &users); err != nil {
		return nil, fmt.Errorf("Get-LocalUser output: %w", err)
	}
	for _, u := range users {
		if u.Name == "" || !strings.HasPrefix(u.SID, "S-1-") {
			return nil, fmt.Errorf("Get-LocalUser output: account without name or SID: %+v", u)
		}
	}
	return users, nil
}

// winSession is one user session as quser (query user) lists it.
type winSession struct {
	User  string // as quser prints it (no domain, at most 20 characters)
	Name  string // console, rdp-tcp#3, or "" for a disconnected session
	ID    uint32
	State string // Active, Disc, ...
}

func (s winSession) String() string {
	name := s.Name
	if name == "" {
		name = "no window station"
	}
	return fmt.Sprintf("%s (session %d, %s, %s)", s.User, s.ID, name, s.State)
}

// quser states (WINSTATIONSTATECLASS short names).
var quserStates = []string{"Active", "Conn", "ConnQ", "Shadow", "Disc", "Idle", "Listen", "Reset", "Down", "Init"}

// parseQuser reads `quser` output:
//
//	 USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME
//	>alice                 console             1  Active      none   11/24/2026 8:02 AM
//	 bob                                       2  Disc           5   11/24/2026 9:10 AM
//
// The header is localized, so it is skipped by position; a row is the user
// name, an optional session name, the numeric id and a state.
func parseQuser(out string) ([]winSession, error) {
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	var rows []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			rows = append(rows, l)
		}
	}
	if len(rows) == 0 {
		return nil, errors.New("quser printed nothing")
	}
	var out2 []winSession
	for _, l := range rows[1:] {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), ">"))
		s, ok := quserRow(f)
		if !ok {
			return nil, fmt.Errorf("quser: unrecognised line %q", strings.TrimSpace(l))
		}
		out2 = append(out2, s)
	}
	return out2, nil
}

// quserRow finds "<id> <state>" in the fields of one row; what comes before
// is the user name (which may hold spaces) and possibly a session name.
func quserRow(f []string) (winSession, bool) {
	for i := 1; i+1 < len(f); i++ {
		id, err := strconv.ParseUint(f[i], 10, 32)
		if err != nil || !slices.Contains(quserStates, f[i+1]) {
			continue
		}
		s := winSession{ID: uint32(id), State: f[i+1]}
		before := f[:i]
		if len(before) >= 2 && isSessionName(before[len(before)-1]) {
			s.Name = before[len(before)-1]
			before = before[:len(before)-1]
		}
		s.User = strings.Join(before, " ")
		return s, s.User != ""
	}
	return winSession{}, false
}

func isSessionName(s string) bool {
	l := strings.ToLower(s)
	return l == "console" || l == "services" || strings.HasPrefix(l, "rdp-") || strings.HasPrefix(l, "ica-")
}

// winJoin is the directory join state from `dsregcmd /status`.
type winJoin struct {
	AzureAD    bool
	Domain     bool
	Enterprise bool
	DomainName string
	TenantName string
}

func (j winJoin) String() string {
	var parts []string
	if j.Domain {
		parts = append(parts, "joined to domain "+orDash(j.DomainName))
	}
	if j.AzureAD {
		parts = append(parts, "joined to Entra ID tenant "+orDash(j.TenantName))
	}
	if j.Enterprise {
		parts = append(parts, "joined to an enterprise (AD FS) directory")
	}
	if len(parts) == 0 {
		return "not joined to a domain or Entra ID"
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseDsregStatus reads the "Key : Value" lines of `dsregcmd /status`.
func parseDsregStatus(out string) (winJoin, error) {
	kv := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, " : ")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := kv[k]; !dup {
			kv[k] = strings.TrimSpace(v)
		}
	}
	yes := func(k string) (bool, bool) {
		v, ok := kv[k]
		return strings.EqualFold(v, "YES"), ok
	}
	var j winJoin
	var okA, okD bool
	j.AzureAD, okA = yes("AzureAdJoined")
	j.Domain, okD = yes("DomainJoined")
	j.Enterprise, _ = yes("EnterpriseJoined")
	if !okA || !okD {
		return winJoin{}, errors.New("dsregcmd /status: no AzureAdJoined/DomainJoined lines")
	}
	j.DomainName, j.TenantName = kv["DomainName"], kv["TenantName"]
	return j, nil
}

// Logon rights the lock denies.
const (
	RightDenyInteractive       = "SeDenyInteractiveLogonRight"
	RightDenyRemoteInteractive = "SeDenyRemoteInteractiveLogonRight"
)

// lockRights are the two rights, in the order they are written and checked.
var lockRights = []string{RightDenyInteractive, RightDenyRemoteInteractive}

// rightValue is one entry of the [Privilege Rights] section: principals as
// secedit writes them ("*S-1-5-11" for a SID, "Guest" for a name it
// resolved). Defined is false when the right is absent (not defined).
type rightValue struct {
	Defined bool     `json:"defined"`
	Members []string `json:"members"`
}

// decodeINF turns a secedit INF into text: secedit writes UTF-16LE with a
// byte-order mark ([Unicode] Unicode=yes); a template written by hand may
// be UTF-8.
func decodeINF(b []byte) string {
	if len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE {
		b = b[2:]
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u))
	}
	return string(bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF")))
}

// encodeINF writes text as secedit does: UTF-16LE with a byte-order mark
// and CRLF line ends.
func encodeINF(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2+2*len(u))
	b[0], b[1] = 0xFF, 0xFE
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2+2*i:], c)
	}
	return string(b)
}

// parsePrivilegeRights reads the [Privilege Rights] section of a `secedit
// /export /areas USER_RIGHTS` file.
func parsePrivilegeRights(inf []byte) (map[string]rightValue, error) {
	text := decodeINF(inf)
	rights := map[string]rightValue{}
	section, seen := "", false
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, ";") {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = strings.ToLower(l)
			seen = seen || section == "[privilege rights]"
			continue
		}
		if section != "[privilege rights]" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("secedit export: unrecognised line %q", l)
		}
		rights[strings.TrimSpace(k)] = rightValue{Defined: true, Members: splitMembers(v)}
	}
	if !seen {
		return nil, errors.New("secedit export has no [Privilege Rights] section")
	}
	return rights, nil
}

func splitMembers(v string) []string {
	var out []string
	for _, m := range strings.Split(v, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// principalKey compares principals as secedit spells them: "*S-1-5-11" and
// "S-1-5-11" are the same SID; names compare case-insensitively.
func principalKey(m string) string {
	return strings.ToUpper(strings.TrimPrefix(strings.TrimSpace(m), "*"))
}

func hasPrincipal(members []string, sid string) bool {
	return slices.ContainsFunc(members, func(m string) bool { return principalKey(m) == principalKey(sid) })
}

// samePrincipals: the same set of principals, whatever the order.
func samePrincipals(a, b []string) bool {
	key := func(ms []string) []string {
		var k []string
		for _, m := range ms {
			k = append(k, principalKey(m))
		}
		slices.Sort(k)
		return slices.Compact(k)
	}
	return slices.Equal(key(a), key(b))
}

// wellKnownPrincipals names the SIDs an admin meets in these rights.
var wellKnownPrincipals = map[string]string{
	"S-1-1-0":      "Everyone",
	"S-1-5-4":      "INTERACTIVE",
	"S-1-5-6":      "SERVICE",
	"S-1-5-7":      "ANONYMOUS LOGON",
	"S-1-5-11":     "Authenticated Users",
	"S-1-5-18":     "SYSTEM",
	"S-1-5-113":    "Local account",
	"S-1-5-114":    "Local account and member of Administrators group",
	"S-1-5-32-544": "Administrators",
	"S-1-5-32-545": "Users",
	"S-1-5-32-546": "Guests",
	"S-1-5-32-551": "Backup Operators",
	"S-1-5-32-555": "Remote Desktop Users",
}

// describePrincipals renders members for an admin: "Guest, Authenticated
// Users (S-1-5-11)"; an empty list is "nobody".
func describePrincipals(members []string) string {
	if len(members) == 0 {
		return "nobody"
	}
	var out []string
	for _, m := range members {
		k := principalKey(m)
		if n, ok := wellKnownPrincipals[k]; ok {
			out = append(out, n+" ("+k+")")
		} else {
			out = append(out, strings.TrimPrefix(m, "*"))
		}
	}
	return strings.Join(out, ", ")
}

// rightsTemplate is the INF secedit /configure applies: only the rights
// listed are changed. An empty value clears a right (the "not defined"
// state of a right the lock added to is restored as "nobody", which grants
// and denies the same).
func rightsTemplate(values map[string][]string) string {
	var b strings.Builder
	b.WriteString("[Unicode]\nUnicode=yes\n[Version]\nsignature=\"$CHICAGO$\"\nRevision=1\n[Privilege Rights]\n")
	for _, r := range lockRights {
		ms, ok := values[r]
		if !ok {
			continue
		}
		b.WriteString(r + " = " + strings.Join(ms, ",") + "\n")
	}
	return encodeINF(b.String())
}

// bdeProtector is one key protector from `manage-bde -protectors -get`.
type bdeProtector struct {
	Type     string // "TPM", "Numerical Password", "TPM And PIN", ...
	ID       string // "{GUID}" as printed
	Password string // Numerical Password only; never logged or reported
}

// isTPM: the protector types `manage-bde -forcerecovery` deletes.
func (p bdeProtector) isTPM() bool { return strings.HasPrefix(strings.ToUpper(p.Type), "TPM") }

func (p bdeProtector) isRecoveryPassword() bool {
	return strings.EqualFold(p.Type, "Numerical Password")
}

// errNoProtectors: manage-bde found no protector (of the asked type).
var errNoProtectors = errors.New("no key protectors found")

// parseProtectors reads `manage-bde -protectors -get C: [-Type ...]`:
//
//	Volume C: [OSDisk]
//	All Key Protectors
//
//	    TPM:
//	      ID: {8A5D13D6-7ED9-46C8-A74F-AC3ADF016EC8}
//	      PCR Validation Profile:
//	        7, 11
//
//	    Numerical Password:
//	      ID: {DFA26333-....}
//	      Password:
//	        393943-...
func parseProtectors(out string) ([]bdeProtector, error) {
	if strings.Contains(out, "No key protectors found") {
		return nil, errNoProtectors
	}
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	var ps []bdeProtector
	volume := false
	for i := 0; i < len(lines); i++ {
		raw := strings.TrimRight(lines[i], " \t")
		l := strings.TrimSpace(raw)
		if strings.HasPrefix(l, "Volume ") {
			volume = true
			continue
		}
		if strings.HasPrefix(l, "ERROR:") {
			return nil, errors.New("manage-bde: " + l)
		}
		if !volume || l == "" {
			continue
		}
		indent := len(raw) - len(strings.TrimLeft(raw, " \t"))
		switch {
		case indent <= 4 && strings.HasSuffix(l, ":"):
			ps = append(ps, bdeProtector{Type: strings.TrimSuffix(l, ":")})
		case len(ps) > 0 && strings.HasPrefix(l, "ID:"):
			ps[len(ps)-1].ID = strings.TrimSpace(strings.TrimPrefix(l, "ID:"))
		case len(ps) > 0 && l == "Password:" && i+1 < len(lines):
			i++
			ps[len(ps)-1].Password = strings.TrimSpace(lines[i])
		}
	}
	if !volume {
		return nil, errors.New("manage-bde -protectors: no volume in output")
	}
	for _, p := range ps {
		if p.ID == "" {
			return nil, fmt.Errorf("manage-bde -protectors: protector %q without ID", p.Type)
		}
	}
	if len(ps) == 0 {
		return nil, errNoProtectors
	}
	return ps, nil
}

// normProtectorID compares protector ids: braces and case ignored.
func normProtectorID(id string) string {
	return strings.ToUpper(strings.Trim(strings.TrimSpace(id), "{}"))
}

// bdeStatus is the OS volume's `manage-bde -status C:`.
type bdeStatus struct {
	Conversion string // "Fully Encrypted", "Fully Decrypted", "Encryption in Progress", ...
	Protection string // "Protection On", "Protection Off", "Protection Off (1 reboots left)"
}

// encrypted: any state but fully decrypted holds data under BitLocker.
func (s bdeStatus) encrypted() bool { return !strings.EqualFold(s.Conversion, "Fully Decrypted") }

func (s bdeStatus) protectionOn() bool { return strings.EqualFold(s.Protection, "Protection On") }

// parseBdeStatus reads `manage-bde -status C:`.
func parseBdeStatus(out string) (bdeStatus, error) {
	var s bdeStatus
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Conversion Status":
			s.Conversion = strings.TrimSpace(v)
		case "Protection Status":
			s.Protection = strings.TrimSpace(v)
		}
	}
	if s.Conversion == "" || s.Protection == "" {
		return bdeStatus{}, errors.New("manage-bde -status: no Conversion/Protection Status (output not recognised)")
	}
	return s, nil
}

// parseReagentcInfo reads "Windows RE status: Enabled|Disabled" from
// `reagentc /info`.
func parseReagentcInfo(out string) (enabled bool, err error) {
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && strings.TrimSpace(k) == "Windows RE status" {
			switch strings.TrimSpace(v) {
			case "Enabled":
				return true, nil
			case "Disabled":
				return false, nil
			}
		}
	}
	return false, errors.New("reagentc /info: no Windows RE status line")
}

// remoteWipeInstance is the MDM_RemoteWipe CIM instance the wipe calls.
type remoteWipeInstance struct {
	ParentID   string `json:"ParentID"`
	InstanceID string `json:"InstanceID"`
}

// parseRemoteWipeInstance reads `Get-CimInstance ... MDM_RemoteWipe |
// Select-Object ParentID,InstanceID | ConvertTo-Json`; empty output means
// the bridge has no instance.
func parseRemoteWipeInstance(out string) (remoteWipeInstance, bool, error) {
	out = strings.TrimSpace(out)
	if out == "" {
		return remoteWipeInstance{}, false, nil
	}
	var inst remoteWipeInstance
	if strings.HasPrefix(out, "[") {
		var all []remoteWipeInstance
		if err := json.Unmarshal([]byte(out), &all); err != nil {
			return inst, false, fmt.Errorf("MDM_RemoteWipe output: %w", err)
		}
		if len(all) == 0 {
			return inst, false, nil
		}
		inst = all[0]
	} else if err := json.Unmarshal([]byte(out), &inst); err != nil {
		return inst, false, fmt.Errorf("MDM_RemoteWipe output: %w", err)
	}
	return inst, inst.InstanceID == "RemoteWipe", nil
}
