package inventory

import (
	"context"
	"strings"

	"github.com/shirou/gopsutil/v4/host"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

func hardware(ctx context.Context) (Hardware, []string) {
	out, err := allowcmd.Run(ctx, "/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice")
	if err != nil {
		return Hardware{SerialSource: "not available: ioreg failed"}, []string{"hardware: " + err.Error()}
	}
	hw := hardwareFromIoreg(ParseIoreg(string(out)))
	if hw.SerialNumber == "" {
		hw.SerialSource = "not available: IOPlatformSerialNumber empty"
		return hw, []string{"serial_number: " + hw.SerialSource}
	}
	return hw, nil
}

func osBuild(ctx context.Context, _ *host.InfoStat) string {
	out, err := allowcmd.Run(ctx, "/usr/bin/sw_vers", "-buildVersion")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func localUsers(ctx context.Context) ([]User, error) {
	list := func(attr string) (map[string]string, error) {
		out, err := allowcmd.Run(ctx, "/usr/bin/dscl", ".", "-list", "/Users", attr)
		if err != nil {
			return nil, err
		}
		return ParseDsclList(string(out)), nil
	}
	uids, err := list("UniqueID")
	if err != nil {
		return nil, err
	}
	names, _ := list("RealName")
	homes, _ := list("NFSHomeDirectory")
	admins := map[string]bool{}
	if out, err := allowcmd.Run(ctx, "/usr/bin/dscl", ".", "-read", "/Groups/admin", "GroupMembership"); err == nil {
		admins = ParseDsclGroupMembership(string(out))
	}
	return macUsers(uids, names, homes, admins), nil
}

// platformFiles: a macOS update rewrites SystemVersion.plist, which sw_vers reads.
var platformFiles = []string{"/System/Library/CoreServices/SystemVersion.plist"}
