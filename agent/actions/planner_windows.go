package actions

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/yusufpapurcu/wmi"
	"golang.org/x/sys/windows"

	"github.com/lanyardhq/lanyard/agent/inventory"
)

// NewPlanner returns the planner for this OS.
func NewPlanner(PlannerOptions) Planner { return windowsPlanner{} }

type windowsPlanner struct{}

type win32UserAccount struct {
	Name     string
	SID      string
	Disabled bool
}

func (windowsPlanner) facts() (WindowsFacts, error) {
	var accts []win32UserAccount
	if err := wmi.Query("SELECT Name, SID, Disabled FROM Win32_UserAccount WHERE LocalAccount = TRUE", &accts); err != nil {
		return WindowsFacts{}, fmt.Errorf("actions: Win32_UserAccount: %w", err)
	}
	var f WindowsFacts
	for _, a := range accts {
		if !a.Disabled && inventory.IsHumanWindowsSID(a.SID) {
			f.Users = append(f.Users, a.Name)
		}
	}
	var info *windows.WTS_SESSION_INFO
	var n uint32
	if err := windows.WTSEnumerateSessions(0, 0, 1, &info, &n); err == nil {
		defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(info)))
		for _, s := range unsafe.Slice(info, n) {
			// Session 0 is services; only active or disconnected user sessions.
			if s.SessionID != 0 && (s.State == windows.WTSActive || s.State == windows.WTSDisconnected) {
				f.Sessions = append(f.Sessions, s.SessionID)
			}
		}
	}
	return f, nil
}

func (p windowsPlanner) Plan(_ context.Context, cmd Command) (Plan, error) {
	switch cmd.Kind {
	case Lock:
		f, err := p.facts()
		if err != nil {
			return Plan{}, err
		}
		return Plan{Steps: WindowsLockPlan(f, cmd.Message)}, nil
	case Wipe:
		return Plan{Steps: WindowsWipePlan()}, nil
	case Message:
		return Plan{Steps: WindowsMessagePlan(cmd.Title, cmd.Message)}, nil
	}
	return Plan{}, fmt.Errorf("%w: %s", ErrUnsupported, cmd.Kind)
}
