package posture

import (
	"context"
	"os"
	"strings"

	"github.com/yusufpapurcu/wmi"
	"golang.org/x/sys/windows/registry"
)

type encryptableVolume struct {
	DriveLetter      *string
	ProtectionStatus *uint32
}

func diskEncryption(context.Context) result {
	var vols []encryptableVolume
	q := "SELECT DriveLetter, ProtectionStatus FROM Win32_EncryptableVolume"
	if err := wmi.QueryNamespace(q, &vols, `root\CIMV2\Security\MicrosoftVolumeEncryption`); err != nil {
		return unknown("BitLocker WMI: " + err.Error())
	}
	sys := strings.ToUpper(strings.TrimSuffix(os.Getenv("SystemDrive"), `\`))
	if sys == "" {
		sys = "C:"
	}
	for _, v := range vols {
		if v.DriveLetter != nil && strings.EqualFold(*v.DriveLetter, sys) && v.ProtectionStatus != nil {
			return bitLockerState(*v.ProtectionStatus)
		}
	}
	return unknown("system volume not reported by Win32_EncryptableVolume")
}

type netFirewallProfile struct {
	Name    string
	Enabled uint16 // GpoBoolean: 0 false, 1 true, 2 not configured
}

func firewall(context.Context) result {
	var profiles []netFirewallProfile
	if err := wmi.QueryNamespace("SELECT Name, Enabled FROM MSFT_NetFirewallProfile", &profiles, `root\StandardCimv2`); err != nil {
		return unknown("MSFT_NetFirewallProfile: " + err.Error())
	}
	enabled := map[string]bool{}
	for _, p := range profiles {
		if p.Enabled == 2 {
			return unknown("firewall profile " + p.Name + " not configured")
		}
		enabled[p.Name] = p.Enabled == 1
	}
	return firewallProfiles(enabled)
}

func screenLock(context.Context) result {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System`, registry.QUERY_VALUE)
	if err != nil {
		return unknown("no machine inactivity policy")
	}
	defer k.Close()
	v, _, err := k.GetIntegerValue("InactivityTimeoutSecs")
	if err != nil {
		return unknown("InactivityTimeoutSecs not set (per-user screen saver settings apply)")
	}
	if v > 0 {
		return result{On, "InactivityTimeoutSecs set"}
	}
	return unknown("InactivityTimeoutSecs = 0")
}

func autoUpdates(context.Context) result {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU`, registry.QUERY_VALUE)
	if err == nil {
		defer k.Close()
		if v, _, err := k.GetIntegerValue("NoAutoUpdate"); err == nil && v == 1 {
			return result{Off, "policy NoAutoUpdate = 1"}
		}
	}
	s, err := registry.OpenKey(registry.LOCAL_MACHINE, `SYSTEM\CurrentControlSet\Services\wuauserv`, registry.QUERY_VALUE)
	if err != nil {
		return unknown("wuauserv service key not readable")
	}
	defer s.Close()
	start, _, err := s.GetIntegerValue("Start")
	if err != nil {
		return unknown("wuauserv start type not readable")
	}
	if start == 4 {
		return result{Off, "wuauserv disabled"}
	}
	return result{On, "Windows Update enabled (no policy disabling it)"}
}
