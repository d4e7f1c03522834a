// Package agentsim runs the real agent API server (controlplane/agentapi, mTLS gRPC on
// 127.0.0.1) and simulated agents that enroll, report inventory and hold the command
// stream speaking the agent protocol v1.1: RECEIVED, RUNNING, then DONE with evidence
// signed by the agent's own device key (identity.SignResult), as the real agent's
// executor reports a plan whose checks all passed. A Behavior per command type scripts
// the failures offboarding must survive: a failure after receipt, an agent that never
// answers, a dry-run agent (SIMULATED), an agent that restarts mid-command, and results
// whose evidence is unsigned or names another serial. Lifecycle's wiring tests and
// bench/lifecycle use it; it is not part of the control plane.
package agentsim

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// Behavior is how a simulated agent answers a command.
type Behavior int

const (
	// Complete: RECEIVED, RUNNING, DONE with signed evidence, every check ok.
	Complete Behavior = iota
	// FailAfterReceipt: RECEIVED, RUNNING, then FAILED with signed evidence naming the
	// check that did not pass (FailReason).
	FailAfterReceipt
	// NeverAnswer: the command is delivered and nothing comes back (an agent that hangs,
	// a laptop closed right after delivery); the command expires.
	NeverAnswer
	// DryRun: the agent announces dry-run in Hello and answers SIMULATED (nothing ran).
	DryRun
	// RestartMidCommand: RECEIVED, then the agent restarts (its stream drops, a new one
	// opens with a new Hello) and reports FAILED "agent restarted before the command
	// finished", as the real agent does for a command it had stored but not finished.
	RestartMidCommand
	// Unsigned: DONE with evidence but no signature.
	Unsigned
	// WrongSerial: DONE with signed evidence measured on another serial.
	WrongSerial
)

// FailReason is the error a FailAfterReceipt agent reports (the real agent's words for a
// lock check that did not pass).
const FailReason = "check account-locked:alice failed: found password usable (shadow field \"$6$...\"), want locked (\"!\" prefix)"

// RestartReason is the error of a command interrupted by an agent restart.
const RestartReason = "agent restarted before the command finished"

// Server is a running agent API.
type Server struct {
	API    *agentapi.Server
	CA     *pki.CA
	db     *store.DB
	cancel context.CancelFunc
	done   chan error
}

// Start opens the CA and starts the agent API on 127.0.0.1.
func Start(ctx context.Context, db *store.DB, kr *secrets.Keyring) (*Server, error) {
	ca, err := pki.Open(ctx, db, kr, pki.Config{})
	if err != nil {
		return nil, err
	}
	srv, err := agentapi.New(db, ca, agentapi.Config{AgentAddr: "127.0.0.1:0", PollInterval: 200 * time.Millisecond,
		HeartbeatInterval: 5 * time.Second, MaxMessageBytes: 64 << 10})
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Server{API: srv, CA: ca, db: db, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Start(sctx) }()
	return s, nil
}

// Attach uses an agent API that already runs inside a whole control plane (the console's
// browser tests drive server.New's own agent API, so a command sent from a page reaches
// the simulated agent). Close leaves that server running: its owner stops it.
func Attach(db *store.DB, api *agentapi.Server) *Server {
	done := make(chan error, 1)
	done <- nil
	return &Server{API: api, CA: api.CA(), db: db, cancel: func() {}, done: done}
}

// Close stops the server.
func (s *Server) Close() {
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
}

func (s *Server) tlsConfig(cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Root())
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "localhost"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// Agent is one simulated agent.
type Agent struct {
	ID     string
	Serial string
	cert   tls.Certificate
	key    crypto.Signer
	cc     *grpc.ClientConn
	client agentv1.AgentServiceClient

	mu        sync.Mutex
	got       map[string]int
	received  map[string]time.Time
	behaviors map[agentv1.CommandType]Behavior
	dryRun    bool
	restarts  int
	// finals holds the final result of every command answered, resent when the server
	// delivers the command again (as the real agent's result queue does) instead of
	// running it twice.
	finals map[string]*agentv1.CommandResult
	cancel context.CancelFunc
	done   chan struct{}
}

// Enroll mints an enrollment secret, enrolls an agent for serial and reports its
// inventory, which links it to the org's device with that serial (and marks an assigned
// device in use).
func (s *Server) Enroll(ctx context.Context, orgID, serial, vendor, model string) (*Agent, error) {
	secret, _, err := enrollment.Mint(ctx, s.db, orgID, enrollment.Options{Name: "sim " + serial})
	if err != nil {
		return nil, err
	}
	ecc, err := grpc.NewClient(s.API.EnrollAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(s.tlsConfig(nil))))
	if err != nil {
		return nil, err
	}
	defer ecc.Close()
	ec := agentv1.NewEnrollmentServiceClient(ecc)
	ex, err := ec.ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: secret, Hostname: "host-" + serial,
		SerialNumber: serial, HardwareUuid: "uuid-" + serial, Platform: "linux", AgentVersion: "sim"})
	if err != nil {
		return nil, fmt.Errorf("exchange secret: %w", err)
	}
	key, csr, err := identity.NewKeyAndCSR("host-" + serial)
	if err != nil {
		return nil, err
	}
	res, err := ec.Enroll(ctx, &agentv1.EnrollRequest{Token: ex.GetToken(), CsrDer: csr})
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	a := &Agent{ID: res.GetAgentId(), Serial: serial, got: map[string]int{}, received: map[string]time.Time{},
		behaviors: map[agentv1.CommandType]Behavior{}, key: key, finals: map[string]*agentv1.CommandResult{},
		cert: tls.Certificate{Certificate: res.GetCertificate().GetChainDer(), PrivateKey: key}}
	a.cc, err = grpc.NewClient(s.API.AgentAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(s.tlsConfig(&a.cert))))
	if err != nil {
		return nil, err
	}
	a.client = agentv1.NewAgentServiceClient(a.cc)
	if err := a.ReportInventory(ctx, vendor, model); err != nil {
		return nil, err
	}
	return a, nil
}

// ReportInventory sends a full inventory (a check-in).
func (a *Agent) ReportInventory(ctx context.Context, vendor, model string) error {
	a.mu.Lock()
	mode := &agentv1.AgentMode{DryRun: a.dryRun}
	a.mu.Unlock()
	_, err := a.client.ReportInventory(ctx, &agentv1.ReportInventoryRequest{Full: true, Mode: mode, InventoryHash: fmt.Sprintf("h-%s-%d", a.Serial, time.Now().UnixNano()),
		Inventory: &agentv1.Inventory{Hostname: "host-" + a.Serial,
			Os:       &agentv1.OperatingSystem{Platform: "linux", Name: "Debian", Version: "12", KernelVersion: "6.1", Arch: "amd64"},
			Hardware: &agentv1.Hardware{SerialNumber: a.Serial, Vendor: vendor, Model: model, HardwareUuid: "uuid-" + a.Serial},
			Posture:  &agentv1.Posture{DiskEncryption: agentv1.PostureState_POSTURE_STATE_ON}}})
	if err != nil {
		return fmt.Errorf("report inventory: %w", err)
	}
	return nil
}

// SetBehavior scripts how the agent answers commands of type t (Complete when unset).
// DryRun applies to the whole agent: it announces dry-run at its next Connect.
func (a *Agent) SetBehavior(t agentv1.CommandType, b Behavior) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.behaviors[t] = b
	if b == DryRun {
		a.dryRun = true
	}
}

func (a *Agent) behavior(t agentv1.CommandType) Behavior {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dryRun {
		return DryRun
	}
	return a.behaviors[t]
}

type stream = grpc.BidiStreamingClient[agentv1.ConnectRequest, agentv1.ConnectResponse]

// open starts one command stream with a Hello (pending: results the agent still has to
// deliver, as after a restart).
func (a *Agent) open(ctx context.Context, pending []string) (stream, context.CancelFunc, error) {
	sctx, cancel := context.WithCancel(ctx)
	st, err := a.client.Connect(sctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	a.mu.Lock()
	hello := &agentv1.Hello{AgentVersion: "sim", SerialNumber: a.Serial, PendingResultIds: pending, Mode: &agentv1.AgentMode{DryRun: a.dryRun}}
	a.mu.Unlock()
	if err := st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: hello}}); err != nil {
		cancel()
		return nil, nil, err
	}
	if m, err := st.Recv(); err != nil || m.GetWelcome() == nil {
		cancel()
		return nil, nil, fmt.Errorf("no welcome: %v", err)
	}
	return st, cancel, nil
}

// Connect opens the command stream and answers every command by its Behavior.
func (a *Agent) Connect(ctx context.Context) error {
	actx, cancel := context.WithCancel(context.Background())
	st, stop, err := a.open(actx, nil)
	if err != nil {
		cancel()
		return err
	}
	a.cancel, a.done = cancel, make(chan struct{})
	go a.serve(actx, st, stop)
	return nil
}

func (a *Agent) serve(ctx context.Context, st stream, stop context.CancelFunc) {
	defer close(a.done)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		m, err := st.Recv()
		if err != nil {
			return
		}
		c := m.GetCommand()
		if c == nil {
			continue
		}
		a.mu.Lock()
		a.got[c.GetType().String()]++
		if _, ok := a.received[c.GetId()]; !ok {
			a.received[c.GetId()] = time.Now()
		}
		final, answered := a.finals[c.GetId()]
		a.mu.Unlock()
		if answered {
			_ = a.send(st, final)
			continue
		}
		switch b := a.behavior(c.GetType()); b {
		case NeverAnswer:
		case RestartMidCommand:
			_ = a.send(st, result(c.GetId(), agentv1.CommandState_COMMAND_STATE_RECEIVED))
			// The restart: the process dies with the command stored, a new one starts,
			// says hello and reports the command it could not finish.
			stop()
			st, stop, err = a.open(ctx, []string{c.GetId()})
			if err != nil {
				return
			}
			a.mu.Lock()
			a.restarts++
			a.mu.Unlock()
			r := result(c.GetId(), agentv1.CommandState_COMMAND_STATE_FAILED)
			r.Error = RestartReason
			a.remember(r)
			_ = a.send(st, r)
		default:
			rs := a.answer(c, b)
			a.remember(rs[len(rs)-1])
			for _, r := range rs {
				_ = a.send(st, r)
			}
		}
	}
}

func (a *Agent) remember(final *agentv1.CommandResult) {
	a.mu.Lock()
	a.finals[final.GetCommandId()] = final
	a.mu.Unlock()
}

func (a *Agent) send(st stream, r *agentv1.CommandResult) error {
	return st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_CommandResult{CommandResult: r}})
}

func result(id string, s agentv1.CommandState) *agentv1.CommandResult {
	return &agentv1.CommandResult{CommandId: id, State: s}
}

// answer is the results an agent with behavior b sends for c, in order.
func (a *Agent) answer(c *agentv1.Command, b Behavior) []*agentv1.CommandResult {
	received := result(c.GetId(), agentv1.CommandState_COMMAND_STATE_RECEIVED)
	running := result(c.GetId(), agentv1.CommandState_COMMAND_STATE_RUNNING)
	final := agentv1.CommandState_COMMAND_STATE_DONE
	ev := a.evidence(c, true)
	var errText string
	switch b {
	case FailAfterReceipt:
		final, ev, errText = agentv1.CommandState_COMMAND_STATE_FAILED, a.evidence(c, false), FailReason
	case DryRun:
		final = agentv1.CommandState_COMMAND_STATE_SIMULATED
		ev.Mode = &agentv1.AgentMode{DryRun: true}
		errText = "dry run: nothing was executed"
	case WrongSerial:
		ev.SerialNumber, ev.HardwareUuid = "NOT"+a.Serial, "uuid-NOT"+a.Serial
	}
	raw, err := proto.Marshal(ev)
	if err != nil {
		raw = nil
	}
	r := &agentv1.CommandResult{CommandId: c.GetId(), State: final, Error: errText, Evidence: raw, FinishedAt: timestamppb.Now(),
		Steps: []*agentv1.CommandStep{{Name: c.GetType().String(), Status: stepStatus(b)}}}
	if b != Unsigned {
		sig, err := identity.SignResult(a.key, c.GetId(), final.String(), raw)
		if err == nil {
			r.Signature, r.SignerCertificateDer = sig, a.cert.Certificate[0]
		}
	}
	return []*agentv1.CommandResult{received, running, r}
}

func stepStatus(b Behavior) agentv1.StepStatus {
	switch b {
	case FailAfterReceipt:
		return agentv1.StepStatus_STEP_STATUS_FAILED
	case DryRun:
		return agentv1.StepStatus_STEP_STATUS_DRY_RUN
	}
	return agentv1.StepStatus_STEP_STATUS_OK
}

// evidence is what the agent checked after running c: for a lock the account and the
// PAM rule, for an unlock the account again, for a wipe the destroyed key slots.
func (a *Agent) evidence(c *agentv1.Command, ok bool) *agentv1.Evidence {
	ev := &agentv1.Evidence{CommandId: c.GetId(), Type: c.GetType(), SerialNumber: a.Serial, HardwareUuid: "uuid-" + a.Serial,
		CheckedAt: timestamppb.Now(), Mode: &agentv1.AgentMode{}}
	switch c.GetType() {
	case agentv1.CommandType_COMMAND_TYPE_WIPE:
		ev.WipeMethod, ev.FinalAction = "crypto_erase", "power-off"
		ev.Checks = []*agentv1.Check{{Name: "luks-keyslots-destroyed:/dev/vda3", Ok: ok, Observed: "0 of 8 key slots in use", Expected: "no key slot in use"}}
	case agentv1.CommandType_COMMAND_TYPE_UNLOCK:
		ev.Checks = []*agentv1.Check{{Name: "account-unlocked:alice", Ok: ok, Observed: "password usable", Expected: "as before the lock"}}
	default:
		ev.Checks = []*agentv1.Check{
			{Name: "account-locked:alice", Ok: ok, Observed: map[bool]string{true: "locked (\"!\" prefix), expired", false: "password usable"}[ok], Expected: "locked and expired"},
			{Name: "pam-account-deny", Ok: true, Observed: "rule present in /etc/security/access.conf", Expected: "deny every non-root account"},
		}
	}
	return ev
}

// Restarts counts the restarts a RestartMidCommand agent went through.
func (a *Agent) Restarts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.restarts
}

// Received counts commands of a type ("COMMAND_TYPE_LOCK") delivered to the agent.
func (a *Agent) Received(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[typ]
}

// Disconnect drops the command stream, as when the agent stops or the laptop reboots;
// Connect opens a new one.
func (a *Agent) Disconnect() {
	if a.cancel != nil {
		a.cancel()
		<-a.done
		a.cancel = nil
	}
}

// Close ends the stream and connection.
func (a *Agent) Close() {
	a.Disconnect()
	if a.cc != nil {
		_ = a.cc.Close()
	}
}
