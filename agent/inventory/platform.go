package inventory

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/host"
)

// platform is the part of a host probe that only an OS upgrade changes.
type platform struct {
	name, family, version, build string
}

// platformCache keeps the platform between collections. Reading it is not cheap
// everywhere: on Debian without /etc/lsb-release gopsutil runs the lsb_release shell
// script (eight processes, ~100 ms of CPU), on macOS the build comes from sw_vers. The
// agent collects every minute, so the cache is keyed on the size and mtime of the
// release files an upgrade rewrites (platformFiles, per OS); where there are none
// (Windows reads the registry, which is cheap) it is not kept.
type platformCache struct {
	mu    sync.Mutex
	stamp string
	p     platform
}

// get returns the cached platform while the files' stamp is unchanged, else load's
// answer. A failed load is not cached.
func (c *platformCache) get(ctx context.Context, files []string, load func(context.Context) (platform, error)) (platform, error) {
	stamp := fileStamp(files)
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp != "" && stamp == c.stamp {
		return c.p, nil
	}
	p, err := load(ctx)
	if err != nil {
		c.stamp = ""
		return platform{}, err
	}
	c.stamp, c.p = stamp, p
	return p, nil
}

// fileStamp is "" when files is empty: nothing to key a cache on.
func fileStamp(files []string) string {
	var b strings.Builder
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "%s:-;", f)
		}
	}
	return b.String()
}

// probeHost fills inv's host and OS fields. It is host.InfoWithContext without what
// the inventory does not use (virtualization, process count) and with the platform
// cached. Only a missing hostname is an error; other failures become warnings.
func (c *Collector) probeHost(ctx context.Context, inv *Inventory) (hostID string, warnings []string, err error) {
	if inv.Hostname, err = os.Hostname(); err != nil {
		return "", nil, fmt.Errorf("hostname: %w", err)
	}
	warn := func(what string, err error) {
		if err != nil {
			warnings = append(warnings, what+": "+err.Error())
		}
	}
	kernel, err := host.KernelVersionWithContext(ctx)
	warn("kernel version", err)
	boot, err := host.BootTimeWithContext(ctx)
	warn("boot time", err)
	inv.UptimeSeconds, err = host.UptimeWithContext(ctx)
	warn("uptime", err)
	hostID, err = host.HostIDWithContext(ctx)
	warn("host id", err)
	p, err := c.plat.get(ctx, platformFiles, func(ctx context.Context) (platform, error) {
		var p platform
		var err error
		if p.name, p.family, p.version, err = host.PlatformInformationWithContext(ctx); err != nil {
			return p, fmt.Errorf("platform: %w", err)
		}
		p.build = osBuild(ctx, &host.InfoStat{Platform: p.name, PlatformVersion: p.version, KernelVersion: kernel})
		return p, nil
	})
	warn("os", err)
	inv.BootTime = time.Unix(int64(boot), 0).UTC()
	inv.OS = OS{
		Platform:      runtime.GOOS,
		Name:          osName(p.name),
		Version:       p.version,
		Build:         p.build,
		KernelVersion: kernel,
		Arch:          runtime.GOARCH,
		Family:        p.family,
	}
	return hostID, warnings, nil
}
