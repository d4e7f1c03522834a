package agentapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// Channel carries device commands to devices. The agent channel is built in; the Apple MDM
// capability registers its own with Commands.RegisterChannel. A channel that reports
// Supports(device) wins over the agent channel (so Macs enrolled in MDM get MDM commands).
//
// Dispatch is called after the command row exists in state queued (channel = Name()). The
// channel then owns delivery and reports progress with store.DB.TransitionDeviceCommand
// (queued → sent → received → running → done | failed | simulated), which audits each
// transition.
type Channel interface {
	Name() string
	Supports(ctx context.Context, d domain.Device) bool
	Dispatch(ctx context.Context, cmd store.DeviceCommand) error
}

// Commands is the shared device command service for every channel.
type Commands struct {
	db       *store.DB
	ca       *pki.CA
	hub      *hub
	cfg      Config
	mu       sync.RWMutex
	channels []Channel
	agent    Channel
}

func newCommands(db *store.DB, ca *pki.CA, h *hub, cfg Config) *Commands {
	return &Commands{db: db, ca: ca, hub: h, cfg: cfg, agent: agentChannel{h: h}}
}

// RegisterChannel adds a channel that takes precedence over the agent channel for the
// devices it supports.
func (c *Commands) RegisterChannel(ch Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.channels = append(c.channels, ch)
}

func (c *Commands) channelFor(ctx context.Context, d domain.Device) Channel {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, ch := range c.channels {
		if ch.Supports(ctx, d) {
			return ch
		}
	}
	return c.agent
}

func (c *Commands) channelNamed(name string) Channel {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, ch := range c.channels {
		if ch.Name() == name {
			return ch
		}
	}
	return c.agent
}

// agentChannel delivers over agent streams: a NOTIFY (sent at commit) wakes the replica
// holding the stream; the in-process kick covers SQLite and this replica.
type agentChannel struct{ h *hub }

func (agentChannel) Name() string                                 { return store.ChannelAgent }
func (agentChannel) Supports(context.Context, domain.Device) bool { return true }
func (a agentChannel) Dispatch(ctx context.Context, cmd store.DeviceCommand) error {
	a.h.kick(ctx, cmd)
	return nil
}

// SubmitRequest is one admin action on a device.
type SubmitRequest struct {
	Type           string
	Params         map[string]string
	Confirm        string
	IdempotencyKey string
	TTL            time.Duration
}

// Errors the admin API maps to 4xx.
var (
	ErrBadCommand      = fmt.Errorf("%w: bad command", store.ErrInvalidInput)
	ErrConfirmMismatch = errors.New("wipe confirmation does not match the device serial number")
	// ErrSelfApproval: the two-person rule counts people, not tokens.
	ErrSelfApproval = errors.New("a wipe must be approved by a different person: you created it")
	// ErrSelfApprovalOtherToken is ErrSelfApproval when the creator used another token.
	ErrSelfApprovalOtherToken = fmt.Errorf("%w (with another token)", ErrSelfApproval)
	// ErrUnlockOverMDM: Apple's DeviceLock has no remote undo.
	ErrUnlockOverMDM = errors.New("a Mac locked through MDM is unlocked at the Mac with its PIN " +
		"(GET /api/v1/mdm/commands/{id}/pin reveals it); Lanyard cannot unlock it remotely")
)

// MacNeedsMDM is the reason a lock, unlock or wipe for a Mac without a live MDM
// enrollment fails at once: the agent on macOS cannot lock or erase it.
const MacNeedsMDM = "macOS: lock and wipe need an MDM enrollment; this Mac has only the agent"

var commandTypes = map[string]agentv1.CommandType{
	store.CommandLock: agentv1.CommandType_COMMAND_TYPE_LOCK, store.CommandWipe: agentv1.CommandType_COMMAND_TYPE_WIPE,
	store.CommandMessage: agentv1.CommandType_COMMAND_TYPE_MESSAGE, store.CommandCollectInventory: agentv1.CommandType_COMMAND_TYPE_COLLECT_INVENTORY,
	store.CommandUnlock: agentv1.CommandType_COMMAND_TYPE_UNLOCK,
}

var allowedParams = map[string][]string{
	store.CommandLock: {"message"}, store.CommandWipe: {}, store.CommandMessage: {"title", "body"}, store.CommandCollectInventory: {},
	store.CommandUnlock: {},
}

// Submit creates a command for a device and hands it to its channel. A repeated
// idempotency key returns the first command (created == false) and dispatches nothing.
//
// Unlock goes over the agent channel only (ErrUnlockOverMDM for a Mac enrolled in MDM).
// A lock, unlock or wipe for a Mac without a live MDM enrollment is created failed
// (MacNeedsMDM), audited, instead of going to an agent that cannot run it. A wipe
// carries allow_best_effort when the org's wipe_allow_best_effort setting is on.
func (c *Commands) Submit(ctx context.Context, org domain.Org, deviceID string, req SubmitRequest) (store.DeviceCommand, bool, error) {
	if _, ok := commandTypes[req.Type]; !ok {
		return store.DeviceCommand{}, false, fmt.Errorf("%w: type must be one of lock, unlock, wipe, message, collect_inventory", ErrBadCommand)
	}
	for k, v := range req.Params {
		ok := false
		for _, a := range allowedParams[req.Type] {
			ok = ok || a == k
		}
		if !ok {
			return store.DeviceCommand{}, false, fmt.Errorf("%w: %s takes no parameter %q", ErrBadCommand, req.Type, k)
		}
		if len(v) > 1024 {
			return store.DeviceCommand{}, false, fmt.Errorf("%w: parameter %q is longer than 1024 characters", ErrBadCommand, k)
		}
	}
	if req.Type == store.CommandMessage && strings.TrimSpace(req.Params["body"]) == "" {
		return store.DeviceCommand{}, false, fmt.Errorf("%w: message needs params.body", ErrBadCommand)
	}
	if len(req.IdempotencyKey) > 128 {
		return store.DeviceCommand{}, false, fmt.Errorf("%w: idempotency_key is longer than 128 characters", ErrBadCommand)
	}
	d, err := c.db.GetDevice(ctx, org.ID, deviceID)
	if err != nil {
		return store.DeviceCommand{}, false, err
	}
	if req.Type == store.CommandWipe {
		want := strings.ToUpper(strings.TrimSpace(req.Confirm))
		if want == "" || want != d.SerialNumber {
			return store.DeviceCommand{}, false, ErrConfirmMismatch
		}
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = c.cfg.CommandTTL
	}
	ch := c.channelFor(ctx, d)
	if req.Type == store.CommandUnlock && ch.Name() != store.ChannelAgent {
		return store.DeviceCommand{}, false, ErrUnlockOverMDM
	}
	params := map[string]string{}
	for k, v := range req.Params {
		params[k] = v
	}
	if req.Type == store.CommandWipe && org.Settings.WipeAllowBestEffort {
		params["allow_best_effort"] = "true"
	}
	cmd := store.DeviceCommand{OrgID: org.ID, DeviceID: d.ID, Type: req.Type, Params: params, IdempotencyKey: req.IdempotencyKey,
		Channel: ch.Name(), TargetSerial: d.SerialNumber, ExpiresAt: time.Now().Add(ttl), State: store.CommandQueued}
	switch {
	case needsProof(req.Type) && ch.Name() == store.ChannelAgent && d.Platform == domain.PlatformMacOS:
		cmd.State, cmd.Error = store.CommandFailed, MacNeedsMDM
	case req.Type == store.CommandWipe && org.Settings.WipeRequiresApproval:
		cmd.State = store.CommandAwaitingApproval
	}
	// When this replica holds the device's stream, the command is claimed for it in the
	// transaction that creates it: one commit before the agent has it, not two.
	var via *conn
	if ac, ok := ch.(agentChannel); ok && cmd.State == store.CommandQueued {
		if via = ac.h.connFor(d.ID); via != nil && via.id.OrgID != org.ID {
			via = nil
		}
	}
	var created bool
	if via != nil {
		created, err = c.db.CreateClaimedDeviceCommand(ctx, &cmd, via.id.AgentID)
	} else {
		created, err = c.db.CreateDeviceCommand(ctx, &cmd)
	}
	if err != nil || !created {
		return cmd, created, err
	}
	switch {
	case via != nil && cmd.State == store.CommandSent:
		ch.(agentChannel).h.sendClaimed(ctx, via, cmd)
	case cmd.State == store.CommandQueued:
		c.dispatch(ctx, ch, cmd)
	}
	return cmd, true, nil
}

func (c *Commands) dispatch(ctx context.Context, ch Channel, cmd store.DeviceCommand) {
	if err := ch.Dispatch(ctx, cmd); err != nil {
		// The command stays queued; a failed dispatch is recorded on it so an admin sees it.
		c.cfg.Logger.Error("dispatch failed", "command_id", cmd.ID, "channel", ch.Name(), "err", err)
		if _, terr := c.db.TransitionDeviceCommand(ctx, cmd.OrgID, cmd.ID, store.CommandUpdate{
			From: []string{store.CommandQueued}, To: store.CommandFailed, Error: "dispatch: " + err.Error()}); terr != nil {
			c.cfg.Logger.Error("record dispatch failure", "command_id", cmd.ID, "err", terr)
		}
	}
}

// Approve releases a wipe waiting for a second admin. The approver must be a different
// person from its creator: a second token, or a console session, of the same person is
// refused.
func (c *Commands) Approve(ctx context.Context, orgID, id string) (store.DeviceCommand, error) {
	cmd, err := c.db.GetDeviceCommand(ctx, orgID, id)
	if err != nil {
		return cmd, err
	}
	actor := domain.ActorFrom(ctx)
	approver := actor.ID
	if approver == cmd.CreatedBy {
		return cmd, ErrSelfApproval
	}
	creator, err := c.creatorPerson(ctx, cmd)
	if err != nil {
		return cmd, err
	}
	if creator != "" && creator == personOf(actor) {
		return cmd, ErrSelfApprovalOtherToken
	}
	cmd, err = c.db.TransitionDeviceCommand(ctx, orgID, id, store.CommandUpdate{
		From: []string{store.CommandAwaitingApproval}, To: store.CommandQueued, Approver: approver})
	if err != nil {
		return cmd, err
	}
	c.dispatch(ctx, c.channelNamed(cmd.Channel), cmd)
	return cmd, nil
}

// personOf names the person behind an actor: the user, or the actor itself when it has no
// person (a token without an owner, a system actor).
func personOf(a domain.Actor) string {
	if a.UserID != "" {
		return "user:" + a.UserID
	}
	return a.ID
}

// creatorPerson names the person who created cmd. Rows from before commands recorded it
// resolve "token:<id>" to that token's owner.
func (c *Commands) creatorPerson(ctx context.Context, cmd store.DeviceCommand) (string, error) {
	if cmd.CreatedByUser != "" {
		return "user:" + cmd.CreatedByUser, nil
	}
	if uid, ok := strings.CutPrefix(cmd.CreatedBy, "user:"); ok {
		return "user:" + uid, nil
	}
	if tid, ok := strings.CutPrefix(cmd.CreatedBy, "token:"); ok {
		uid, err := c.db.TokenUserID(ctx, cmd.OrgID, tid)
		if err != nil {
			return "", err
		}
		if uid != "" {
			return "user:" + uid, nil
		}
	}
	return cmd.CreatedBy, nil
}

// Cancel stops a command that has not been sent yet.
func (c *Commands) Cancel(ctx context.Context, orgID, id string) (store.DeviceCommand, error) {
	return c.db.TransitionDeviceCommand(ctx, orgID, id, store.CommandUpdate{
		From: []string{store.CommandAwaitingApproval, store.CommandQueued}, To: store.CommandCanceled, Error: "canceled by " + domain.ActorFrom(ctx).ID})
}

var resultJSON = protojson.MarshalOptions{UseProtoNames: true}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// toProto renders a command for the agent: a lock names the BitLocker protectors whose
// recovery password the server holds (read at delivery, so a key escrowed after the
// submit counts); a wipe carries the org's best-effort permission and a signed second
// confirmation.
func (c *Commands) toProto(ctx context.Context, cmd store.DeviceCommand) (*agentv1.Command, error) {
	t := commandTypes[cmd.Type]
	m := &agentv1.Command{Id: cmd.ID, Type: t, TargetSerial: cmd.TargetSerial, Params: cmd.Params, IdempotencyKey: cmd.IdempotencyKey,
		IssuedAt: timestamppb.New(cmd.CreatedAt), ExpiresAt: timestamppb.New(cmd.ExpiresAt)}
	switch cmd.Type {
	case store.CommandLock:
		ids, err := c.db.EscrowedProtectorIDs(ctx, cmd.OrgID, cmd.DeviceID, store.RecoveryKindBitLocker)
		if err != nil {
			return nil, err
		}
		m.TypedParams = &agentv1.Command_Lock{Lock: &agentv1.LockParams{Message: cmd.Params["message"], EscrowedProtectorIds: ids}}
	case store.CommandMessage:
		m.TypedParams = &agentv1.Command_Message{Message: &agentv1.MessageParams{Title: cmd.Params["title"], Body: cmd.Params["body"]}}
	case store.CommandWipe:
		m.TypedParams = &agentv1.Command_Wipe{Wipe: &agentv1.WipeParams{ConfirmSerial: cmd.TargetSerial,
			AllowBestEffort: cmd.Params["allow_best_effort"] == "true"}}
		nonce := make([]byte, 16)
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		n := hex.EncodeToString(nonce)
		payload := identity.ConfirmationPayload(cmd.ID, t.String(), cmd.TargetSerial, n, cmd.ExpiresAt)
		sig, chain, err := c.ca.SignPayload(payload)
		if err != nil {
			return nil, err
		}
		m.Confirmation = &agentv1.Confirmation{Nonce: n, ExpiresAt: timestamppb.New(cmd.ExpiresAt), Signature: sig, SignerChainDer: chain}
	}
	return m, nil
}
