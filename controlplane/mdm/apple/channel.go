package apple

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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

// syncDeviceCommand mirrors an MDM intent's progress onto its device_commands row.
func (s *Service) syncDeviceCommand(ctx context.Context, c store.MDMCommand) {
	if c.Source != SourceDeviceCommand {
		return
	}
	var u store.CommandUpdate
	switch c.State {
	case store.MDMCmdSent:
		u = store.CommandUpdate{From: []string{store.CommandQueued}, To: store.CommandSent}
	case store.MDMCmdDone:
		res, _ := json.Marshal(map[string]any{"channel": "mdm", "request_type": c.RequestType, "pin_escrowed": c.SecretSealed != ""})
		u = store.CommandUpdate{From: []string{store.CommandQueued, store.CommandSent, store.CommandAcknowledged}, To: store.CommandDone, Result: res}
	case store.MDMCmdFailed:
		u = store.CommandUpdate{From: []string{store.CommandQueued, store.CommandSent, store.CommandAcknowledged}, To: store.CommandFailed, Error: c.Error}
	case store.MDMCmdExpired:
		u = store.CommandUpdate{From: []string{store.CommandQueued, store.CommandSent, store.CommandAcknowledged}, To: store.CommandExpired, Error: c.Error}
	default:
		return
	}
	if _, err := s.db.TransitionDeviceCommand(ctx, c.OrgID, c.UUID, u); err != nil &&
		!errors.Is(err, store.ErrCommandState) && !strings.Contains(err.Error(), "not found") {
		s.log.Warn("mirror mdm command onto device command", "command_id", c.UUID, "err", err)
	}
}
