package posture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
	"github.com/lanyardhq/lanyard/agent/internal/blockdev"
)

// RootLUKS reports whether / is on LUKS, and which device holds the
// header. The wipe uses blockdev directly, for every mount.
func RootLUKS() (LUKSInfo, error) {
	l, err := blockdev.Discover(blockdev.Roots{Sys: "/sys", Proc: "/proc", Dev: "/dev"})
	if err != nil {
		return LUKSInfo{}, fmt.Errorf("posture: %w", err)
	}
	for _, s := range l.Stores {
		if s.Kind == blockdev.Filesystem && slices.Contains(s.MountPoints, "/") {
			if len(s.Devices) == 0 {
				return LUKSInfo{}, fmt.Errorf("%w: / is %s (%s)", ErrNoBlockDevice, s.Source, s.FSType)
			}
			return luksInfo(s), nil
		}
	}
	return LUKSInfo{}, errors.New("posture: no / entry in mountinfo")
}

func diskEncryption(context.Context) result {
	l, err := blockdev.Discover(blockdev.Roots{Sys: "/sys", Proc: "/proc", Dev: "/dev"})
	if err != nil {
		return unknown(err.Error())
	}
	return linuxDiskEncryption(l)
}

func run(ctx context.Context, candidates []string, args ...string) *toolAnswer {
	p := allowcmd.First(candidates...)
	if p == "" {
		return nil
	}
	out, err := allowcmd.Run(ctx, append([]string{p}, args...)...)
	return &toolAnswer{out: string(out), err: err}
}

func firewall(ctx context.Context) result {
	ufw := run(ctx, []string{"/usr/sbin/ufw", "/sbin/ufw"}, "status")
	fwd := run(ctx, []string{"/usr/bin/firewall-cmd", "/bin/firewall-cmd"}, "--state")
	nft := run(ctx, []string{"/usr/sbin/nft", "/sbin/nft"}, "list", "ruleset")
	return linuxFirewall(ufw, fwd, nft)
}

func screenLock(context.Context) result { return dconfScreenLock("/") }

func autoUpdates(ctx context.Context) result {
	if a := run(ctx, []string{"/usr/bin/apt-config", "/bin/apt-config"}, "dump"); a != nil && a.err == nil {
		_, err := os.Stat("/usr/bin/unattended-upgrade")
		pk := false
		for _, p := range []string{"/usr/libexec/packagekitd", "/usr/lib/packagekit/packagekitd"} {
			if _, err := os.Stat(p); err == nil {
				pk = true
			}
		}
		return parseAptConfig(a.out, err == nil, pk)
	}
	for _, t := range []string{
		"/etc/systemd/system/timers.target.wants/dnf-automatic.timer",
		"/etc/systemd/system/timers.target.wants/dnf-automatic-install.timer",
	} {
		if _, err := os.Stat(t); err == nil {
			return result{On, "dnf-automatic timer enabled"}
		}
	}
	return unknown("no supported automatic update mechanism found")
}
