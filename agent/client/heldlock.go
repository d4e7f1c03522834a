package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/internal/securefs"
)

// heldLockJSON marks a device held locked: written after a DONE lock,
// removed after a DONE unlock. While it exists the agent runs the lock again
// at every start, so what a reboot or a local admin undid is put back.
const heldLockJSON = "held-lock.json"

// HeldLock is held-lock.json.
type HeldLock struct {
	CommandID string    `json:"command_id"`
	Message   string    `json:"message,omitempty"`
	LockedAt  time.Time `json:"locked_at"`
}

// ReadHeldLock reads held-lock.json from a state directory; ok is false
// when the device is not held locked.
func ReadHeldLock(stateDir string) (h HeldLock, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(stateDir, heldLockJSON))
	if errors.Is(err, os.ErrNotExist) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("client: %w", err)
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, false, fmt.Errorf("client: parse %s: %w", heldLockJSON, err)
	}
	if h.CommandID == "" {
		return h, false, fmt.Errorf("client: %s names no command", heldLockJSON)
	}
	return h, true, nil
}

func (s Store) saveHeldLock(h HeldLock) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	return securefs.WriteFile(s.path(heldLockJSON), append(b, '\n'))
}

func (s Store) removeHeldLock() error {
	if err := os.Remove(s.path(heldLockJSON)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// heldLockID is the lock command holding the device ("" when none), for Hello.
func (a *Agent) heldLockID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held
}

// recordLockOutcome keeps held-lock.json in step with a finished command:
// a DONE lock holds the device, a DONE unlock releases it. Anything else
// changes nothing (a failed unlock leaves the device held).
func (a *Agent) recordLockOutcome(cmd actions.Command, res actions.Result) {
	if res.State != actions.Done || cmd.Reassert {
		return
	}
	switch cmd.Kind {
	case actions.Lock:
		h := HeldLock{CommandID: cmd.ID, Message: cmd.Message, LockedAt: res.Finished}
		if err := a.store.saveHeldLock(h); err != nil {
			// The lock holds now, but would not be re-asserted after a reboot.
			a.log.Error("device locked, but the held-lock record could not be written; the lock will not be re-asserted at start",
				"command_id", cmd.ID, "err", err)
		}
		a.mu.Lock()
		a.held = cmd.ID
		a.mu.Unlock()
		a.status.update(func(s *Status) { s.Locked, s.LockedByCommandID, s.LockedAt = true, cmd.ID, h.LockedAt })
	case actions.Unlock:
		if err := a.store.removeHeldLock(); err != nil {
			a.log.Error("device unlocked, but the held-lock record could not be removed; the lock would be re-asserted at start",
				"command_id", cmd.ID, "err", err)
			return
		}
		a.mu.Lock()
		a.held = ""
		a.mu.Unlock()
		a.status.update(func(s *Status) {
			s.Locked, s.LockedByCommandID, s.LockedAt = false, "", time.Time{}
			s.LockReassertedAt, s.LockReassertState, s.LockReassertError = time.Time{}, "", ""
		})
	}
}

// reassertHeldLock runs the held lock again (before the agent connects, so
// nobody gets a window after boot) with the re-assert runner. Nothing is
// reported to the server for it: the lock command already has its result,
// and Hello.locked_by_command_id says the device is still held.
func (a *Agent) reassertHeldLock(ctx context.Context) {
	h, ok, err := ReadHeldLock(a.store.Dir)
	if err != nil {
		// A damaged record must not silently release the device: keep it
		// held under an unknown id and say so.
		a.log.Error("held-lock record unreadable; treating the device as locked", "err", err)
		h, ok = HeldLock{CommandID: "unknown"}, true
	}
	if !ok {
		return
	}
	a.mu.Lock()
	a.held = h.CommandID
	a.mu.Unlock()
	serial, hwuuid := a.serial(), a.hardwareUUID()
	cmd := actions.Command{ID: "reassert:" + h.CommandID, Kind: actions.Lock, Reassert: true,
		TargetSerial: actions.Identity(serial, hwuuid), Message: h.Message}
	// Never a dry run: the device is locked for real, whatever knobs a test
	// build has.
	ex := &actions.Executor{Serial: serial, HardwareUUID: hwuuid, Planner: a.o.Planner, Runner: a.o.ReassertRunner,
		Mode: actions.Mode{SerialOverridden: a.mode.SerialOverridden}}
	res := ex.Execute(ctx, cmd)
	log := a.log.With("lock_command_id", h.CommandID, "state", res.State)
	var found, bad []string
	if res.Evidence != nil {
		for _, c := range res.Evidence.Checks {
			found = append(found, fmt.Sprintf("%s: %s", c.Name, c.Observed))
			if !c.OK {
				bad = append(bad, fmt.Sprintf("%s: found %q, want %q", c.Name, c.Observed, c.Expected))
			}
		}
	}
	if res.State == actions.Done {
		log.Info("held lock re-asserted", "checks", strings.Join(found, "; "))
	} else {
		log.Warn("held lock re-asserted, but it is not proven to hold", "error", res.Error,
			"failed_checks", strings.Join(bad, "; "), "checks", strings.Join(found, "; "))
	}
	a.status.update(func(s *Status) {
		s.Locked, s.LockedByCommandID, s.LockedAt = true, h.CommandID, h.LockedAt
		s.LockReassertedAt, s.LockReassertState, s.LockReassertError = res.Finished, string(res.State), res.Error
	})
}
