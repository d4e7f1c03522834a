// Package wiring adapts the other capabilities to the small interfaces lifecycle
// declares: the shared device command model (agentapi.Commands, with the Apple MDM
// channel registered on it) for lock and wipe, and the Apple MDM service for ADE profile
// assignment and enrollment links. It is imported only by controlplane/server (and tests)
// so that lifecycle itself stays free of the agent and MDM dependencies.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Submitter is the part of agentapi.Commands lifecycle uses.
type Submitter interface {
	Submit(ctx context.Context, org domain.Org, deviceID string, req agentapi.SubmitRequest) (store.DeviceCommand, bool, error)
}

// LockMessage is shown on a device locked at offboarding.
const LockMessage = "This device has been locked by your organization. Please contact IT to return it."

// Commander implements lifecycle.DeviceCommander and lifecycle.ChannelInfo over the
// shared command model. A device with neither a live agent nor an MDM enrollment gets
// lifecycle.ErrNoChannel (a manual task), never a command that would wait forever.
type Commander struct {
	DB       *store.DB
	Commands Submitter
}

// Channel implements lifecycle.ChannelInfo: "mdm", "agent" or "" (none).
func (c Commander) Channel(ctx context.Context, orgID, deviceID string) (string, error) {
	if _, err := c.DB.MDMGetEnrollmentByDevice(ctx, orgID, deviceID); err == nil {
		return store.ChannelMDM, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	agents, err := c.DB.ListAgentsForDevice(ctx, orgID, deviceID)
	if err != nil {
		return "", err
	}
	for _, a := range agents {
		if a.RevokedAt == nil {
			return store.ChannelAgent, nil
		}
	}
	return "", nil
}

func (c Commander) submit(ctx context.Context, orgID, deviceID, key string, req agentapi.SubmitRequest) (lifecycle.Command, error) {
	ch, err := c.Channel(ctx, orgID, deviceID)
	if err != nil {
		return lifecycle.Command{}, err
	}
	if ch == "" {
		return lifecycle.Command{}, lifecycle.ErrNoChannel
	}
	org, err := c.DB.GetOrg(ctx, orgID)
	if err != nil {
		return lifecycle.Command{}, err
	}
	req.IdempotencyKey = key
	cmd, _, err := c.Commands.Submit(ctx, org, deviceID, req)
	if err != nil {
		return lifecycle.Command{}, fmt.Errorf("submit %s: %w", req.Type, err)
	}
	return toCommand(cmd), nil
}

// toCommand is the command as lifecycle sees it. States pass through unchanged:
// canceled stays canceled (someone stopped it before the device ran it, which needs
// other advice than a failure), and acknowledged (an old row) is received to lifecycle.
// Reason is the command's error, the device's or the server's words.
func toCommand(cmd store.DeviceCommand) lifecycle.Command {
	return lifecycle.Command{ID: cmd.ID, State: cmd.State, Channel: cmd.Channel, Reason: cmd.Error}
}

// Lock implements lifecycle.DeviceCommander. The MDM channel generates and escrows the
// lock PIN; the agent channel locks the session.
func (c Commander) Lock(ctx context.Context, orgID, deviceID, key string) (lifecycle.Command, error) {
	return c.submit(ctx, orgID, deviceID, key, agentapi.SubmitRequest{Type: store.CommandLock,
		Params: map[string]string{"message": LockMessage}, TTL: 14 * 24 * time.Hour})
}

// Unlock implements lifecycle.DeviceCommander: the agent restores exactly what its lock
// changed (Linux, Windows). A Mac locked with MDM DeviceLock has no remote unlock; the
// command model refuses it and lifecycle tells the admin to use the PIN at the Mac.
func (c Commander) Unlock(ctx context.Context, orgID, deviceID, key string) (lifecycle.Command, error) {
	return c.submit(ctx, orgID, deviceID, key, agentapi.SubmitRequest{Type: store.CommandUnlock, TTL: 14 * 24 * time.Hour})
}

// Wipe implements lifecycle.DeviceCommander (the confirmation is the device serial, as
// the command model requires).
func (c Commander) Wipe(ctx context.Context, orgID, deviceID, key string) (lifecycle.Command, error) {
	d, err := c.DB.GetDevice(ctx, orgID, deviceID)
	if err != nil {
		return lifecycle.Command{}, err
	}
	return c.submit(ctx, orgID, deviceID, key, agentapi.SubmitRequest{Type: store.CommandWipe, Confirm: d.SerialNumber,
		TTL: 30 * 24 * time.Hour})
}

// CommandStatus implements lifecycle.DeviceCommander.
func (c Commander) CommandStatus(ctx context.Context, orgID, id string) (lifecycle.Command, error) {
	cmd, err := c.DB.GetDeviceCommand(ctx, orgID, id)
	if err != nil {
		return lifecycle.Command{}, err
	}
	return toCommand(cmd), nil
}

// ADE is the part of the Apple MDM service used for enrollment.
type ADE interface {
	AssignADEProfile(ctx context.Context, orgID, serial, employeeID string) error
}

// MDMLinks creates Apple MDM enrollment links.
type MDMLinks interface {
	CreateEnrollLink(ctx context.Context, orgID, employeeID, actor string, ttl time.Duration) (string, error)
}

// Enroller implements lifecycle.Enroller: ADE for Macs when the org has an ABM token, an
// MDM enrollment link for other Macs, and an agent installer link for everything else.
type Enroller struct {
	ADE ADE
	// Links makes MDM enrollment links for Macs (nil: Macs get the installer link).
	Links MDMLinks
	// InstallerURL returns the agent installer download for a platform (nil: enrollment
	// of non-Macs becomes a manual task).
	InstallerURL func(ctx context.Context, orgID string, p domain.Platform) (string, error)
}

// AssignADEProfile implements lifecycle.Enroller.
func (e Enroller) AssignADEProfile(ctx context.Context, orgID, serial, employeeID string) error {
	if e.ADE == nil {
		return lifecycle.ErrNoADE
	}
	err := e.ADE.AssignADEProfile(ctx, orgID, serial, employeeID)
	if err != nil && (errors.Is(err, store.ErrNotFound) || strings.Contains(err.Error(), "no ABM server token")) {
		return fmt.Errorf("%w: %v", lifecycle.ErrNoADE, err)
	}
	return err
}

// EnrollmentLink implements lifecycle.Enroller.
func (e Enroller) EnrollmentLink(ctx context.Context, orgID, employeeID string, p domain.Platform) (string, error) {
	if p == domain.PlatformMacOS && e.Links != nil {
		return e.Links.CreateEnrollLink(ctx, orgID, employeeID, "system:lifecycle", 14*24*time.Hour)
	}
	if e.InstallerURL == nil {
		return "", fmt.Errorf("no installer download configured for %s: %w", p, apps.ErrNotSupported)
	}
	return e.InstallerURL(ctx, orgID, p)
}

// AppleLinks adapts apple.Service.CreateEnrollLink to MDMLinks.
type AppleLinks struct{ S *apple.Service }

// CreateEnrollLink implements MDMLinks.
func (a AppleLinks) CreateEnrollLink(ctx context.Context, orgID, employeeID, actor string, ttl time.Duration) (string, error) {
	l, err := a.S.CreateEnrollLink(ctx, orgID, employeeID, actor, ttl)
	return l.URL, err
}

// Deps is what the server hands the lifecycle capability.
type Deps struct {
	DB       *store.DB
	Keys     lifecycle.Keyring
	Jobs     *jobs.Handle
	Registry *jobs.Registry
	// Commands is the shared device command model (agentapi.Commands, with the Apple
	// MDM channel registered on it) that carries lock and wipe; nil: every lock and wipe
	// is a manual task (lifecycle.ErrNoChannel).
	Commands Submitter
	// MDM is the Apple MDM service (ADE profile assignment, Mac enrollment links); nil:
	// no ADE, and Macs get the installer link like other platforms.
	MDM    *apple.Service
	Logger *slog.Logger
	// InstallerURL is the agent installer download per platform (optional).
	InstallerURL func(ctx context.Context, orgID string, p domain.Platform) (string, error)
	// Workers is the lifecycle queue's concurrency (10 when zero).
	Workers int
	// Metrics, when set, gets the engine's Prometheus metrics.
	Metrics prometheus.Registerer
	// Connectors builds app connectors per kind ("scim", "google", ...); a connector
	// of a kind missing here fails its step naming the kind.
	Connectors map[string]apps.Builder
	// Options are extra engine options (clock, config) applied last.
	Options []lifecycle.Option
}

// noCommands is the command model of a server without the agent API.
type noCommands struct{}

func (noCommands) Submit(context.Context, domain.Org, string, agentapi.SubmitRequest) (store.DeviceCommand, bool, error) {
	return store.DeviceCommand{}, false, lifecycle.ErrNoChannel
}

// New builds the lifecycle engine with the real adapters, registers its River worker and
// queue, and returns it. The engine is the capability: it has Routes() and Start(ctx)
// (the outbox/timer loop, run on every replica).
func New(d Deps) *lifecycle.Engine {
	var commands Submitter = noCommands{}
	if d.Commands != nil {
		commands = d.Commands
	}
	enroller := Enroller{InstallerURL: d.InstallerURL}
	if d.MDM != nil {
		enroller.ADE, enroller.Links = d.MDM, AppleLinks{S: d.MDM}
	}
	opts := []lifecycle.Option{lifecycle.WithKeys(d.Keys), lifecycle.WithApps(lifecycle.StoreAppDirectory{DB: d.DB, Keys: d.Keys, Builders: d.Connectors}),
		lifecycle.WithCommander(Commander{DB: d.DB, Commands: commands}),
		lifecycle.WithEnroller(enroller)}
	if d.Logger != nil {
		opts = append(opts, lifecycle.WithLogger(d.Logger))
	}
	if d.Metrics != nil {
		opts = append(opts, lifecycle.WithMetrics(d.Metrics))
	}
	e := lifecycle.New(d.DB, append(opts, d.Options...)...)
	e.Register(d.Registry, d.Workers)
	// App reconciliation every 6 hours: orphans, and terminated people active again.
	e.RegisterReconcile(d.Registry, 0)
	e.SetQueue(e.NewRiverQueue(d.Jobs))
	return e
}
