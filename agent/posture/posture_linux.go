package posture

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

// RootLUKS reports whether / is on dm-crypt, and which device holds the
// LUKS header. Used by the wipe plan as well.
func RootLUKS() (LUKSInfo, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return LUKSInfo{}, fmt.Errorf("posture: %w", err)
	}
	majmin, source, fstype, err := RootDevice(string(mi))
	if err != nil {
		return LUKSInfo{}, err
	}
	info, err := LUKSForDevice("/sys", majmin)
	if err != nil {
		return LUKSInfo{}, fmt.Errorf("%w: / is %s (%s)", err, source, fstype)
	}
	return info, nil
}

func diskEncryption(context.Context) result {
	info, err := RootLUKS()
	if errors.Is(err, ErrNoBlockDevice) {
		return unknown(err.Error())
	}
	if err != nil {
		return unknown(err.Error())
	}
	if info.Encrypted {
		return result{On, "root on dm-crypt " + info.CryptName + " (LUKS on " + info.Backing + ")"}
	}
	return result{Off, "root filesystem is not on dm-crypt"}
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
