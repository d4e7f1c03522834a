// Package inventory collects what a device is: host, OS, hardware identity
// (serial number, hardware UUID, vendor, model), CPU, memory, disks, network
// interfaces, local users and the security posture.
//
// Collection uses gopsutil v4 plus small per-OS readers for what gopsutil
// lacks (serial and model: inventory_<os>.go). A value the platform cannot
// provide stays empty; nothing is invented. Types here are the agent's own;
// agent/client converts them to the wire format.
package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	"github.com/lanyardhq/lanyard/agent/posture"
)

// Inventory is one full snapshot. JSON names match the wire section names.
type Inventory struct {
	Hostname          string             `json:"hostname"`
	OS                OS                 `json:"os"`
	Hardware          Hardware           `json:"hardware"`
	CPU               CPU                `json:"cpu"`
	MemoryBytes       uint64             `json:"memory_bytes"`
	Disks             []Disk             `json:"disks"`
	NetworkInterfaces []NetworkInterface `json:"network_interfaces"`
	Users             []User             `json:"users"`
	UptimeSeconds     uint64             `json:"uptime_seconds"`
	BootTime          time.Time          `json:"boot_time"`
	Posture           posture.Report     `json:"posture"`
	AgentVersion      string             `json:"agent_version"`
	// Warnings lists what could not be collected (e.g. "serial_number: not
	// available (no DMI in this container)"). Not part of the hash.
	Warnings []string `json:"warnings,omitempty"`
}

// OS describes the operating system.
type OS struct {
	Platform      string `json:"platform"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	Build         string `json:"build"`
	KernelVersion string `json:"kernel_version"`
	Arch          string `json:"arch"`
	Family        string `json:"family"`
}

// Hardware is the machine's identity as the firmware reports it.
type Hardware struct {
	SerialNumber string `json:"serial_number"`
	// SerialSource says where SerialNumber came from ("dmi:product_serial",
	// "ioreg", "wmi:Win32_BIOS", "override:test") or why it is empty.
	SerialSource string `json:"serial_source"`
	HardwareUUID string `json:"hardware_uuid"`
	Vendor       string `json:"vendor"`
	Model        string `json:"model"`
	HostID       string `json:"host_id"`
}

// CPU summary.
type CPU struct {
	Model         string `json:"model"`
	PhysicalCores uint32 `json:"physical_cores"`
	LogicalCores  uint32 `json:"logical_cores"`
}

// Disk is one mounted volume.
type Disk struct {
	Device     string `json:"device"`
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fstype"`
	TotalBytes uint64 `json:"total_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
	Serial     string `json:"serial_number,omitempty"`
}

// NetworkInterface is one NIC.
type NetworkInterface struct {
	Name        string   `json:"name"`
	MACAddress  string   `json:"mac_address"`
	IPAddresses []string `json:"ip_addresses"`
	Up          bool     `json:"up"`
	Loopback    bool     `json:"loopback"`
}

// User is a local account.
type User struct {
	Username string `json:"username"`
	UID      string `json:"uid"`
	FullName string `json:"full_name"`
	Home     string `json:"home"`
	Admin    bool   `json:"admin"`
	LoggedIn bool   `json:"logged_in"`
}

// Sections are the names of the hashed parts of an inventory, as on the wire.
var Sections = []string{
	"hostname", "os", "hardware", "cpu", "memory_bytes", "disks",
	"network_interfaces", "users", "boot_time", "posture", "agent_version",
}

// freeBytesQuantum rounds free disk space for hashing, so ordinary churn
// (logs, caches) does not make every minute's hash differ.
const freeBytesQuantum = 1 << 30

// SectionHashes returns a SHA-256 per section. uptime_seconds is excluded
// (it changes every second; heartbeats carry it), disk free space is
// compared at 1 GiB granularity.
func (inv *Inventory) SectionHashes() map[string]string {
	disks := make([]Disk, len(inv.Disks))
	for i, d := range inv.Disks {
		d.FreeBytes = d.FreeBytes / freeBytesQuantum * freeBytesQuantum
		disks[i] = d
	}
	vals := map[string]any{
		"hostname":           inv.Hostname,
		"os":                 inv.OS,
		"hardware":           inv.Hardware,
		"cpu":                inv.CPU,
		"memory_bytes":       inv.MemoryBytes,
		"disks":              disks,
		"network_interfaces": inv.NetworkInterfaces,
		"users":              inv.Users,
		"boot_time":          inv.BootTime.UTC().Truncate(time.Minute).Unix(),
		"posture":            inv.Posture,
		"agent_version":      inv.AgentVersion,
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		b, _ := json.Marshal(v) // plain structs: cannot fail
		sum := sha256.Sum256(b)
		out[k] = hex.EncodeToString(sum[:])
	}
	return out
}

// Hash is the SHA-256 over all section hashes in Sections order.
func Hash(sections map[string]string) string {
	h := sha256.New()
	for _, k := range Sections {
		h.Write([]byte(k + "=" + sections[k] + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Changed lists the sections whose hash differs between prev and cur, in
// Sections order. A nil prev means everything changed.
func Changed(prev, cur map[string]string) []string {
	var out []string
	for _, k := range Sections {
		if prev == nil || prev[k] != cur[k] {
			out = append(out, k)
		}
	}
	return out
}

func sortInventory(inv *Inventory) {
	sort.Slice(inv.Disks, func(i, j int) bool { return inv.Disks[i].Mountpoint < inv.Disks[j].Mountpoint })
	sort.Slice(inv.NetworkInterfaces, func(i, j int) bool {
		return inv.NetworkInterfaces[i].Name < inv.NetworkInterfaces[j].Name
	})
	for i := range inv.NetworkInterfaces {
		sort.Strings(inv.NetworkInterfaces[i].IPAddresses)
	}
	sort.Slice(inv.Users, func(i, j int) bool { return inv.Users[i].Username < inv.Users[j].Username })
}
