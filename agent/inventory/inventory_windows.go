package inventory

import (
	"context"
	"fmt"
	"strings"

	"github.com/shirou/gopsutil/v4/host"
	"github.com/yusufpapurcu/wmi"
)

// WMI queries run one at a time from the collecting goroutine: concurrent
// queries leak native memory on some Windows builds (go-ole #135).

type win32BIOS struct{ SerialNumber string }

type win32ComputerSystemProduct struct {
	IdentifyingNumber string
	UUID              string
	Vendor            string
	Name              string
}

type win32ComputerSystem struct {
	Manufacturer string
	Model        string
}

func hardware(context.Context) (Hardware, []string) {
	var hw Hardware
	var warnings []string
	var bios []win32BIOS
	if err := wmi.Query("SELECT SerialNumber FROM Win32_BIOS", &bios); err == nil && len(bios) > 0 {
		if s := CleanSerial(bios[0].SerialNumber); s != "" {
			hw.SerialNumber, hw.SerialSource = s, "wmi:Win32_BIOS"
		}
	} else if err != nil {
		warnings = append(warnings, "Win32_BIOS: "+err.Error())
	}
	var csp []win32ComputerSystemProduct
	if err := wmi.Query("SELECT IdentifyingNumber, UUID, Vendor, Name FROM Win32_ComputerSystemProduct", &csp); err == nil && len(csp) > 0 {
		if hw.SerialNumber == "" {
			if s := CleanSerial(csp[0].IdentifyingNumber); s != "" {
				hw.SerialNumber, hw.SerialSource = s, "wmi:Win32_ComputerSystemProduct"
			}
		}
		hw.HardwareUUID = CleanUUID(csp[0].UUID)
		hw.Vendor, hw.Model = CleanSerial(csp[0].Vendor), CleanSerial(csp[0].Name)
	} else if err != nil {
		warnings = append(warnings, "Win32_ComputerSystemProduct: "+err.Error())
	}
	var cs []win32ComputerSystem
	if err := wmi.Query("SELECT Manufacturer, Model FROM Win32_ComputerSystem", &cs); err == nil && len(cs) > 0 {
		if v := CleanSerial(cs[0].Manufacturer); v != "" {
			hw.Vendor = v
		}
		if m := CleanSerial(cs[0].Model); m != "" {
			hw.Model = m
		}
	}
	if hw.SerialNumber == "" {
		hw.SerialSource = "not available: Win32_BIOS and Win32_ComputerSystemProduct report no serial"
		warnings = append(warnings, "serial_number: "+hw.SerialSource)
	}
	return hw, warnings
}

func osBuild(_ context.Context, hi *host.InfoStat) string { return WindowsBuild(hi.KernelVersion) }

type win32UserAccount struct {
	Name     string
	SID      string
	FullName string
	Domain   string
	Disabled bool
}

type win32GroupUser struct {
	GroupComponent string
	PartComponent  string
}

func localUsers(context.Context) ([]User, error) {
	var accts []win32UserAccount
	if err := wmi.Query("SELECT Name, SID, FullName, Domain, Disabled FROM Win32_UserAccount WHERE LocalAccount = TRUE", &accts); err != nil {
		return nil, fmt.Errorf("Win32_UserAccount: %w", err)
	}
	admins := map[string]bool{}
	// The Administrators group is S-1-5-32-544 whatever its localized name.
	var groups []struct{ Name, Domain string }
	if err := wmi.Query("SELECT Name, Domain FROM Win32_Group WHERE LocalAccount = TRUE AND SID = 'S-1-5-32-544'", &groups); err == nil && len(groups) > 0 {
		var gu []win32GroupUser
		q := fmt.Sprintf(`SELECT GroupComponent, PartComponent FROM Win32_GroupUser WHERE GroupComponent = "Win32_Group.Domain='%s',Name='%s'"`,
			groups[0].Domain, groups[0].Name)
		if err := wmi.Query(q, &gu); err == nil {
			for _, g := range gu {
				if i := strings.Index(g.PartComponent, `Name="`); i >= 0 {
					admins[strings.ToLower(strings.TrimSuffix(g.PartComponent[i+6:], `"`))] = true
				}
			}
		}
	}
	var out []User
	for _, a := range accts {
		if !IsHumanWindowsSID(a.SID) {
			continue
		}
		out = append(out, User{Username: a.Name, UID: a.SID, FullName: a.FullName,
			Home: `C:\Users\` + a.Name, Admin: admins[strings.ToLower(a.Name)]})
	}
	return out, nil
}

// platformFiles is empty: the version comes from the registry, cheap to read, and
// cumulative updates change the build without touching a file we could stamp.
var platformFiles []string
