package posture

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
)

// --- macOS -------------------------------------------------------------

// parseFdesetup reads `fdesetup status`.
func parseFdesetup(out string) result {
	s := strings.TrimSpace(out)
	line, _, _ := strings.Cut(s, "\n")
	switch {
	case strings.HasPrefix(s, "FileVault is On"):
		return result{On, line}
	case strings.HasPrefix(s, "FileVault is Off"):
		return result{Off, line}
	}
	return unknown("fdesetup: unrecognized output")
}

var sfwState = regexp.MustCompile(`State = (\d)`)

// parseSocketfilterfw reads `socketfilterfw --getglobalstate`
// ("Firewall is enabled. (State = 1)"; 2 = block all).
func parseSocketfilterfw(out string) result {
	s := strings.TrimSpace(out)
	if m := sfwState.FindStringSubmatch(s); m != nil {
		if m[1] == "0" {
			return result{Off, s}
		}
		return result{On, s}
	}
	switch {
	case strings.Contains(s, "Firewall is enabled"):
		return result{On, s}
	case strings.Contains(s, "Firewall is disabled"):
		return result{Off, s}
	}
	return unknown("socketfilterfw: unrecognized output")
}

// parseDefaultsBool reads `defaults read <domain> <key>` for a boolean key.
func parseDefaultsBool(out, what string) result {
	switch strings.ToLower(strings.TrimSpace(out)) {
	case "1", "true", "yes":
		return result{On, what + " = 1"}
	case "0", "false", "no":
		return result{Off, what + " = 0"}
	}
	return unknown(what + ": not set")
}

// --- Windows -----------------------------------------------------------

// bitLockerState maps Win32_EncryptableVolume.ProtectionStatus:
// 0 = off (also suspended or partially encrypted), 1 = on, 2 = unknown.
func bitLockerState(status uint32) result {
	switch status {
	case 1:
		return result{On, "BitLocker protection on"}
	case 0:
		return result{Off, "BitLocker protection off or suspended"}
	}
	return unknown(fmt.Sprintf("BitLocker ProtectionStatus %d", status))
}

// firewallProfiles combines MSFT_NetFirewallProfile.Enabled of all profiles:
// On only when every profile is enabled.
func firewallProfiles(enabled map[string]bool) result {
	if len(enabled) == 0 {
		return unknown("no firewall profiles reported")
	}
	var off []string
	for name, on := range enabled {
		if !on {
			off = append(off, name)
		}
	}
	if len(off) > 0 {
		return result{Off, "disabled profiles: " + strings.Join(sortedCopy(off), ",")}
	}
	return result{On, "all firewall profiles enabled"}
}

// --- Linux -------------------------------------------------------------

// parseUfw reads `ufw status`.
func parseUfw(out string) (State, bool) {
	s := strings.TrimSpace(out)
	switch {
	case strings.HasPrefix(s, "Status: active"):
		return On, true
	case strings.HasPrefix(s, "Status: inactive"):
		return Off, true
	}
	return Unknown, false
}

// parseFirewallCmd reads `firewall-cmd --state`.
func parseFirewallCmd(out string) (State, bool) {
	switch strings.TrimSpace(out) {
	case "running":
		return On, true
	case "not running":
		return Off, true
	}
	return Unknown, false
}

// nftHasRules reports whether `nft list ruleset` output contains any rule
// (a chain body with something other than its own header).
func nftHasRules(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		// Closing braces alone ("}", "} }") end blocks; they are no rule.
		if strings.Trim(l, "} \t") == "" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") ||
			strings.HasPrefix(l, "type ") || strings.HasPrefix(l, "policy ") || strings.HasPrefix(l, "#") {
			continue
		}
		return true
	}
	return false
}

// linuxFirewall combines the tools' answers. On when any reports an active
// firewall; Off only when at least one tool answered and every tool that
// answered says inactive; otherwise Unknown.
func linuxFirewall(ufw, firewalld, nft *toolAnswer) result {
	answered := 0
	var off []string
	if ufw != nil && ufw.err == nil {
		if st, ok := parseUfw(ufw.out); ok {
			answered++
			if st == On {
				return result{On, "ufw active"}
			}
			off = append(off, "ufw inactive")
		}
	}
	if firewalld != nil {
		// firewall-cmd exits 252 with "not running" on stdout.
		if st, ok := parseFirewallCmd(firewalld.out); ok {
			answered++
			if st == On {
				return result{On, "firewalld running"}
			}
			off = append(off, "firewalld not running")
		}
	}
	if nft != nil && nft.err == nil {
		answered++
		if nftHasRules(nft.out) {
			return result{On, "nftables ruleset present"}
		}
		off = append(off, "nftables ruleset empty")
	}
	if answered == 0 {
		return unknown("no firewall tool answered (ufw, firewall-cmd, nft)")
	}
	return result{Off, strings.Join(off, "; ")}
}

type toolAnswer struct {
	out string
	err error
}

var aptPeriodic = regexp.MustCompile(`APT::Periodic::Unattended-Upgrade "(\d+)"`)

// parseAptConfig reads `apt-config dump`; installed says whether
// unattended-upgrades is installed, packagekit whether PackageKit (which
// desktop software centers use for automatic updates) is.
func parseAptConfig(out string, installed, packagekit bool) result {
	m := aptPeriodic.FindStringSubmatch(out)
	if m == nil {
		if !installed && packagekit {
			return unknown("unattended-upgrades not installed; PackageKit may update automatically")
		}
		if !installed {
			return result{Off, "neither unattended-upgrades nor PackageKit installed"}
		}
		return unknown("APT::Periodic::Unattended-Upgrade not set")
	}
	if m[1] == "0" {
		return result{Off, "APT::Periodic::Unattended-Upgrade 0"}
	}
	if !installed {
		return unknown("APT::Periodic::Unattended-Upgrade set but unattended-upgrades not installed")
	}
	return result{On, "unattended-upgrades enabled"}
}

// dconfScreenLock scans system dconf keyfiles (root/etc/dconf/db/*.d/*) for
// org/gnome/desktop/screensaver lock-enabled. Absent: Unknown (the setting
// is per user).
func dconfScreenLock(root string) result {
	files, _ := filepath.Glob(filepath.Join(root, "etc", "dconf", "db", "*.d", "*"))
	state := Unknown
	src := ""
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil || st.IsDir() {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		section := ""
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(l, "[") {
				section = strings.Trim(l, "[]")
				continue
			}
			k, v, ok := strings.Cut(l, "=")
			if !ok || section != "org/gnome/desktop/screensaver" || strings.TrimSpace(k) != "lock-enabled" {
				continue
			}
			switch strings.TrimSpace(v) {
			case "true":
				state, src = On, f
			case "false":
				state, src = Off, f
			}
		}
		fh.Close()
	}
	if state == Unknown {
		return unknown("no system-wide GNOME screen lock policy (per-user setting)")
	}
	return result{state, "lock-enabled from " + filepath.Base(src)}
}

// ErrNoBlockDevice means the root filesystem is not on a block device this
// code can follow (overlay in a container, btrfs/zfs virtual devices, tmpfs).
var ErrNoBlockDevice = errors.New("posture: root filesystem is not on a block device")

// RootDevice returns the "major:minor" and filesystem source of the mount
// at "/" from mountinfo.
func RootDevice(mountinfo string) (majmin, source, fstype string, err error) {
	for _, l := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 5 || len(g) < 2 || f[4] != "/" {
			continue
		}
		majmin, fstype, source = f[2], g[0], g[1]
	}
	if majmin == "" {
		return "", "", "", errors.New("posture: no / entry in mountinfo")
	}
	return majmin, source, fstype, nil
}

// LUKSInfo is what LUKSForDevice found.
type LUKSInfo struct {
	// Encrypted: every path under the device passes a LUKS layer (a
	// crypto-erasable volume). Plain dm-crypt, dm-verity and foreign
	// formats are not LUKS.
	Encrypted bool
	// CryptName is the dm device name of the (first) LUKS mapping ("dm-0").
	CryptName string
	// Backing is the block device holding its LUKS header ("nvme0n1p3").
	Backing string
	// Type is "LUKS1" or "LUKS2".
	Type string
}

// LUKSForDevice walks from the block device majmin in sysfs (root "/sys")
// down its stack (device-mapper, MD RAID, partitions) looking for LUKS.
func LUKSForDevice(sysfs, majmin string) (LUKSInfo, error) {
	st, err := blockdev.DeviceStack(blockdev.Roots{Sys: sysfs}, majmin)
	if err != nil {
		return LUKSInfo{}, fmt.Errorf("%w (%s)", ErrNoBlockDevice, majmin)
	}
	return luksInfo(st), nil
}

func luksInfo(st blockdev.Store) LUKSInfo {
	if len(st.LUKS) == 0 {
		return LUKSInfo{}
	}
	v := st.LUKS[0]
	return LUKSInfo{Encrypted: st.Erasable(), CryptName: v.Crypt, Backing: v.Header, Type: string(v.Type)}
}

// linuxDiskEncryption judges the whole layout, as the wipe does: On when
// every mounted filesystem holding data and every active swap area is
// encrypted (LUKS, or plain dm-crypt and other formats, which encrypt but
// cannot be crypto-erased); Off when one is stored in the clear; Unknown
// when discovery cannot tell, or nothing holding data is on a block device
// (a container's overlay root).
func linuxDiskEncryption(l blockdev.Layout) result {
	data := l.Data()
	if len(data) == 0 {
		return unknown("no filesystem holding data: mounts are not on a block device")
	}
	var off, unk, on, notErasable []string
	for _, s := range data {
		clear, unsure := false, false
		for _, e := range s.Exposed {
			clear = clear || (!e.Encrypted && !e.Unknown)
			unsure = unsure || e.Unknown
		}
		switch {
		case clear:
			off = append(off, s.Describe())
		case unsure:
			unk = append(unk, s.Describe())
		default:
			on = append(on, s.Where())
			if !s.Erasable() {
				notErasable = append(notErasable, s.Where())
			}
		}
	}
	switch {
	case len(off) > 0:
		return result{Off, "not encrypted: " + strings.Join(off, "; ")}
	case len(unk) > 0:
		return unknown("cannot tell: " + strings.Join(unk, "; "))
	}
	detail := "encrypted: " + strings.Join(on, ", ")
	if len(notErasable) > 0 {
		detail += " (not LUKS, so a wipe cannot crypto-erase: " + strings.Join(notErasable, ", ") + ")"
	}
	return result{On, detail}
}

func sortedCopy(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}
