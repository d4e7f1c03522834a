//go:build !linux && !darwin && !windows

package inventory

import (
	"context"

	"github.com/shirou/gopsutil/v4/host"
)

func hardware(context.Context) (Hardware, []string) {
	return Hardware{SerialSource: "not available: unsupported platform"}, []string{"serial_number: unsupported platform"}
}

func osBuild(context.Context, *host.InfoStat) string { return "" }

func localUsers(context.Context) ([]User, error) { return nil, nil }

var platformFiles []string
