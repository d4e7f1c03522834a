package lifecycle

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// The interfaces below are what lifecycle needs from other capabilities. They are
// declared here (consumer side) and implemented by adapters in controlplane/server
// or by the capability packages themselves.

// Command states lifecycle classifies: the shared device command model's
// (store/commands.go is the one place they are defined).
const (
	CommandQueued    = store.CommandQueued
	CommandSent      = store.CommandSent
	CommandReceived  = store.CommandReceived
	CommandRunning   = store.CommandRunning
	CommandDone      = store.CommandDone
	CommandFailed    = store.CommandFailed
	CommandExpired   = store.CommandExpired
	CommandCanceled  = store.CommandCanceled
	CommandSimulated = store.CommandSimulated
)

// Command is a device command as lifecycle sees it.
type Command struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Channel is "agent" or "mdm".
	Channel string `json:"channel,omitempty"`
	// Reason is the device's or the server's reason when the command did not end done
	// ("check account-locked:alice failed: ...", "expired: sent to the device, which never confirmed receipt").
	Reason string `json:"reason,omitempty"`
}

// Done reports whether the device proved the command: over the agent channel its signed
// evidence verified, over MDM the Mac acknowledged it. Nothing else counts as a lock or a
// wipe; "received" only means the device has the command.
func (c Command) Done() bool { return c.State == CommandDone }

// Ended reports whether the command is over without having been done (failed, expired,
// canceled, or simulated by a dry-run agent): it will never lock or wipe anything.
func (c Command) Ended() bool {
	switch c.State {
	case CommandFailed, CommandExpired, CommandCanceled, CommandSimulated:
		return true
	}
	return false
}

// Terminal reports whether the command can change no more.
func (c Command) Terminal() bool { return c.Done() || c.Ended() }

// ErrNoChannel means a device has neither an agent nor an MDM enrollment, so a command
// cannot reach it. Lifecycle turns it into a manual task, never a silent success.
var ErrNoChannel = errors.New("device has no agent and no MDM enrollment")

// DeviceCommander queues lock, wipe and unlock commands through the agent or MDM
// channel. Calls are idempotent by key: the same key returns the same command. The lock
// PIN is generated and escrowed (encrypted) by the implementation; lifecycle never sees
// it. Unlock exists on the agent channel only (Linux, Windows); a Mac locked through MDM
// is unlocked at the Mac with its PIN.
type DeviceCommander interface {
	Lock(ctx context.Context, orgID, deviceID, idempotencyKey string) (Command, error)
	Wipe(ctx context.Context, orgID, deviceID, idempotencyKey string) (Command, error)
	Unlock(ctx context.Context, orgID, deviceID, idempotencyKey string) (Command, error)
	CommandStatus(ctx context.Context, orgID, commandID string) (Command, error)
}

// Enroller gets a new device enrolled.
type Enroller interface {
	// AssignADEProfile assigns the org's Automated Device Enrollment profile to a Mac by
	// serial. apps.ErrNotSupported (or ErrNoADE) means ADE is not set up for the org.
	AssignADEProfile(ctx context.Context, orgID, serial, employeeID string) error
	// EnrollmentLink returns a link (installer download or enrollment profile) the
	// employee uses to enroll a device of this platform.
	EnrollmentLink(ctx context.Context, orgID, employeeID string, platform domain.Platform) (string, error)
}

// ErrNoADE means ADE is not configured; the engine falls back to an enrollment link.
var ErrNoADE = errors.New("automated device enrollment not configured")

// AppDirectory supplies an org's app rules and connectors.
type AppDirectory interface {
	Rules(ctx context.Context, orgID string) ([]apps.Rule, error)
	// Connectors returns a connector per app name and the revoke mode of each app.
	Connectors(ctx context.Context, orgID string) (apps.Registry, map[string]apps.RevokeMode, error)
}

// VendorAdapter places procurement orders with a vendor. The manual adapter records
// the order and leaves placing it to a person (a manual task).
type VendorAdapter interface {
	Name() string
	// PlaceOrder submits o and returns the vendor's reference ("" for manual).
	// Implementations must be idempotent by o.ID.
	PlaceOrder(ctx context.Context, o store.ProcurementOrder) (vendorRef string, manual bool, err error)
}

// ManualVendor is the vendor adapter that asks a person to order the device.
type ManualVendor struct{}

// Name implements VendorAdapter.
func (ManualVendor) Name() string { return "manual" }

// PlaceOrder implements VendorAdapter: nothing is sent; the order waits for a person.
func (ManualVendor) PlaceOrder(context.Context, store.ProcurementOrder) (string, bool, error) {
	return "", true, nil
}

// StepQueue runs steps (River in production, see river.go).
type StepQueue interface {
	EnqueueSteps(ctx context.Context, steps []store.RunnableStep) error
}

// Clock is the time source; tests inject a fake.
type Clock = domain.Clock

// FakeClock is a settable clock for tests and demos.
type FakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewFakeClock starts a fake clock at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{t: t.UTC()} }

// Now implements Clock.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t.UTC()
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
