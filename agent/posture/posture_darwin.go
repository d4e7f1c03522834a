package posture

import (
	"context"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

func out(ctx context.Context, argv ...string) (string, error) {
	b, err := allowcmd.Run(ctx, argv...)
	return string(b), err
}

func diskEncryption(ctx context.Context) result {
	s, err := out(ctx, "/usr/bin/fdesetup", "status")
	if err != nil {
		return unknown("fdesetup: " + err.Error())
	}
	return parseFdesetup(s)
}

func firewall(ctx context.Context) result {
	s, err := out(ctx, "/usr/libexec/ApplicationFirewall/socketfilterfw", "--getglobalstate")
	if err != nil {
		return unknown("socketfilterfw: " + err.Error())
	}
	return parseSocketfilterfw(s)
}

// screenLock reports the managed (MDM profile) setting; the per-user
// setting is not visible to a root daemon, so absent means Unknown.
func screenLock(ctx context.Context) result {
	s, err := out(ctx, "/usr/bin/defaults", "read", "/Library/Managed Preferences/com.apple.screensaver", "askForPassword")
	if err != nil {
		return unknown("no managed screen saver policy")
	}
	return parseDefaultsBool(s, "managed askForPassword")
}

func autoUpdates(ctx context.Context) result {
	s, err := out(ctx, "/usr/bin/defaults", "read", "/Library/Preferences/com.apple.SoftwareUpdate", "AutomaticCheckEnabled")
	if err != nil {
		return unknown("AutomaticCheckEnabled not set")
	}
	return parseDefaultsBool(s, "AutomaticCheckEnabled")
}
