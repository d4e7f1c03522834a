package actions

import (
	"context"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/lanyardhq/lanyard/agent/internal/allowcmd"
)

// NewPlanner returns the planner for this OS. It gathers facts by running
// the allowlisted Windows tools; everything else (plans, parsing, checks)
// lives in the OS-independent winPlanner.
func NewPlanner(o PlannerOptions) Planner {
	return &winPlanner{
		stateDir: o.StateDir, volume: osVolume(), tools: execTools{}, wtsSessions: wtsSessions,
		sessionWait: 30 * time.Second, pollEvery: 2 * time.Second,
	}
}

// execTools runs programs through the allowlist.
type execTools struct{}

func (execTools) Output(ctx context.Context, argv ...string) (string, error) {
	out, err := allowcmd.Run(ctx, argv...)
	return string(out), err
}

// osVolume is the drive Windows runs from ("C:"), from the system itself
// rather than %SystemDrive%, which the environment could change.
func osVolume() string {
	if dir, err := windows.GetSystemWindowsDirectory(); err == nil && len(dir) >= 2 && dir[1] == ':' {
		return strings.ToUpper(dir[:2])
	}
	return "C:"
}

// wtsSessions lists user sessions through the WTS API where quser.exe is
// missing. Session 0 is services; only active and disconnected sessions
// have a user signed in.
func wtsSessions(context.Context) ([]winSession, error) {
	var info *windows.WTS_SESSION_INFO
	var n uint32
	if err := windows.WTSEnumerateSessions(0, 0, 1, &info, &n); err != nil {
		return nil, err
	}
	defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(info)))
	var out []winSession
	for _, s := range unsafe.Slice(info, n) {
		if s.SessionID == 0 {
			continue
		}
		state := ""
		switch s.State {
		case windows.WTSActive:
			state = "Active"
		case windows.WTSDisconnected:
			state = "Disc"
		default:
			continue
		}
		out = append(out, winSession{User: "(session user)", Name: windows.UTF16PtrToString(s.WindowStationName), ID: s.SessionID, State: state})
	}
	return out, nil
}
