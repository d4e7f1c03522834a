// Package agentsim runs the real agent API server (controlplane/agentapi, mTLS gRPC on
// 127.0.0.1) and simulated agents that enroll, report inventory and hold the command
// stream like the real agent with its dry-run executor: every command is acknowledged
// and completed at once. Lifecycle's wiring tests and bench/lifecycle use it; it is not
// part of the control plane.
package agentsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

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
	cc     *grpc.ClientConn
	client agentv1.AgentServiceClient

	mu       sync.Mutex
	got      map[string]int
	received map[string]time.Time
	cancel   context.CancelFunc
	done     chan struct{}
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
	_, err := a.client.ReportInventory(ctx, &agentv1.ReportInventoryRequest{Full: true, InventoryHash: fmt.Sprintf("h-%s-%d", a.Serial, time.Now().UnixNano()),
		Inventory: &agentv1.Inventory{Hostname: "host-" + a.Serial,
			Os:       &agentv1.OperatingSystem{Platform: "linux", Name: "Debian", Version: "12", KernelVersion: "6.1", Arch: "amd64"},
			Hardware: &agentv1.Hardware{SerialNumber: a.Serial, Vendor: vendor, Model: model, HardwareUuid: "uuid-" + a.Serial},
			Posture:  &agentv1.Posture{DiskEncryption: agentv1.PostureState_POSTURE_STATE_ON}}})
	if err != nil {
		return fmt.Errorf("report inventory: %w", err)
	}
	return nil
}

// Connect opens the command stream; every command is acknowledged, then done (as the
// dry-run executor reports it).
func (a *Agent) Connect(ctx context.Context) error {
	sctx, cancel := context.WithCancel(context.Background())
	st, err := a.client.Connect(sctx)
	if err != nil {
		cancel()
		return err
	}
	if err := st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: &agentv1.Hello{AgentVersion: "sim"}}}); err != nil {
		cancel()
		return err
	}
	if m, err := st.Recv(); err != nil || m.GetWelcome() == nil {
		cancel()
		return fmt.Errorf("no welcome: %v", err)
	}
	a.cancel, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
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
			a.mu.Unlock()
			_ = st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_CommandResult{CommandResult: &agentv1.CommandResult{
				CommandId: c.GetId(), State: agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED}}})
			_ = st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_CommandResult{CommandResult: &agentv1.CommandResult{
				CommandId: c.GetId(), State: agentv1.CommandState_COMMAND_STATE_DONE,
				Steps: []*agentv1.CommandStep{{Name: c.GetType().String(), Status: agentv1.StepStatus_STEP_STATUS_DRY_RUN}}}}})
		}
	}()
	return nil
}

// Received counts commands of a type ("COMMAND_TYPE_LOCK") delivered to the agent.
func (a *Agent) Received(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[typ]
}

// Close ends the stream and connection.
func (a *Agent) Close() {
	if a.cancel != nil {
		a.cancel()
		<-a.done
	}
	if a.cc != nil {
		_ = a.cc.Close()
	}
}
