package apple

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// SourceDeviceCommand marks MDM intents that carry a row of the shared device_commands
// table (same id), created by POST /api/v1/devices/{id}/actions.
const SourceDeviceCommand = "device_command"

// Channel is the MDM delivery channel of the shared device command model
// (agentapi.Channel): for Macs enrolled in MDM, lock, wipe and collect_inventory go out
// as DeviceLock (with a Lanyard PIN), EraseDevice and DeviceInformation. Register it with
// agentapi's Commands.RegisterChannel(svc.Channel()).
type Channel struct{ s *Service }

// Channel returns the MDM channel of the service.
func (s *Service) Channel() *Channel { return &Channel{s: s} }

// Name is the channel name stored on device_commands.
func (c *Channel) Name() string { return store.ChannelMDM }

// Supports reports whether the device is a Mac with a live MDM enrollment.
func (c *Channel) Supports(ctx context.Context, d domain.Device) bool {
	e, err := c.s.db.MDMGetEnrollmentByDevice(ctx, d.OrgID, d.ID)
	return err == nil && e.Status == "enrolled"
}

// Dispatch turns a queued device command into an MDM command with the same id; the
// device_commands row then follows the Mac's answers (sent, done, failed).
func (c *Channel) Dispatch(ctx context.Context, cmd store.DeviceCommand) error {
	e, err := c.s.db.MDMGetEnrollmentByDevice(ctx, cmd.OrgID, cmd.DeviceID)
	if err != nil {
		return fmt.Errorf("mdm channel: %w", err)
	}
	var spec CommandSpec
	switch cmd.Type {
	case store.CommandLock:
		spec = CommandSpec{RequestType: ReqDeviceLock, Message: cmd.Params["message"]}
	case store.CommandWipe:
		spec = CommandSpec{RequestType: ReqEraseDevice}
	case store.CommandCollectInventory:
		spec = CommandSpec{RequestType: ReqDeviceInformation}
	default:
		return fmt.Errorf("mdm channel: %q has no MDM equivalent on macOS", cmd.Type)
	}
	res, err := c.s.Enqueue(ctx, e, spec, EnqueueOptions{ID: cmd.ID, Source: SourceDeviceCommand, ExpiresAt: cmd.ExpiresAt})
	if err != nil {
		return err
	}
	if res.PushError != nil {
		// Kept queued: the re-push loop retries; the admin sees the reason on the Mac.
		c.s.log.Warn("mdm channel: push failed", "command_id", cmd.ID, "err", res.PushError)
	}
	return nil
}

// mdmOpen are the device_commands states an MDM answer may move a command out of (the
// MDM channel has no received or running: the Mac fetches the command and answers).
var mdmOpen = []string{store.CommandQueued, store.CommandSent, store.CommandReceived, store.CommandRunning}

// syncDeviceCommand mirrors an MDM intent's progress onto its device_commands row. The
// Mac's Acknowledged of DeviceLock or EraseDevice is done: that is what Apple's protocol
// means by it (the Mac accepted the command and carries it out); an erase is then
// confirmed separately (confirmErases).
func (s *Service) syncDeviceCommand(ctx context.Context, c store.MDMCommand) {
	if c.Source != SourceDeviceCommand {
		return
	}
	var u store.CommandUpdate
	switch c.State {
	case store.MDMCmdSent:
		u = store.CommandUpdate{From: []string{store.CommandQueued}, To: store.CommandSent}
	case store.MDMCmdDone:
		res, _ := json.Marshal(map[string]any{"channel": "mdm", "request_type": c.RequestType, "status": "Acknowledged", "pin_escrowed": c.SecretSealed != ""})
		u = store.CommandUpdate{From: mdmOpen, To: store.CommandDone, Result: res}
	case store.MDMCmdFailed:
		reason := c.Error
		if reason == "" {
			reason = "the Mac answered " + c.RequestType + " with an error"
		}
		u = store.CommandUpdate{From: mdmOpen, To: store.CommandFailed, Error: reason}
	case store.MDMCmdExpired:
		u = store.CommandUpdate{From: mdmOpen, To: store.CommandExpired, Error: c.Error}
	default:
		return
	}
	if _, err := s.db.TransitionDeviceCommand(ctx, c.OrgID, c.UUID, u); err != nil &&
		!errors.Is(err, store.ErrCommandState) && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("mirror mdm command onto device command", "command_id", c.UUID, "err", err)
	}
}

// EraseSilence is how long a Mac must stay silent after acknowledging an EraseDevice for
// the erase to count as confirmed: an erased Mac has no MDM identity left and never
// checks in again until it is enrolled anew. A Mac that checks in later than
// eraseContactGrace after its Acknowledged (the answer itself is a check-in) did not
// erase, and the erase stays unconfirmed.
const (
	EraseSilence      = 6 * time.Hour
	eraseContactGrace = 2 * time.Minute
)

// confirmSilentErases confirms the done, unconfirmed MDM erases whose Mac has not
// checked in since it acknowledged them, EraseSilence ago (run by the re-push loop).
func (s *Service) confirmSilentErases(ctx context.Context) {
	es, err := s.db.UnconfirmedMDMErasesBefore(ctx, s.cfg.Now().Add(-EraseSilence), 500)
	if err != nil {
		s.log.Warn("list unconfirmed erases", "err", err)
		return
	}
	ctx = domain.WithActor(ctx, domain.Actor{ID: "system:mdm"})
	for _, e := range es {
		done := e.Command.CompletedAt
		if done == nil || (e.LastSeenAt != nil && e.LastSeenAt.After(done.Add(eraseContactGrace))) {
			continue // the Mac kept talking: not erased
		}
		if _, err := s.db.ConfirmDeviceCommand(ctx, e.Command.OrgID, e.Command.ID, store.ConfirmStoppedCheckingIn); err != nil &&
			!errors.Is(err, store.ErrCommandState) {
			s.log.Warn("confirm erase", "command_id", e.Command.ID, "err", err)
			continue
		}
		s.log.Info("erase confirmed: the Mac stopped checking in", "command_id", e.Command.ID, "device_id", e.Command.DeviceID)
	}
}

// confirmErasesOnReenroll confirms a device's done, unconfirmed MDM erases when one of its
// Macs authenticates anew after the erase was acknowledged: an erased Mac comes back only
// by enrolling again. An Authenticate that follows an identity-renewal profile sent after
// the erase (prev.RenewalAt) is a renewal, not a re-enrollment, and confirms nothing.
func (s *Service) confirmErasesOnReenroll(ctx context.Context, prev *store.MDMEnrollment, now store.MDMEnrollment) {
	if now.DeviceID == "" {
		return
	}
	erases, err := s.db.UnconfirmedMDMErases(ctx, now.OrgID, now.DeviceID)
	if err != nil {
		s.log.Warn("list unconfirmed erases", "device_id", now.DeviceID, "err", err)
		return
	}
	for _, c := range erases {
		if c.CompletedAt == nil {
			continue
		}
		if prev != nil && prev.RenewalAt != nil && prev.RenewalAt.After(*c.CompletedAt) {
			continue
		}
		if _, err := s.db.ConfirmDeviceCommand(ctx, c.OrgID, c.ID, store.ConfirmReenrolled); err != nil && !errors.Is(err, store.ErrCommandState) {
			s.log.Warn("confirm erase", "command_id", c.ID, "err", err)
			continue
		}
		s.log.Info("erase confirmed: the Mac re-enrolled", "command_id", c.ID, "device_id", c.DeviceID)
	}
}
