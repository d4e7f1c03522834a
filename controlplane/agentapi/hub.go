package agentapi

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// revokeNotifyChannel announces revoked agent ids to every replica.
const revokeNotifyChannel = "lanyard_agent_revoked"

// hub holds this replica's open agent streams and delivers commands to them.
type hub struct {
	s        *Server
	mu       sync.Mutex
	byAgent  map[string]*conn
	byDevice map[string]*conn
	seenMu   sync.Mutex
	seenIDs  map[string]struct{}
	// recent holds the commands this replica claimed in the last minute or so, so their
	// announcement (which reaches this replica too) is not acted on again.
	recentMu sync.Mutex
	recent   map[string]time.Time
}

// recentClaims bounds the recent map; older entries are dropped when it is full.
const recentClaims = 4096

func (h *hub) claimed(id string) {
	h.recentMu.Lock()
	defer h.recentMu.Unlock()
	now := time.Now()
	if len(h.recent) >= recentClaims {
		for k, at := range h.recent {
			if now.Sub(at) > time.Minute {
				delete(h.recent, k)
			}
		}
		if len(h.recent) >= recentClaims {
			clear(h.recent)
		}
	}
	h.recent[id] = now
}

func (h *hub) claimedHere(id string) bool {
	h.recentMu.Lock()
	defer h.recentMu.Unlock()
	_, ok := h.recent[id]
	return ok
}

func newHub(s *Server) *hub {
	return &hub{s: s, byAgent: map[string]*conn{}, byDevice: map[string]*conn{}, seenIDs: map[string]struct{}{}, recent: map[string]time.Time{}}
}

// conn is one open Connect stream. The handler's goroutine reads it; messages to the
// agent are queued and written in order by whichever goroutine finds the queue idle (the
// handler for its own replies, a short-lived flusher for commands), so an idle stream
// costs one goroutine, not two.
type conn struct {
	h      *hub
	id     identity.Agent
	ctx    context.Context
	cancel context.CancelCauseFunc
	stream agentv1.AgentService_ConnectServer
	// stop ends the gRPC stream itself (its context; endable.go).
	stop context.CancelCauseFunc
	mu   sync.Mutex
	// queue is what waits to be written; flushing says a goroutine is writing it (only
	// that goroutine calls stream.Send). flushed is signalled when it stops.
	queue    []*agentv1.ConnectResponse
	flushing bool
	flushed  sync.Cond
	device   string
	// started is when the stream opened: a command sent before it was sent on an older
	// stream and may be lost, one sent after it went out on this stream.
	started time.Time
	// version and mode are what the stream's Hello announced; a result on a stream that
	// announced a test knob never counts as done.
	version string
	mode    store.AgentMode
}

// maxQueued bounds what waits for an agent that does not read its stream: beyond it the
// stream is ended (the agent reconnects and gets its open commands again).
const maxQueued = 64

// info is what applyResult needs to know about the stream a result came on.
func (c *conn) info() streamInfo {
	return streamInfo{deviceID: c.deviceID(), version: c.version, mode: c.mode}
}

func (c *conn) deviceID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.device
}

// send queues a message for the stream and returns at once (a flusher goroutine writes
// it); it reports false when the stream has ended.
func (c *conn) send(m *agentv1.ConnectResponse) bool {
	ok, start := c.enqueue(m)
	if start {
		go c.flush()
	}
	return ok
}

// reply queues a message and, when no one is writing, writes the queue from the calling
// goroutine (the handler's own replies: no goroutine is started for a heartbeat ack).
func (c *conn) reply(m *agentv1.ConnectResponse) bool {
	ok, start := c.enqueue(m)
	if start {
		c.flush()
	}
	return ok
}

// enqueue adds m; start says the caller must flush.
func (c *conn) enqueue(m *agentv1.ConnectResponse) (ok, start bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return false, false
	}
	if len(c.queue) >= maxQueued {
		c.end(status.Error(codes.ResourceExhausted, "the agent is not reading its stream"))
		return false, false
	}
	c.queue = append(c.queue, m)
	if c.flushing {
		return true, false
	}
	c.flushing = true
	return true, true
}

// flush writes the queue in order until it is empty or the stream ends.
func (c *conn) flush() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.ctx.Err() != nil {
			c.queue, c.flushing = nil, false
			c.flushed.Broadcast()
			c.mu.Unlock()
			return
		}
		m := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if err := c.stream.Send(m); err != nil {
			c.cancel(err)
		}
	}
}

// end cancels the stream with cause and ends it: the handler's Recv returns (see
// endable.go), the handler returns cause's status, and a Send waiting on a peer that
// stopped reading gives up.
func (c *conn) end(cause error) {
	c.cancel(cause)
	c.stop(cause)
}

// waitFlushed waits until no goroutine writes the stream: the handler must not return
// while one does.
func (c *conn) waitFlushed() {
	c.mu.Lock()
	for c.flushing {
		c.flushed.Wait()
	}
	c.mu.Unlock()
}

func (h *hub) register(ctx context.Context, stream agentv1.AgentService_ConnectServer, id identity.Agent, deviceID string, hello *agentv1.Hello) *conn {
	cctx, cancel := context.WithCancelCause(ctx)
	c := &conn{h: h, id: id, ctx: cctx, cancel: cancel, stream: stream, stop: endStream(ctx), device: deviceID, started: time.Now(),
		version: hello.GetAgentVersion(), mode: modeOf(hello.GetMode())}
	c.flushed.L = &c.mu
	h.mu.Lock()
	old := h.byAgent[id.AgentID]
	h.byAgent[id.AgentID] = c
	if deviceID != "" {
		h.byDevice[deviceID] = c
	}
	h.mu.Unlock()
	if old != nil {
		old.end(status.Error(codes.Aborted, "replaced by a newer stream of the same agent"))
	}
	return c
}

func (h *hub) unregister(c *conn) {
	c.end(errors.New("stream closed"))
	c.waitFlushed()
	h.mu.Lock()
	current := h.byAgent[c.id.AgentID] == c
	if current {
		delete(h.byAgent, c.id.AgentID)
	}
	if d := c.deviceID(); d != "" && h.byDevice[d] == c {
		delete(h.byDevice, d)
	}
	h.mu.Unlock()
	if current {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := h.s.presence.apply(ctx, presence{agentID: c.id.AgentID, online: false}); err != nil {
			h.s.cfg.Logger.Warn("mark agent offline failed", "agent_id", c.id.AgentID, "err", err)
		}
	}
}

// linked records that an agent's reports now belong to deviceID and delivers that
// device's open commands.
func (h *hub) linked(ctx context.Context, agentID, deviceID string) {
	h.mu.Lock()
	c := h.byAgent[agentID]
	changed := false
	if c != nil {
		c.mu.Lock()
		if c.device != deviceID {
			if h.byDevice[c.device] == c {
				delete(h.byDevice, c.device)
			}
			c.device, changed = deviceID, true
		}
		c.mu.Unlock()
		h.byDevice[deviceID] = c
	}
	h.mu.Unlock()
	if changed {
		h.deliverOpen(ctx, c)
	}
}

func (h *hub) connFor(deviceID string) *conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byDevice[deviceID]
}

// cutOff ends the streams of revoked agents with Unauthenticated.
func (h *hub) cutOff(ids []string) {
	h.mu.Lock()
	var cs []*conn
	for _, id := range ids {
		if c := h.byAgent[id]; c != nil {
			cs = append(cs, c)
		}
	}
	h.mu.Unlock()
	for _, c := range cs {
		h.s.cfg.Logger.Info("cutting off revoked agent", "agent_id", c.id.AgentID)
		c.end(errRevoked)
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	cs := make([]*conn, 0, len(h.byAgent))
	for _, c := range h.byAgent {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.end(status.Error(codes.Unavailable, "server shutting down"))
	}
}

func (h *hub) seen(agentID string) {
	h.seenMu.Lock()
	h.seenIDs[agentID] = struct{}{}
	h.seenMu.Unlock()
}

// flushSeen writes the heartbeats seen since the last flush in batches.
func (h *hub) flushSeen(ctx context.Context) {
	h.seenMu.Lock()
	ids := make([]string, 0, len(h.seenIDs))
	for id := range h.seenIDs {
		ids = append(ids, id)
	}
	h.seenIDs = map[string]struct{}{}
	h.seenMu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := h.s.db.TouchAgents(ctx, time.Now(), ids, nil); err != nil {
		h.s.cfg.Logger.Warn("record heartbeats failed", "count", len(ids), "err", err)
	}
}

// deliverOpen sends a device's queued and unreceived commands on a (new) stream.
func (h *hub) deliverOpen(ctx context.Context, c *conn) {
	dev := c.deviceID()
	if dev == "" {
		return
	}
	cmds, err := h.s.db.OpenAgentCommands(ctx, c.id.OrgID, dev)
	if err != nil {
		h.s.cfg.Logger.Warn("load open commands failed", "device_id", dev, "err", err)
		return
	}
	for _, cmd := range cmds {
		if cmd.State == store.CommandSent && cmd.SentAt != nil && !cmd.SentAt.Before(c.started) {
			continue // already sent on this stream
		}
		h.deliver(ctx, c, cmd)
	}
}

// deliver claims a queued command for this replica (queued → sent is a conditional
// update, so exactly one replica wins) and sends it. A command already sent is sent again:
// the stream that carried it may have died before the agent read it; agents dedupe by id.
func (h *hub) deliver(ctx context.Context, c *conn, cmd store.DeviceCommand) {
	if cmd.OrgID != c.id.OrgID || cmd.Channel != store.ChannelAgent {
		return
	}
	from := []string{store.CommandQueued}
	if cmd.State == store.CommandSent {
		from = []string{store.CommandSent}
	} else if cmd.State != store.CommandQueued {
		return
	}
	sent, err := h.s.db.TransitionDeviceCommand(ctx, cmd.OrgID, cmd.ID, store.CommandUpdate{From: from, To: store.CommandSent, AgentID: c.id.AgentID})
	if errors.Is(err, store.ErrCommandState) {
		return // another replica or an earlier delivery claimed it
	}
	if err != nil {
		h.s.cfg.Logger.Warn("claim command failed", "command_id", cmd.ID, "err", err)
		return
	}
	h.sendClaimed(ctx, c, sent)
}

// sendClaimed writes a command this replica claimed for c (state sent) on c's stream.
func (h *hub) sendClaimed(ctx context.Context, c *conn, sent store.DeviceCommand) {
	h.claimed(sent.ID)
	msg, err := h.s.Commands.toProto(ctx, sent)
	if err != nil {
		h.s.cfg.Logger.Error("encode command failed", "command_id", sent.ID, "err", err)
		return
	}
	if !c.send(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_Command{Command: msg}}) {
		// The stream ended. A newer one of the same device, opened while the command was
		// being claimed, read its open commands before this one existed: send it there.
		if nc := h.connFor(c.deviceID()); nc != nil && nc != c {
			h.deliver(ctx, nc, sent)
			return
		}
		h.s.cfg.Logger.Info("stream ended before the command was sent; it is resent at next connect", "command_id", sent.ID)
	}
}

// modeOf reads an announced agent mode.
func modeOf(m *agentv1.AgentMode) store.AgentMode {
	return store.AgentMode{DryRun: m.GetDryRun(), SerialOverridden: m.GetSerialOverridden()}
}

// kick delivers a command that was just queued, when this replica holds its device's stream.
func (h *hub) kick(ctx context.Context, cmd store.DeviceCommand) {
	if cmd.Channel != store.ChannelAgent || cmd.State != store.CommandQueued {
		return
	}
	if c := h.connFor(cmd.DeviceID); c != nil {
		h.deliver(ctx, c, cmd)
	}
}

// onNotify acts on a command announced at commit (by any replica). Only the replica
// holding the device's stream needs to read it, and not when it already claimed it itself
// (the in-process kick of a command created here): both skips save a read and a claim
// attempt per command. Neither can miss a command: a stream registered after the check
// reads its open commands after the announcing commit, and the poll is the backstop.
func (h *hub) onNotify(ctx context.Context, payload string) {
	id, dev := store.CommandNotice(payload)
	if dev != "" && h.connFor(dev) == nil {
		return
	}
	if h.claimedHere(id) {
		return
	}
	cmd, err := h.s.db.GetDeviceCommandByID(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.s.cfg.Logger.Warn("load notified command failed", "command_id", id, "err", err)
		}
		return
	}
	h.kick(ctx, cmd)
}

// pollQueued is the backstop for a missed NOTIFY (or SQLite, which has none across processes).
func (h *hub) pollQueued(ctx context.Context) {
	h.mu.Lock()
	n := len(h.byDevice)
	h.mu.Unlock()
	if n == 0 {
		return
	}
	cmds, err := h.s.db.QueuedAgentCommandIDs(ctx, 1000)
	if err != nil {
		h.s.cfg.Logger.Warn("poll queued commands failed", "err", err)
		return
	}
	for _, cmd := range cmds {
		h.kick(ctx, cmd)
	}
}

func (h *hub) notifyRevoked(ctx context.Context, ids []string) {
	if h.s.db.Dialect != store.Postgres {
		return
	}
	for _, id := range ids {
		if _, err := h.s.db.SQL.ExecContext(ctx, `SELECT pg_notify($1, $2)`, revokeNotifyChannel, id); err != nil {
			h.s.cfg.Logger.Warn("notify revocation failed (the poll catches up)", "agent_id", id, "err", err)
		}
	}
}

// listen follows Postgres notifications until ctx ends, reconnecting with backoff. On
// SQLite it returns at once: there the poll and in-process kicks do the work.
func (h *hub) listen(ctx context.Context) {
	if h.s.db.Pool == nil {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		h.s.cfg.Logger.Warn("notification listener stopped; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
		// Anything announced while disconnected is caught by the poll.
		h.pollQueued(ctx)
	}
}

func (h *hub) listenOnce(ctx context.Context) error {
	pc, err := h.s.db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer pc.Release()
	for _, ch := range []string{store.CommandNotifyChannel, revokeNotifyChannel} {
		if _, err := pc.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	for {
		n, err := pc.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case store.CommandNotifyChannel:
			go h.onNotify(ctx, n.Payload)
		case revokeNotifyChannel:
			h.s.revoked.add(n.Payload)
			h.cutOff([]string{n.Payload})
		}
	}
}
