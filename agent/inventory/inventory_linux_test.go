package inventory

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func withSysRoot(t *testing.T, root string) {
	old := sysRoot
	sysRoot = root
	t.Cleanup(func() { sysRoot = old })
}

func TestLinuxHardwareFromFakeDMI(t *testing.T) {
	root := t.TempDir()
	dmi := filepath.Join(root, "sys", "class", "dmi", "id")
	os.MkdirAll(dmi, 0o755)
	for f, v := range map[string]string{
		"product_serial": "To Be Filled By O.E.M.\n", // junk: fall through
		"chassis_serial": "PF2ABCDE\n",
		"product_uuid":   "4C4C4544-0042-3510-8052-B4C04F4E3732\n",
		"sys_vendor":     "LENOVO\n",
		"product_name":   "20XW0026US\n",
	} {
		os.WriteFile(filepath.Join(dmi, f), []byte(v), 0o400)
	}
	withSysRoot(t, root)
	hw, warnings := hardware(context.Background())
	want := Hardware{SerialNumber: "PF2ABCDE", SerialSource: "dmi:chassis_serial",
		HardwareUUID: "4c4c4544-0042-3510-8052-b4c04f4e3732", Vendor: "LENOVO", Model: "20XW0026US"}
	if hw != want || len(warnings) != 0 {
		t.Fatalf("got %+v %v\nwant %+v", hw, warnings, want)
	}
}

// TestLinuxHardwareJunkSerialKeepsUUID: a board whose every serial field is
// a placeholder reports no serial (never the placeholder) and its hardware
// UUID, which then identifies the device.
func TestLinuxHardwareJunkSerialKeepsUUID(t *testing.T) {
	for _, junk := range []string{"To be filled by O.E.M.", "Default string", "0", "None", "System Serial Number",
		"Not Specified", "0000000000", "        "} {
		t.Run(junk, func(t *testing.T) {
			root := t.TempDir()
			dmi := filepath.Join(root, "sys", "class", "dmi", "id")
			os.MkdirAll(dmi, 0o755)
			for f, v := range map[string]string{
				"product_serial": junk + "\n", "chassis_serial": junk + "\n", "board_serial": junk + "\n",
				"product_uuid": "8F3B2A10-5C4D-11EE-8C99-0242AC120002\n",
			} {
				os.WriteFile(filepath.Join(dmi, f), []byte(v), 0o400)
			}
			withSysRoot(t, root)
			hw, _ := hardware(context.Background())
			if hw.SerialNumber != "" {
				t.Fatalf("serial %q from placeholder %q", hw.SerialNumber, junk)
			}
			if hw.HardwareUUID != "8f3b2a10-5c4d-11ee-8c99-0242ac120002" {
				t.Fatalf("hardware uuid %q", hw.HardwareUUID)
			}
		})
	}
}

func TestLinuxHardwareNoDMISaysSo(t *testing.T) {
	withSysRoot(t, t.TempDir())
	hw, warnings := hardware(context.Background())
	if hw.SerialNumber != "" {
		t.Fatalf("invented serial %q", hw.SerialNumber)
	}
	if !strings.HasPrefix(hw.SerialSource, "not available") || len(warnings) != 1 {
		t.Fatalf("SerialSource = %q, warnings %v", hw.SerialSource, warnings)
	}
}

// TestCollectThisMachine runs the real collector. A container has no DMI:
// the serial must then be empty and explained, never made up.
func TestCollectThisMachine(t *testing.T) {
	c := &Collector{AgentVersion: "test"}
	inv, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if inv.Hostname != host {
		t.Errorf("hostname %q, want %q", inv.Hostname, host)
	}
	if inv.OS.Platform != "linux" || inv.OS.KernelVersion == "" || inv.OS.Arch == "" {
		t.Errorf("os = %+v", inv.OS)
	}
	if inv.MemoryBytes == 0 || inv.CPU.LogicalCores == 0 {
		t.Errorf("memory %d, cpus %d", inv.MemoryBytes, inv.CPU.LogicalCores)
	}
	if len(inv.NetworkInterfaces) == 0 {
		t.Error("no network interfaces")
	}
	var lo bool
	for _, n := range inv.NetworkInterfaces {
		lo = lo || (n.Loopback && len(n.IPAddresses) > 0)
	}
	if !lo {
		t.Error("loopback interface with an address not found")
	}
	serialFile := "/sys/class/dmi/id/product_serial"
	if b, err := os.ReadFile(serialFile); err != nil || CleanSerial(string(b)) == "" {
		// No readable DMI serial here: must be empty and explained.
		if inv.Hardware.SerialNumber != "" && !strings.HasPrefix(inv.Hardware.SerialSource, "dmi:") {
			t.Errorf("serial %q from %q on a machine without DMI serial", inv.Hardware.SerialNumber, inv.Hardware.SerialSource)
		}
		if inv.Hardware.SerialNumber == "" && !strings.HasPrefix(inv.Hardware.SerialSource, "not available") {
			t.Errorf("empty serial without explanation: %q", inv.Hardware.SerialSource)
		}
	}
	if inv.Posture.DiskEncryption == "" || inv.Posture.OSVersion != inv.OS.Version {
		t.Errorf("posture = %+v", inv.Posture)
	}
	b, err := json.Marshal(inv)
	if err != nil || len(b) > 256<<10 {
		t.Fatalf("json %d bytes, %v", len(b), err)
	}

	c.SerialOverride = "TEST-SERIAL-1"
	inv2, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inv2.Hardware.SerialNumber != "TEST-SERIAL-1" || inv2.Hardware.SerialSource != "override:test" {
		t.Fatalf("override: %+v", inv2.Hardware)
	}
}
