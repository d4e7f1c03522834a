//go:build !linux && !darwin && !windows

package posture

import "context"

func diskEncryption(context.Context) result { return unknown("unsupported platform") }
func firewall(context.Context) result       { return unknown("unsupported platform") }
func screenLock(context.Context) result     { return unknown("unsupported platform") }
func autoUpdates(context.Context) result    { return unknown("unsupported platform") }
