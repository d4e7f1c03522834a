// Package posture reports a device's security posture: disk encryption
// (FileVault, BitLocker, LUKS), firewall, screen lock, automatic updates and
// OS version.
//
// Every check is tri-state. A check that errors, is not permitted, or whose
// output is not understood reports Unknown, never Off: Off is only reported
// when the platform positively says the feature is disabled.
//
// The output parsers live in parse.go (no build tags) so they are tested on
// every OS; posture_<os>.go runs the platform tools.
package posture

import (
	"context"
	"strings"
	"time"
	"unicode"
)

// State is the tri-state result of one check.
type State string

// States.
const (
	On      State = "on"
	Off     State = "off"
	Unknown State = "unknown"
)

// Report is the posture of the device.
type Report struct {
	DiskEncryption State  `json:"disk_encryption"`
	Firewall       State  `json:"firewall"`
	ScreenLock     State  `json:"screen_lock"`
	AutoUpdates    State  `json:"auto_updates"`
	OSVersion      string `json:"os_version"`
	OSBuild        string `json:"os_build"`
	// Details holds one human-readable line per check, for display only.
	Details map[string]string `json:"details,omitempty"`
}

// Check timeouts: posture runs every minute, a hung tool must not stall it.
const checkTimeout = 15 * time.Second

// Collect runs every check. osVersion/osBuild come from the inventory's OS
// probe and are copied into the report.
func Collect(ctx context.Context, osVersion, osBuild string) Report {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	r := Report{OSVersion: osVersion, OSBuild: osBuild, Details: map[string]string{}}
	r.DiskEncryption = record(r.Details, "disk_encryption", diskEncryption(ctx))
	r.Firewall = record(r.Details, "firewall", firewall(ctx))
	r.ScreenLock = record(r.Details, "screen_lock", screenLock(ctx))
	r.AutoUpdates = record(r.Details, "auto_updates", autoUpdates(ctx))
	return r
}

// result is a check's state plus an explanation.
type result struct {
	state  State
	detail string
}

func unknown(why string) result { return result{Unknown, why} }

func record(details map[string]string, key string, r result) State {
	if r.state == "" {
		r.state = Unknown
	}
	if d := detailLine(r.detail); d != "" {
		details[key] = d
	}
	return r.state
}

// maxDetail bounds one detail line: details echo tool output, which can be long.
const maxDetail = 200

// detailLine makes a tool's output fit to send: protobuf refuses a string that is not
// UTF-8 (the whole report would fail to marshal) and the server refuses control
// characters, so either would cost the device its posture report, not just a detail.
func detailLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxDetail {
			break
		}
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
