package inventory

import (
	"regexp"
	"strconv"
	"strings"
)

var ioregLine = regexp.MustCompile(`^\s*"([^"]+)" = (.*)$`)

// ParseIoreg reads `ioreg -rd1 -c IOPlatformExpertDevice` text output into
// key → string value. Values look like "X", <"X"> or <58 59>; only the
// string forms are kept.
func ParseIoreg(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		g := ioregLine.FindStringSubmatch(l)
		if g == nil {
			continue
		}
		v := strings.TrimSpace(g[2])
		v = strings.TrimPrefix(strings.TrimSuffix(v, ">"), "<")
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			m[g[1]] = strings.Trim(v[1:len(v)-1], "\x00")
		}
	}
	return m
}

// hardwareFromIoreg maps ioreg's IOPlatformExpertDevice properties.
func hardwareFromIoreg(m map[string]string) Hardware {
	hw := Hardware{
		SerialNumber: CleanSerial(m["IOPlatformSerialNumber"]),
		HardwareUUID: CleanUUID(m["IOPlatformUUID"]),
		Vendor:       m["manufacturer"],
		Model:        m["model"],
	}
	if hw.SerialNumber != "" {
		hw.SerialSource = "ioreg:IOPlatformSerialNumber"
	}
	return hw
}

// ParseDsclList reads `dscl . -list /Users <attr>`: "name   value..." lines.
func ParseDsclList(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		m[f[0]] = strings.Join(f[1:], " ")
	}
	return m
}

// ParseDsclGroupMembership reads `dscl . -read /Groups/admin GroupMembership`.
func ParseDsclGroupMembership(out string) map[string]bool {
	m := map[string]bool{}
	_, rest, ok := strings.Cut(out, "GroupMembership:")
	if !ok {
		return m
	}
	for _, n := range strings.Fields(rest) {
		m[n] = true
	}
	return m
}

// macUsers builds local human users (UID ≥ 501, not "_" service accounts).
func macUsers(uids, names, homes map[string]string, admins map[string]bool) []User {
	var out []User
	for name, uidStr := range uids {
		uid, err := strconv.Atoi(uidStr)
		if err != nil || uid < 501 || strings.HasPrefix(name, "_") {
			continue
		}
		out = append(out, User{Username: name, UID: uidStr, FullName: names[name], Home: homes[name], Admin: admins[name]})
	}
	return out
}

// WindowsBuild extracts "22631.4460" from gopsutil's Windows KernelVersion
// ("10.0.22631.4460 Build 22631.4460").
func WindowsBuild(kernel string) string {
	if _, b, ok := strings.Cut(kernel, "Build "); ok {
		return strings.TrimSpace(b)
	}
	// Only digits count: other text split at its dots is no build (".. ." gave " .").
	f := strings.Split(kernel, ".")
	if len(f) >= 4 && digits(f[2]) && digits(f[3]) {
		return f[2] + "." + f[3]
	}
	return ""
}

func digits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// IsHumanWindowsSID reports whether a local account SID is a person's:
// relative id ≥ 1000 (500 Administrator, 501 Guest, 503 DefaultAccount,
// 504 WDAGUtilityAccount are built-in).
func IsHumanWindowsSID(sid string) bool {
	i := strings.LastIndexByte(sid, '-')
	if i < 0 {
		return false
	}
	rid, err := strconv.Atoi(sid[i+1:])
	return err == nil && rid >= 1000
}
