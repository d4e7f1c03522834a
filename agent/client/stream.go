package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/agent/actions"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// activeStream is the open Connect stream. grpc streams allow one sender at
// a time, so every Send goes through mu.
type activeStream struct {
	mu      sync.Mutex
	s       agentv1.AgentService_ConnectClient
	hbSent  uint64
	hbAcked uint64
	// sent: result id → (state sent, heartbeats sent before it). A result is
	// delivered once a heartbeat sent after it is acknowledged.
	sent map[string]sentResult
	// lastRecv is when the server last sent anything.
	lastRecv time.Time
	interval time.Duration
}

// maxResends bounds how many connections may carry the same unconfirmed result.
const maxResends = 20

type sentResult struct {
	state agentv1.CommandState
	hbSeq uint64
}

func (st *activeStream) send(m *agentv1.ConnectRequest) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s.Send(m)
}

func (a *Agent) heartbeat(st *activeStream) error {
	a.mu.Lock()
	hash := a.reported
	var uptime uint64
	if a.inv != nil {
		uptime = uint64(time.Since(a.inv.BootTime).Seconds())
	}
	a.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.hbSent++
	return st.s.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{
		SentAt: timestamppb.Now(), InventoryHash: hash, UptimeSeconds: uptime,
	}}})
}

func (a *Agent) sendResultOn(st *activeStream, r *agentv1.CommandResult) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.s.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_CommandResult{CommandResult: r}}); err != nil {
		return err
	}
	st.sent[r.GetCommandId()] = sentResult{state: r.GetState(), hbSeq: st.hbSent}
	return nil
}

// deliver stores r (pending) and sends it on the open stream, if any,
// followed by a heartbeat whose acknowledgement confirms delivery. Without
// a stream it goes out after the next Hello. The error is the queue's: a
// result that is not on disk is not kept across a restart.
func (a *Agent) deliver(r *agentv1.CommandResult) error {
	qerr := a.queue.Put(r)
	if qerr != nil {
		a.log.Error("could not queue command result", "command_id", r.GetCommandId(), "err", qerr)
		qerr = fmt.Errorf("client: queue result: %w", qerr)
	}
	a.updatePending()
	a.mu.Lock()
	st := a.stream
	a.mu.Unlock()
	if st == nil {
		return qerr // sent after the next Hello
	}
	if err := a.sendResultOn(st, r); err != nil {
		a.log.Warn("sending command result failed; kept for the next connection", "command_id", r.GetCommandId(), "err", err)
		return qerr
	}
	_ = a.heartbeat(st)
	return qerr
}

func (a *Agent) updatePending() {
	p, _ := a.queue.Pending()
	a.status.update(func(s *Status) { s.PendingResults = len(p) })
}

func (a *Agent) connectLoop(ctx context.Context) {
	bo := backoff{base: a.o.BackoffBase, max: a.o.BackoffMax}
	for {
		started := time.Now()
		welcomed, err := a.runStream(ctx)
		a.mu.Lock()
		a.stream = nil
		a.mu.Unlock()
		if ctx.Err() != nil {
			a.status.update(func(s *Status) { s.Connected = false })
			return
		}
		a.status.update(func(s *Status) {
			s.Connected = false
			if err != nil {
				s.LastError, s.LastErrorAt = err.Error(), time.Now().UTC()
			}
		})
		if welcomed && time.Since(started) > time.Minute {
			bo.reset()
		}
		if status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied {
			a.log.Error("control plane refused this agent (revoked or unknown certificate)", "err", err)
			bo.n = max(bo.n, 6) // do not hammer the server with a revoked identity
		} else {
			a.log.Warn("control stream ended", "err", err)
		}
		if !a.sleepOrKick(ctx, bo.next()) {
			return
		}
	}
}

// sleepOrKick waits d, less when a commit needs the stream now.
func (a *Agent) sleepOrKick(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-a.kick:
	}
	return true
}

// runStream runs one Connect stream until it fails. It reports whether the
// server welcomed the agent.
func (a *Agent) runStream(ctx context.Context) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := a.api.Connect(sctx)
	if err != nil {
		return false, fmt.Errorf("client: connect: %w", err)
	}
	st := &activeStream{s: s, sent: map[string]sentResult{}, lastRecv: time.Now(), interval: a.o.HeartbeatInterval}
	pending, err := a.queue.Pending()
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	hash := a.reported
	a.mu.Unlock()
	hello := &agentv1.Hello{AgentVersion: a.o.Version, InventoryHash: hash, SerialNumber: a.serial(),
		Mode: modeProto(a.mode), LockedByCommandId: a.heldLockID()}
	for _, r := range pending {
		hello.PendingResultIds = append(hello.PendingResultIds, r.GetCommandId())
	}
	if err := st.send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: hello}}); err != nil {
		return false, fmt.Errorf("client: hello: %w", err)
	}
	for _, r := range pending {
		// A result the server never confirms (e.g. it refuses it with
		// PermissionDenied and ends the stream) must not block every
		// future connection: give up on it after maxResends connections.
		a.mu.Lock()
		if a.resends == nil {
			a.resends = map[string]int{}
		}
		a.resends[r.GetCommandId()]++
		n := a.resends[r.GetCommandId()]
		a.mu.Unlock()
		if n > maxResends {
			a.log.Error("dropping a command result the server never confirmed", "command_id", r.GetCommandId(), "attempts", n-1)
			_ = a.queue.MarkDelivered(r.GetCommandId(), r.GetState())
			continue
		}
		if err := a.sendResultOn(st, r); err != nil {
			return false, fmt.Errorf("client: resend result: %w", err)
		}
	}
	a.mu.Lock()
	a.stream = st
	a.mu.Unlock()
	// A result queued between reading pending and publishing the stream
	// was sent nowhere: send what this stream has not carried yet.
	if again, err := a.queue.Pending(); err == nil {
		for _, r := range again {
			st.mu.Lock()
			prev, carried := st.sent[r.GetCommandId()]
			st.mu.Unlock()
			if carried && prev.state == r.GetState() {
				continue
			}
			if err := a.sendResultOn(st, r); err != nil {
				return false, fmt.Errorf("client: resend result: %w", err)
			}
		}
	}
	if err := a.heartbeat(st); err != nil {
		return false, err
	}

	recvErr := make(chan error, 1)
	welcomed := make(chan struct{}, 1)
	tick := time.NewTicker(st.interval)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		recvErr <- a.receive(sctx, st, welcomed)
	}()
	// The receiver handles commands and acks (queue and status writes): it
	// ends before runStream returns, so nothing writes after Run returned.
	defer func() {
		cancel()
		<-recvDone
	}()

	gotWelcome := false
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return gotWelcome, ctx.Err()
		case err := <-recvErr:
			return gotWelcome, err
		case <-welcomed:
			gotWelcome = true
			st.mu.Lock()
			iv := st.interval
			st.mu.Unlock()
			tick.Reset(iv)
			var replica string
			if p, ok := peer.FromContext(s.Context()); ok && p.Addr != nil {
				replica = p.Addr.String()
			}
			a.status.update(func(s *Status) {
				s.Connected, s.ConnectedSince, s.LastError, s.GRPCAddress = true, time.Now().UTC(), "", replica
			})
			a.log.Info("connected to the control plane", "replica", replica)
		case <-tick.C:
			st.mu.Lock()
			silent := time.Since(st.lastRecv)
			iv := st.interval
			st.mu.Unlock()
			if silent > 3*iv+5*time.Second {
				return gotWelcome, fmt.Errorf("client: no message from the server for %s", silent.Round(time.Second))
			}
			if err := a.heartbeat(st); err != nil {
				return gotWelcome, fmt.Errorf("client: heartbeat: %w", err)
			}
		}
	}
}

func (a *Agent) receive(ctx context.Context, st *activeStream, welcomed chan<- struct{}) error {
	for {
		m, err := st.s.Recv()
		if err != nil {
			return err
		}
		st.mu.Lock()
		st.lastRecv = time.Now()
		st.mu.Unlock()
		switch msg := m.GetMsg().(type) {
		case *agentv1.ConnectResponse_Welcome:
			w := msg.Welcome
			if sec := w.GetHeartbeatIntervalSeconds(); sec > 0 {
				st.mu.Lock()
				st.interval = time.Duration(sec) * time.Second
				st.mu.Unlock()
			}
			a.status.update(func(s *Status) {
				if w.GetDeviceId() != "" {
					s.DeviceID = w.GetDeviceId()
				}
			})
			if w.GetFullInventoryRequired() {
				a.triggerFull()
			}
			select {
			case welcomed <- struct{}{}:
			default:
			}
		case *agentv1.ConnectResponse_HeartbeatAck:
			a.onHeartbeatAck(st, msg.HeartbeatAck)
		case *agentv1.ConnectResponse_Command:
			a.onCommand(ctx, msg.Command)
		}
	}
}

func (a *Agent) onHeartbeatAck(st *activeStream, ack *agentv1.HeartbeatAck) {
	st.mu.Lock()
	st.hbAcked++
	var done []string
	states := map[string]agentv1.CommandState{}
	for id, r := range st.sent {
		if r.hbSeq < st.hbAcked {
			done = append(done, id)
			states[id] = r.state
			delete(st.sent, id)
		}
	}
	st.mu.Unlock()
	for _, id := range done {
		if err := a.queue.MarkDelivered(id, states[id]); err != nil {
			a.log.Warn("queue", "err", err)
		}
		a.notifyDelivered(id, states[id])
	}
	if len(done) > 0 {
		a.updatePending()
	}
	a.status.update(func(s *Status) { s.LastHeartbeatAck = time.Now().UTC() })
	if ack.GetFullInventoryRequired() {
		a.triggerFull()
	}
}

// onCommand answers a redelivered command from the queue, handles
// collect-inventory itself and hands lock/unlock/wipe/message to the worker
// once RECEIVED is stored on disk (a restart then turns it into FAILED
// instead of losing the command).
func (a *Agent) onCommand(ctx context.Context, c *agentv1.Command) {
	log := a.log.With("command_id", c.GetId(), "type", c.GetType().String())
	if c.GetId() == "" {
		log.Warn("command without id ignored")
		return
	}
	if prev, ok := a.queue.Get(c.GetId()); ok {
		log.Info("command already seen; resending its last result", "state", prev.GetState().String())
		_ = a.deliver(prev)
		return
	}
	a.status.update(func(s *Status) { s.CommandsHandled++ })
	if c.GetType() == agentv1.CommandType_COMMAND_TYPE_COLLECT_INVENTORY {
		res := actions.Result{CommandID: c.GetId(), State: actions.Done, Finished: time.Now().UTC(),
			Message: "full inventory report scheduled"}
		if !actions.Targets(c.GetTargetSerial(), a.serial(), a.hardwareUUID()) {
			res.State, res.Error, res.Message = actions.Failed, actions.ErrSerialMismatch.Error(), "refused: command is for another device"
		} else {
			a.triggerFull()
		}
		_ = a.deliver(resultProto(res))
		return
	}
	kind, ok := commandKind(c.GetType())
	if !ok {
		_ = a.deliver(resultProto(actions.Result{CommandID: c.GetId(), State: actions.Failed, Finished: time.Now().UTC(),
			Error: fmt.Sprintf("unsupported command type %s", c.GetType())}))
		return
	}
	if err := a.deliver(&agentv1.CommandResult{CommandId: c.GetId(), State: agentv1.CommandState_COMMAND_STATE_RECEIVED,
		Message: "received"}); err != nil {
		// Not on disk: a restart would forget it. Refuse rather than run a
		// command whose outcome could be lost.
		_ = a.deliver(a.resultMessage(kind, actions.Result{CommandID: c.GetId(), State: actions.Failed, Finished: time.Now().UTC(),
			Error: err.Error(), Message: "refused: the agent could not store the command"}))
		return
	}
	select {
	case a.work <- c:
	case <-ctx.Done():
	default:
		_ = a.deliver(a.resultMessage(kind, actions.Result{CommandID: c.GetId(), State: actions.Failed, Finished: time.Now().UTC(),
			Error: "agent command queue full"}))
	}
}

// commandWorker executes commands one at a time, independent of the
// stream: a result produced while offline waits in the queue.
func (a *Agent) commandWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-a.work:
			a.execute(ctx, c)
		}
	}
}

func (a *Agent) execute(ctx context.Context, c *agentv1.Command) {
	cmd := actionCommand(c)
	if c.GetConfirmation() != nil {
		a.mu.Lock()
		roots := a.roots
		a.mu.Unlock()
		if err := VerifyConfirmation(c, roots, time.Now()); err != nil {
			a.log.Warn("command confirmation rejected", "command_id", c.GetId(), "err", err)
		} else {
			cmd.Confirmed = true
		}
	}
	_ = a.deliver(&agentv1.CommandResult{CommandId: c.GetId(), State: agentv1.CommandState_COMMAND_STATE_RUNNING,
		Message: "running"})
	committed := false
	ex := &actions.Executor{Serial: a.serial(), HardwareUUID: a.hardwareUUID(), Planner: a.o.Planner, Runner: a.o.Runner,
		Mode: a.mode,
		Commit: func(ctx context.Context, r actions.Result) error {
			committed = true
			return a.commit(ctx, cmd.Kind, r)
		}}
	res := ex.Execute(ctx, cmd)
	if errors.Is(ctx.Err(), context.Canceled) && res.State == actions.Failed {
		return // shutting down: recoverInterrupted reports it on the next start
	}
	a.recordLockOutcome(cmd, res)
	a.log.Info("command finished", "command_id", c.GetId(), "state", res.State, "error", res.Error, "steps", len(res.Steps),
		"committed_before_final", committed)
	if committed {
		// The server has (or will get from the queue) the result that was
		// committed before the final step; this one only adds the final
		// step's outcome, which nobody is left to read.
		return
	}
	_ = a.deliver(a.resultMessage(cmd.Kind, res))
}
