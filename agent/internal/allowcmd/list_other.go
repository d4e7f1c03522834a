//go:build !linux && !darwin && !windows

package allowcmd

var allowed = []string{}
