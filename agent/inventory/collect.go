package inventory

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"
	gnet "github.com/shirou/gopsutil/v4/net"

	"github.com/lanyardhq/lanyard/agent/posture"
)

// Collector gathers inventories. The zero value is ready to use.
type Collector struct {
	// AgentVersion is copied into every inventory.
	AgentVersion string
	// SerialOverride replaces the firmware serial. TEST ONLY: containers and
	// CI machines have no serial; the end-to-end test sets it through the
	// agent's LANYARD_AGENT_TEST_SERIAL variable. Never set in production.
	SerialOverride string

	plat platformCache
}

// Collect takes a full snapshot. Parts that fail are left empty and named
// in Warnings; only a failure of the host probe itself is an error.
func (c *Collector) Collect(ctx context.Context) (*Inventory, error) {
	inv := &Inventory{AgentVersion: c.AgentVersion}
	hostID, hostWarnings, err := c.probeHost(ctx, inv)
	if err != nil {
		return nil, fmt.Errorf("inventory: host info: %w", err)
	}
	inv.Warnings = append(inv.Warnings, hostWarnings...)
	warn := func(format string, a ...any) { inv.Warnings = append(inv.Warnings, fmt.Sprintf(format, a...)) }

	hw, hwWarnings := hardware(ctx)
	inv.Warnings = append(inv.Warnings, hwWarnings...)
	hw.HostID = hostID
	if c.SerialOverride != "" {
		hw.SerialNumber, hw.SerialSource = c.SerialOverride, "override:test"
	}
	inv.Hardware = hw

	if infos, err := cpu.InfoWithContext(ctx); err == nil && len(infos) > 0 {
		inv.CPU.Model = strings.TrimSpace(infos[0].ModelName)
	} else if err != nil {
		warn("cpu: %v", err)
	}
	if n, err := cpu.CountsWithContext(ctx, false); err == nil {
		inv.CPU.PhysicalCores = uint32(n)
	}
	if n, err := cpu.CountsWithContext(ctx, true); err == nil {
		inv.CPU.LogicalCores = uint32(n)
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		inv.MemoryBytes = vm.Total
	} else {
		warn("memory: %v", err)
	}
	inv.Disks = disks(ctx, warn)
	inv.NetworkInterfaces = nics(ctx, warn)

	users, err := localUsers(ctx)
	if err != nil {
		warn("users: %v", err)
	}
	if sessions, err := host.UsersWithContext(ctx); err == nil {
		in := map[string]bool{}
		for _, s := range sessions {
			in[s.User] = true
		}
		for i := range users {
			users[i].LoggedIn = in[users[i].Username]
		}
	}
	inv.Users = users

	inv.Posture = posture.Collect(ctx, inv.OS.Version, inv.OS.Build)
	sortInventory(inv)
	return inv, nil
}

func osName(platform string) string {
	switch runtime.GOOS {
	case "darwin":
		return "macOS"
	case "windows":
		return platform // "Microsoft Windows 11 Pro"
	}
	if platform == "" {
		return "Linux"
	}
	return strings.ToUpper(platform[:1]) + platform[1:]
}

func disks(ctx context.Context, warn func(string, ...any)) []Disk {
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		warn("disks: %v", err)
		return nil
	}
	seen := map[string]bool{}
	var out []Disk
	for _, p := range parts {
		if seen[p.Device] || skipFS[p.Fstype] {
			continue
		}
		seen[p.Device] = true
		d := Disk{Device: p.Device, Mountpoint: p.Mountpoint, FSType: p.Fstype}
		if u, err := disk.UsageWithContext(ctx, p.Mountpoint); err == nil {
			d.TotalBytes, d.FreeBytes = u.Total, u.Free
		}
		if d.TotalBytes == 0 {
			continue
		}
		out = append(out, d)
	}
	return out
}

// skipFS are pseudo filesystems that gopsutil may list as partitions.
var skipFS = map[string]bool{"squashfs": true, "tmpfs": true, "devtmpfs": true, "overlay": true, "nsfs": true, "autofs": true}

func nics(ctx context.Context, warn func(string, ...any)) []NetworkInterface {
	ifs, err := gnet.InterfacesWithContext(ctx)
	if err != nil {
		warn("network: %v", err)
		return nil
	}
	var out []NetworkInterface
	for _, i := range ifs {
		n := NetworkInterface{Name: i.Name, MACAddress: strings.ToLower(i.HardwareAddr)}
		for _, f := range i.Flags {
			switch f {
			case "up":
				n.Up = true
			case "loopback":
				n.Loopback = true
			}
		}
		for _, a := range i.Addrs {
			n.IPAddresses = append(n.IPAddresses, a.Addr)
		}
		out = append(out, n)
	}
	return out
}

// junkSerials are placeholder values firmware vendors leave in DMI/SMBIOS.
var junkSerials = map[string]bool{
	"": true, "0": true, "none": true, "default string": true, "to be filled by o.e.m.": true,
	"system serial number": true, "not specified": true, "not applicable": true, "n/a": true,
	"0123456789": true, "serial number": true, "chassis serial number": true, "123456789": true,
	"00000000": true, "oem": true, "invalid": true, "not settable": true, "not available": true,
	"unknown": true, "to be filled by oem": true, "default": true, "none provided": true, "empty": true,
	"1234567890": true, "base board serial number": true, "system product name": true,
}

// junkUUIDs are SMBIOS system UUIDs that cheap boards ship on every unit.
var junkUUIDs = map[string]bool{
	"03000200-0400-0500-0006-000700080009": true,
	"00020003-0004-0005-0006-000700080009": true,
	"12345678-1234-5678-90ab-cddeefaabbcc": true,
}

// CleanUUID normalizes a firmware system UUID to lower case and returns ""
// for placeholders (all zeros, all F, known factory defaults): without a
// serial the UUID becomes the device's identity, so a value shared by many
// machines must not count.
func CleanUUID(s string) string {
	s = strings.ToLower(CleanSerial(s))
	if s == "" || junkUUIDs[s] {
		return ""
	}
	hex := strings.ReplaceAll(s, "-", "")
	if strings.Trim(hex, "0") == "" || strings.Trim(hex, "f") == "" {
		return ""
	}
	return s
}

// CleanSerial trims a firmware string and returns "" for known placeholders.
// NULs and spaces are trimmed together: firmware pads with either, in any
// order, and trimming one then the other left a NUL at an end (" \x00 C02X"),
// which turned a real serial into garbage below.
func CleanSerial(s string) string {
	s = strings.TrimFunc(s, func(r rune) bool { return r == 0 || unicode.IsSpace(r) })
	if junkSerials[strings.ToLower(s)] {
		return ""
	}
	if strings.Trim(s, "0 ") == "" || strings.Trim(s, "F") == "" {
		return ""
	}
	// Firmware garbage (bytes that are not UTF-8, control characters) is no serial: the
	// server refuses such a serial and protobuf would refuse the whole report. Unknown
	// ("") sends the device to review instead.
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }) >= 0 {
		return ""
	}
	return s
}
