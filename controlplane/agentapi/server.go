// Package agentapi is the control plane's side of the agent channel: two gRPC listeners
// (enrollment without client certificates, and the mTLS agent API), device tracking from
// agent reports, the shared device command model with its admin routes, and delivery of
// commands to agent streams on any replica (Postgres LISTEN/NOTIFY plus a poll backstop).
// See docs/adr/2026-11-25_agent-enrollment.md.
//
// Generated protobuf types stop here: the store and the admin API see store types only.
package agentapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/internal/agenttransport"
	"github.com/lanyardhq/lanyard/pki"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// Config tunes the agent API. Zero values take the defaults.
type Config struct {
	// AgentAddr is the mTLS agent API listener (default 127.0.0.1:8443).
	AgentAddr string
	// EnrollAddr is the enrollment listener (default: AgentAddr's host, port + 1).
	EnrollAddr string
	// DNSNames and IPs go into the listeners' server certificate; agents dial one of them.
	DNSNames []string
	IPs      []net.IP
	// HeartbeatInterval the agents are told to use (default 30 s).
	HeartbeatInterval time.Duration
	// MaxMessageBytes caps one gRPC message, e.g. an inventory report (default 512 KiB);
	// larger ones are refused with ResourceExhausted before anything is written.
	MaxMessageBytes int
	// PollInterval is the backstop for missed notifications: queued commands and
	// revocations are re-read this often (default 5 s).
	PollInterval time.Duration
	// CommandTTL is how long a command may wait for delivery (default 72 h).
	CommandTTL time.Duration
	// InventoryWorkers is how many inventory batches are written at once, each on its own
	// database connection (default 2; keep it below the pool size). Fewer workers make
	// bigger batches, and a batch's fixed cost (round trips, planning, commit) is most of
	// a small batch's cost.
	InventoryWorkers int
	// RenewGrace is how long after its certificate expired an agent may still renew it
	// on the enrollment port, proving possession of its key (default 30 days).
	RenewGrace time.Duration
	// EnrollRateLimit caps enrollment calls per source address (IPv6: per /64); the zero
	// value is no limit.
	EnrollRateLimit RateLimit
	// Sealer seals escrowed recovery keys at rest (the server keyring; Open sets it from
	// its sealer). Without it EscrowRecoveryKey is refused.
	Sealer pki.Sealer
	Logger *slog.Logger
}

func (c *Config) init() error {
	if c.AgentAddr == "" {
		c.AgentAddr = "127.0.0.1:8443"
	}
	if c.EnrollAddr == "" {
		host, port, err := net.SplitHostPort(c.AgentAddr)
		if err != nil {
			return fmt.Errorf("agentapi: agent address %q: %w", c.AgentAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("agentapi: agent port %q: %w", port, err)
		}
		if p == 0 {
			c.EnrollAddr = net.JoinHostPort(host, "0")
		} else {
			c.EnrollAddr = net.JoinHostPort(host, strconv.Itoa(p+1))
		}
	}
	if len(c.DNSNames) == 0 && len(c.IPs) == 0 {
		c.DNSNames = []string{"localhost"}
		if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
			c.DNSNames = append(c.DNSNames, h)
		}
		c.IPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 30 * time.Second
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 512 << 10
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.CommandTTL <= 0 {
		c.CommandTTL = 72 * time.Hour
	}
	if c.RenewGrace <= 0 {
		c.RenewGrace = 30 * 24 * time.Hour
	}
	if c.InventoryWorkers <= 0 {
		c.InventoryWorkers = 2
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("component", "agentapi")
	return nil
}

// Server is the agent channel: gRPC servers, stream hub, command service, admin routes.
type Server struct {
	cfg      Config
	db       *store.DB
	ca       *pki.CA
	hub      *hub
	revoked  *revocations
	batcher  *batcher[store.InventoryItem, store.InventoryOutcome]
	presence *batcher[presence, struct{}]
	Commands *Commands

	serverCert atomic.Pointer[tls.Certificate]
	periodTLS  atomic.Pointer[periodTLS]
	agentGRPC  *grpc.Server
	enrollGRPC *grpc.Server
	agentLn    net.Listener
	enrollLn   net.Listener
}

// New builds the agent channel on db with the CA; it starts nothing (see Listen, Start).
func New(db *store.DB, ca *pki.CA, cfg Config) (*Server, error) {
	if err := cfg.init(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, db: db, ca: ca, revoked: newRevocations()}
	s.hub = newHub(s)
	s.batcher = newInventoryBatcher(db, cfg.InventoryWorkers, 128)
	s.presence = newPresenceBatcher(db)
	s.Commands = newCommands(db, ca, s.hub, cfg)
	if err := s.rotateServerCert(); err != nil {
		return nil, err
	}
	agentOpts := append(agenttransport.ServerOptions(),
		grpc.Creds(credentials.NewTLS(s.agentTLS())),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(s.unaryAuth),
		grpc.ChainStreamInterceptor(s.streamAuth),
		grpc.InTapHandle(endableStreams),
	)
	s.agentGRPC = grpc.NewServer(agentOpts...)
	agentv1.RegisterAgentServiceServer(s.agentGRPC, &agentService{s: s})
	enrollOpts := []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(s.enrollTLS())),
		grpc.MaxRecvMsgSize(64 << 10), grpc.ConnectionTimeout(20 * time.Second),
		agenttransport.KeepaliveParams(), agenttransport.KeepalivePolicy(),
	}
	if !cfg.EnrollRateLimit.off() {
		enrollOpts = append(enrollOpts, grpc.ChainUnaryInterceptor(newSourceLimiter(cfg.EnrollRateLimit).unary))
	}
	s.enrollGRPC = grpc.NewServer(enrollOpts...)
	agentv1.RegisterEnrollmentServiceServer(s.enrollGRPC, &enrollService{s: s})
	return s, nil
}

func (s *Server) rotateServerCert() error {
	c, err := s.ca.IssueServerCert(s.cfg.DNSNames, s.cfg.IPs, 7*24*time.Hour)
	if err != nil {
		return err
	}
	s.serverCert.Store(c)
	return nil
}

func (s *Server) getServerCert(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.serverCert.Load(), nil
}

func (s *Server) agentTLS() *tls.Config {
	c := s.agentTLSBase()
	if _, err := s.ca.SessionTicketKeys(time.Now()); err != nil {
		// Sessions still resume on this process (Go's own keys), not across replicas.
		s.cfg.Logger.Warn("agent TLS sessions resume only on the replica that issued them", "err", err)
		return c
	}
	c.GetConfigForClient = s.ticketConfig
	return c
}

func (s *Server) agentTLSBase() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        s.ca.RootPool(),
		GetCertificate:   s.getServerCert,
		VerifyConnection: s.verifyConnection,
		// Set here because a config from GetConfigForClient replaces the one gRPC's
		// credentials add "h2" to.
		NextProtos: []string{"h2"},
	}
}

// periodTLS is the agent TLS config of one session-ticket period.
type periodTLS struct {
	period int64
	cfg    *tls.Config
}

// ticketConfig (GetConfigForClient) returns the agent TLS config with the session-ticket
// keys every replica derives for the current period (pki.CA.SessionTicketKeys), so a
// ticket one replica issued resumes on another and across restarts. It is rebuilt once
// per period.
func (s *Server) ticketConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	now := time.Now()
	p := pki.TicketPeriodOf(now)
	if c := s.periodTLS.Load(); c != nil && c.period == p {
		return c.cfg, nil
	}
	keys, err := s.ca.SessionTicketKeys(now)
	if err != nil {
		return nil, nil // the base config, with Go's per-process keys
	}
	c := s.agentTLSBase()
	c.SetSessionTicketKeys(keys)
	s.periodTLS.Store(&periodTLS{period: p, cfg: c})
	return c, nil
}

func (s *Server) enrollTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.NoClientCert,
		GetCertificate: s.getServerCert,
	}
}

// Listen binds both listeners (so tests and the server can learn the ports before Start).
func (s *Server) Listen() error {
	var err error
	if s.agentLn == nil {
		if s.agentLn, err = agenttransport.Listen(context.Background(), s.cfg.AgentAddr); err != nil {
			return fmt.Errorf("agentapi: %w", err)
		}
	}
	if s.enrollLn == nil {
		if s.enrollLn, err = net.Listen("tcp", s.cfg.EnrollAddr); err != nil {
			return fmt.Errorf("agentapi: listen %s: %w", s.cfg.EnrollAddr, err)
		}
	}
	return nil
}

// AgentAddr and EnrollAddr return the bound addresses (after Listen).
func (s *Server) AgentAddr() net.Addr  { return s.agentLn.Addr() }
func (s *Server) EnrollAddr() net.Addr { return s.enrollLn.Addr() }

// CA returns the embedded CA (for the installers' fingerprint).
func (s *Server) CA() *pki.CA { return s.ca }

// Start serves both listeners and runs the delivery, revocation and expiry loops until
// ctx ends, then stops gracefully.
func (s *Server) Start(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	if err := s.revoked.load(ctx, s.db); err != nil {
		// Agents are refused until a refresh succeeds (the poll retries every few seconds);
		// the rest of the control plane keeps serving.
		s.cfg.Logger.Warn("revocation list not loaded; refusing agents until the database answers", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- s.agentGRPC.Serve(s.agentLn) }()
	go func() { errc <- s.enrollGRPC.Serve(s.enrollLn) }()
	go s.hub.listen(ctx)
	go s.loops(ctx)
	go s.batcher.run(ctx)
	// Presence outlives ctx: closing streams at shutdown still records them offline.
	pctx, stopPresence := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPresence()
	go s.presence.run(pctx)
	s.cfg.Logger.Info("agent API serving", "agent_addr", s.agentLn.Addr().String(), "enroll_addr", s.enrollLn.Addr().String(),
		"ca_sha256", s.ca.RootFingerprint())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	s.hub.closeAll()
	stopped := make(chan struct{})
	go func() {
		s.agentGRPC.GracefulStop()
		s.enrollGRPC.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		s.agentGRPC.Stop()
		s.enrollGRPC.Stop()
	}
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

// loops runs the periodic work: revocation refresh, queued-command backstop, expiry,
// heartbeat flush and server certificate rotation.
func (s *Server) loops(ctx context.Context) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	expire := time.NewTicker(time.Minute)
	defer expire.Stop()
	certs := time.NewTicker(24 * time.Hour)
	defer certs.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if ids, err := s.revoked.refresh(ctx, s.db); err != nil {
				s.cfg.Logger.Warn("revocation refresh failed", "err", err)
			} else {
				s.hub.cutOff(ids)
			}
			s.hub.pollQueued(ctx)
			s.hub.flushSeen(ctx)
		case <-expire.C:
			if n, err := s.db.ExpireDeviceCommands(ctx, time.Now()); err != nil {
				s.cfg.Logger.Warn("command expiry failed", "err", err)
			} else if n > 0 {
				s.cfg.Logger.Info("commands expired", "count", n)
			}
		case <-certs.C:
			if err := s.rotateServerCert(); err != nil {
				s.cfg.Logger.Error("server certificate rotation failed", "err", err)
			}
		}
	}
}

// RevokeDevice revokes every agent (and certificate) of a device and cuts their open
// streams on every replica.
func (s *Server) RevokeDevice(ctx context.Context, orgID, deviceID, reason string) ([]string, error) {
	ids, err := s.db.RevokeDeviceAgents(ctx, orgID, deviceID, reason)
	if err != nil {
		return nil, err
	}
	s.revokedLocally(ctx, ids)
	return ids, nil
}

// RevokeAgent revokes one agent and cuts its stream.
func (s *Server) RevokeAgent(ctx context.Context, orgID, agentID, reason string) error {
	if err := s.db.RevokeAgent(ctx, orgID, agentID, reason); err != nil {
		return err
	}
	s.revokedLocally(ctx, []string{agentID})
	return nil
}

func (s *Server) revokedLocally(ctx context.Context, ids []string) {
	s.revoked.add(ids...)
	s.hub.cutOff(ids)
	s.hub.notifyRevoked(ctx, ids)
}
