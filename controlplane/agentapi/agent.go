package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

type agentService struct {
	agentv1.UnimplementedAgentServiceServer
	s *Server
}

func (a *agentService) Renew(ctx context.Context, req *agentv1.RenewRequest) (*agentv1.RenewResponse, error) {
	c := callerFrom(ctx)
	iss, err := a.s.ca.Renew(ctx, c.Leaf, req.GetCsrDer())
	switch {
	case errors.Is(err, pki.ErrBadCSR):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, pki.ErrRevoked):
		return nil, errRevoked
	case err != nil:
		return nil, a.s.internal("renew", err)
	}
	if iss.Identity != c.Agent {
		return nil, status.Error(codes.Internal, "renewed certificate has another identity")
	}
	return &agentv1.RenewResponse{Certificate: a.s.bundle(iss)}, nil
}

// inventorySections lists the sections a report may name, as protojson field names.
var inventorySections = map[string]bool{
	"hostname": true, "os": true, "hardware": true, "cpu": true, "memory_bytes": true, "disks": true,
	"network_interfaces": true, "users": true, "uptime_seconds": true, "boot_time": true, "posture": true, "agent_version": true,
}

var sectionJSON = protojson.MarshalOptions{UseProtoNames: true}

// toReport converts a proto report to the store's form: one JSON document per section.
func toReport(req *agentv1.ReportInventoryRequest) (store.InventoryReport, error) {
	inv := req.GetInventory()
	if inv == nil {
		return store.InventoryReport{}, status.Error(codes.InvalidArgument, "inventory is required")
	}
	raw, err := sectionJSON.Marshal(inv)
	if err != nil {
		return store.InventoryReport{}, status.Error(codes.InvalidArgument, "inventory does not encode: "+err.Error())
	}
	r := store.InventoryReport{Full: req.GetFull(), Hash: req.GetInventoryHash(), At: domain.Now(), Mode: modeOf(req.GetMode())}
	if r.Full {
		all, err := splitSections(raw)
		if err != nil {
			return r, err
		}
		r.Sections = all
	} else {
		changed := req.GetChangedSections()
		if len(changed) == 0 {
			return r, status.Error(codes.InvalidArgument, "a delta report names its changed_sections")
		}
		r.Sections = make(map[string]json.RawMessage, len(changed))
		for _, name := range changed {
			if !inventorySections[name] {
				return r, status.Error(codes.InvalidArgument, fmt.Sprintf("unknown inventory section %q", name))
			}
			// A named section the agent left empty is recorded as cleared.
			r.Sections[name] = json.RawMessage("null")
		}
		if err := pickSections(raw, r.Sections); err != nil {
			return r, err
		}
	}
	if len(r.Hash) > 128 {
		return r, status.Error(codes.InvalidArgument, "inventory_hash too long")
	}
	hw, os := inv.GetHardware(), inv.GetOs()
	if r.Full || hasSection(req, "hardware") {
		r.Serial, r.Vendor, r.Model, r.HardwareUUID = hw.GetSerialNumber(), hw.GetVendor(), hw.GetModel(), hw.GetHardwareUuid()
	}
	if r.Full || hasSection(req, "hostname") {
		r.Hostname = inv.GetHostname()
	}
	if r.Full || hasSection(req, "os") {
		r.OSName, r.OSVersion, r.OSBuild = os.GetName(), os.GetVersion(), os.GetBuild()
		r.Platform = platformOf(os.GetPlatform())
	}
	return r, nil
}

// splitSections is every section of an encoded inventory.
func splitSections(raw []byte) (map[string]json.RawMessage, error) {
	all := make(map[string]json.RawMessage, len(inventorySections))
	if store.WalkSections(raw, func(k, v []byte) { all[string(k)] = v }) {
		return all, nil
	}
	clear(all)
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, status.Error(codes.Internal, "inventory encoding")
	}
	return all, nil
}

// pickSections sets the sections named in want (keys already present) from an encoded
// inventory and leaves the others as they are. A delta used to decode every section
// into a map first and keep the ones it named.
func pickSections(raw []byte, want map[string]json.RawMessage) error {
	ok := store.WalkSections(raw, func(k, v []byte) {
		if _, named := want[string(k)]; named { // a lookup converts k without a copy
			for name := range want {
				if name == string(k) {
					want[name] = v
				}
			}
		}
	})
	if ok {
		return nil
	}
	all, err := splitSections(raw)
	if err != nil {
		return err
	}
	for name := range want {
		if v, found := all[name]; found {
			want[name] = v
		}
	}
	return nil
}

func hasSection(req *agentv1.ReportInventoryRequest, name string) bool {
	for _, s := range req.GetChangedSections() {
		if s == name {
			return true
		}
	}
	return false
}

func platformOf(goos string) domain.Platform {
	switch strings.ToLower(goos) {
	case "darwin", "macos":
		return domain.PlatformMacOS
	case "windows":
		return domain.PlatformWindows
	case "linux":
		return domain.PlatformLinux
	case "":
		return ""
	}
	return domain.PlatformOther
}

func (a *agentService) ReportInventory(ctx context.Context, req *agentv1.ReportInventoryRequest) (*agentv1.ReportInventoryResponse, error) {
	c := callerFrom(ctx)
	r, err := toReport(req)
	if err != nil {
		return nil, err
	}
	out, err := a.s.batcher.apply(ctx, store.InventoryItem{OrgID: c.OrgID, AgentID: c.AgentID, Report: r})
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.Unauthenticated, "unknown agent")
	}
	if errors.Is(err, store.ErrConflict) {
		return nil, errRevoked
	}
	if err != nil {
		return nil, a.s.internal("report inventory", err)
	}
	if out.DeviceID != "" {
		a.s.hub.linked(ctx, c.AgentID, out.DeviceID)
	}
	return &agentv1.ReportInventoryResponse{DeviceId: out.DeviceID, FullInventoryRequired: out.NeedFull,
		NeedsReview: out.NeedsReview, SerialConflict: out.SerialConflict}, nil
}

func (s *Server) internal(op string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return grpcError(err)
	}
	s.cfg.Logger.Error(op+" failed", "err", err)
	return grpcError(err)
}

// Connect holds an agent's control stream.
func (a *agentService) Connect(stream agentv1.AgentService_ConnectServer) error {
	ctx := stream.Context()
	c := callerFrom(ctx)
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message on a stream must be hello")
	}
	var (
		conn    *conn
		welcome *agentv1.ConnectResponse
		ag      store.Agent
	)
	onShortStack(func() { conn, welcome, ag, err = a.open(ctx, stream, c, hello) })
	if err != nil {
		return err
	}
	defer a.s.hub.unregister(conn)
	// One goroutine per stream: this handler reads and handles the agent's messages and
	// writes its own replies; commands from elsewhere are written by a short-lived
	// flusher (conn.send). What ends the stream from outside (a revocation, a newer
	// stream, shutdown) cancels conn.ctx and the stream's own context, so Recv returns.
	a.receive(stream, conn, c, welcome, ag.DeviceID != "", ag.InventoryHash)
	cause := context.Cause(conn.ctx)
	if errors.Is(cause, errAgentClosed) {
		return nil
	}
	return causeStatus(cause)
}

// onShortStack runs fn on a goroutine of its own and waits for it. A stream's goroutine
// lives as long as the stream (hours, nearly always blocked in Recv); the database calls
// of its opening, a command result or a changed inventory hash grow a goroutine's stack to
// 16–32 KB, which an idle stream would otherwise keep until a collection shrinks it (at
// 10,000 streams, a fifth of the server's memory in a profile).
func onShortStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// open checks the agent of a new stream, marks it online and registers the stream; it
// returns the welcome to send and the agent as stored.
func (a *agentService) open(ctx context.Context, stream agentv1.AgentService_ConnectServer, c caller, hello *agentv1.Hello) (*conn, *agentv1.ConnectResponse, store.Agent, error) {
	ag, err := a.s.db.GetAgent(ctx, c.OrgID, c.AgentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ag, status.Error(codes.Unauthenticated, "unknown agent")
	}
	if err != nil {
		return nil, nil, ag, a.s.internal("connect", err)
	}
	if ag.RevokedAt != nil {
		return nil, nil, ag, errRevoked
	}
	// Online before the welcome: once the agent hears back, the API shows it online.
	if _, err := a.s.presence.apply(ctx, presence{agentID: c.AgentID, online: true}); err != nil {
		a.s.cfg.Logger.Warn("mark agent online failed", "agent_id", c.AgentID, "err", err)
	}
	// The Hello's mode and held lock are written only when they changed: at 10,000
	// agents reconnecting, a write per stream is what the presence batch avoids.
	if mode := modeOf(hello.GetMode()); mode != ag.Mode || hello.GetLockedByCommandId() != ag.LockedByCommandID {
		if err := a.s.db.RecordAgentHello(ctx, c.OrgID, c.AgentID, mode, truncate(hello.GetLockedByCommandId(), 64)); err != nil {
			a.s.cfg.Logger.Warn("record agent hello failed", "agent_id", c.AgentID, "err", err)
		}
	}
	conn := a.s.hub.register(ctx, stream, c.Agent, ag.DeviceID, hello)
	welcome := &agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_Welcome{Welcome: &agentv1.Welcome{
		AgentId: c.AgentID, DeviceId: ag.DeviceID, HeartbeatIntervalSeconds: uint32(a.s.cfg.HeartbeatInterval / time.Second),
		FullInventoryRequired: hello.GetInventoryHash() == "" || hello.GetInventoryHash() != ag.InventoryHash,
	}}}
	return conn, welcome, ag, nil
}

// errAgentClosed ends a stream the agent closed itself (io.EOF): the handler returns nil.
var errAgentClosed = errors.New("agent closed the stream")

// receive sends the welcome and the device's open commands, then reads the stream's
// messages in order until it ends; whatever ends it becomes conn.ctx's cause.
func (a *agentService) receive(stream agentv1.AgentService_ConnectServer, conn *conn, c caller, welcome *agentv1.ConnectResponse,
	linked bool, invHash string) {
	ctx := stream.Context()
	// The welcome is queued first, so it goes out before any command or heartbeat ack.
	conn.reply(welcome)
	if linked {
		onShortStack(func() { a.s.hub.deliverOpen(ctx, conn) })
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errAgentClosed
			}
			conn.cancel(err)
			return
		}
		if conn.ctx.Err() != nil {
			return // ended from outside while this message was on its way
		}
		if err := a.handle(ctx, conn, c, m, &invHash); err != nil {
			conn.cancel(err)
			return
		}
	}
}

// handle is one message of an open stream.
func (a *agentService) handle(ctx context.Context, conn *conn, c caller, msg *agentv1.ConnectRequest, invHash *string) error {
	if a.s.revoked.has(c.AgentID) {
		return errRevoked
	}
	switch m := msg.GetMsg().(type) {
	case *agentv1.ConnectRequest_Heartbeat:
		a.s.hub.seen(c.AgentID)
		need := m.Heartbeat.GetInventoryHash() != "" && m.Heartbeat.GetInventoryHash() != *invHash
		if need {
			// The agent may have reported since the stream opened; check the stored hash.
			onShortStack(func() {
				if cur, err := a.s.db.GetAgent(ctx, c.OrgID, c.AgentID); err == nil {
					*invHash = cur.InventoryHash
					need = m.Heartbeat.GetInventoryHash() != *invHash
				}
			})
		}
		conn.reply(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_HeartbeatAck{HeartbeatAck: &agentv1.HeartbeatAck{
			ServerTime: timestamppb.Now(), FullInventoryRequired: need}}})
	case *agentv1.ConnectRequest_CommandResult:
		var err error
		onShortStack(func() { err = a.s.Commands.applyResult(ctx, c.Agent, conn.info(), m.CommandResult) })
		return err
	case *agentv1.ConnectRequest_Hello:
		return status.Error(codes.InvalidArgument, "hello sent twice")
	default:
		return status.Error(codes.InvalidArgument, "empty message")
	}
	return nil
}

func causeStatus(cause error) error {
	if _, ok := status.FromError(cause); ok {
		return cause
	}
	return status.Error(codes.Unavailable, cause.Error())
}
