package inventory

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v4/host"

	"github.com/lanyardhq/lanyard/agent/internal/accounts"
)

// sysRoot is "/" except in tests.
var sysRoot = "/"

func readTrim(p string) string {
	b, err := os.ReadFile(filepath.Join(sysRoot, p))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.Trim(string(b), "\x00"))
}

// hardware reads DMI (x86, most arm64 servers) and falls back to the device
// tree (ARM boards). product_serial and product_uuid are root-only.
func hardware(context.Context) (Hardware, []string) {
	var hw Hardware
	var warnings []string
	dmi := "sys/class/dmi/id"
	for _, f := range []string{"product_serial", "chassis_serial", "board_serial"} {
		if s := CleanSerial(readTrim(filepath.Join(dmi, f))); s != "" {
			hw.SerialNumber, hw.SerialSource = s, "dmi:"+f
			break
		}
	}
	if hw.SerialNumber == "" {
		if s := CleanSerial(readTrim("proc/device-tree/serial-number")); s != "" {
			hw.SerialNumber, hw.SerialSource = s, "device-tree"
		}
	}
	if hw.SerialNumber == "" {
		why := "not available: no DMI serial or device-tree serial (virtual machine or container?)"
		if _, err := os.Stat(filepath.Join(sysRoot, dmi)); err != nil {
			why = "not available: " + filepath.Join("/", dmi) + " does not exist (container?)"
		} else if os.Geteuid() != 0 {
			why = "not available: DMI serial is readable by root only"
		}
		hw.SerialSource = why
		warnings = append(warnings, "serial_number: "+why)
	}
	hw.HardwareUUID = CleanUUID(readTrim(filepath.Join(dmi, "product_uuid")))
	hw.Vendor = CleanSerial(readTrim(filepath.Join(dmi, "sys_vendor")))
	hw.Model = CleanSerial(readTrim(filepath.Join(dmi, "product_name")))
	if hw.Model == "" {
		hw.Model = readTrim("proc/device-tree/model")
	}
	return hw, warnings
}

func osBuild(context.Context, *host.InfoStat) string { return "" }

func localUsers(context.Context) ([]User, error) {
	accts, admins, err := accounts.Local(sysRoot)
	if err != nil {
		return nil, err
	}
	var out []User
	for _, a := range accts {
		if !a.IsHuman() {
			continue
		}
		out = append(out, User{
			Username: a.Name, UID: strconv.Itoa(a.UID), FullName: a.FullName(),
			Home: a.Home, Admin: admins[a.Name],
		})
	}
	return out, nil
}

// platformFiles are what gopsutil reads for the distribution and what a release
// upgrade rewrites (see platformCache).
var platformFiles = []string{"/etc/os-release", "/usr/lib/os-release", "/etc/lsb-release",
	"/etc/debian_version", "/etc/redhat-release", "/etc/system-release", "/etc/alpine-release"}
