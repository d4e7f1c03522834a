package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// fakeCP is a minimal control plane for the client's tests: a root and an
// intermediate, an enrollment service and an mTLS agent service that
// records what the agent sends and lets the test push commands and revoke.
type fakeCP struct {
	t            *testing.T
	root, inter  *x509.Certificate
	interKey     *ecdsa.PrivateKey
	secret       string
	agentAddr    string
	enrollAddr   string
	ackHeartbeat bool

	mu        sync.Mutex
	reports   []*agentv1.ReportInventoryRequest
	hellos    []*agentv1.Hello
	results   []*agentv1.CommandResult
	revoked   bool
	streams   int
	cmdCh     chan *agentv1.Command
	revokeCh  chan struct{}
	heartbeat int
	certLife  time.Duration
	renewals  int
	// refuseRenew makes mTLS renewal fail (a device that cannot reach the server in time);
	// expiredRenewals counts renewals of expired certificates on the enrollment port.
	refuseRenew     bool
	expiredRenewals int
	// escrows are the EscrowRecoveryKey requests received; failEscrow makes
	// the next n of them fail with Unavailable.
	escrows    []*agentv1.EscrowRecoveryKeyRequest
	failEscrow int

	agentSrv *grpc.Server
}

func newCert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

var serialN int64 = 100

func nextSerial() *big.Int { serialN++; return big.NewInt(serialN) }

func startFakeCP(t *testing.T) *fakeCP {
	t.Helper()
	f := &fakeCP{t: t, secret: "lyes_test", ackHeartbeat: true, cmdCh: make(chan *agentv1.Command, 8), revokeCh: make(chan struct{})}
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.interKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	f.root = newCert(t, &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, &rootKey.PublicKey, rootKey)
	f.inter = newCert(t, &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "test inter"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, f.root, &f.interKey.PublicKey, rootKey)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := newCert(t, &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, f.inter, &srvKey.PublicKey, f.interKey)
	// Like the real server: leaf and intermediate, no root.
	srvCert := tls.Certificate{Certificate: [][]byte{srv.Raw, f.inter.Raw}, PrivateKey: srvKey}

	pool := x509.NewCertPool()
	pool.AddCert(f.root)
	agentTLS := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		VerifyConnection: func(tls.ConnectionState) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.revoked {
				return status.Error(codes.Unauthenticated, "revoked")
			}
			return nil
		}}
	ag := grpc.NewServer(grpc.Creds(credentials.NewTLS(agentTLS)))
	f.agentSrv = ag
	agentv1.RegisterAgentServiceServer(ag, &fakeAgentSvc{f: f})
	en := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{srvCert}})))
	agentv1.RegisterEnrollmentServiceServer(en, &fakeEnrollSvc{f: f})
	for _, x := range []struct {
		s    *grpc.Server
		addr *string
	}{{ag, &f.agentAddr}, {en, &f.enrollAddr}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*x.addr = ln.Addr().String()
		go x.s.Serve(ln)
		t.Cleanup(x.s.Stop)
	}
	return f
}

// stopAgentAPI takes the agent service down for good (connections cut,
// the port refuses): the server is unreachable.
func (f *fakeCP) stopAgentAPI() { f.agentSrv.Stop() }

// confirm signs c's second confirmation with the CA intermediate, as the
// control plane does for a destructive command.
func (f *fakeCP) confirm(c *agentv1.Command) *agentv1.Command {
	f.t.Helper()
	exp := time.Now().Add(time.Hour)
	c.Confirmation = &agentv1.Confirmation{Nonce: "nonce-" + c.GetId(), ExpiresAt: timestamppb.New(exp),
		SignerChainDer: [][]byte{f.inter.Raw}}
	sum := sha256.Sum256(identity.ConfirmationPayload(c.GetId(), c.GetType().String(), c.GetTargetSerial(),
		c.Confirmation.Nonce, exp))
	sig, err := ecdsa.SignASN1(rand.Reader, f.interKey, sum[:])
	if err != nil {
		f.t.Fatal(err)
	}
	c.Confirmation.Signature = sig
	return c
}

func (f *fakeCP) revoke() {
	f.mu.Lock()
	f.revoked = true
	f.mu.Unlock()
	close(f.revokeCh)
}

func (f *fakeCP) snapshot() (reports []*agentv1.ReportInventoryRequest, results []*agentv1.CommandResult, hellos []*agentv1.Hello) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(reports, f.reports...), append(results, f.results...), append(hellos, f.hellos...)
}

type fakeEnrollSvc struct {
	agentv1.UnimplementedEnrollmentServiceServer
	f *fakeCP
}

func (s *fakeEnrollSvc) ExchangeSecret(_ context.Context, r *agentv1.ExchangeSecretRequest) (*agentv1.ExchangeSecretResponse, error) {
	if r.GetEnrollmentSecret() != s.f.secret {
		return nil, status.Error(codes.Unauthenticated, "bad secret")
	}
	return &agentv1.ExchangeSecretResponse{Token: "tok-" + r.GetSerialNumber(), AgentId: "agent-1"}, nil
}

func (s *fakeEnrollSvc) Enroll(_ context.Context, r *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	csr, err := x509.ParseCertificateRequest(r.GetCsrDer())
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	life := s.f.certLife
	if life == 0 {
		life = time.Hour
	}
	b := s.f.issue(csr.PublicKey, life)
	return &agentv1.EnrollResponse{AgentId: "agent-1", OrgId: "org-1", Certificate: b}, nil
}

// RenewExpired follows the real server's rules: the leaf is ours and expired, and the CSR
// is signed with the leaf's key; the new certificate keeps that key.
func (s *fakeEnrollSvc) RenewExpired(_ context.Context, r *agentv1.RenewExpiredRequest) (*agentv1.RenewResponse, error) {
	if len(r.GetChainDer()) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no certificate")
	}
	leaf, err := x509.ParseCertificate(r.GetChainDer()[0])
	if err != nil || leaf.CheckSignatureFrom(s.f.inter) != nil {
		return nil, status.Error(codes.Unauthenticated, "not ours")
	}
	if time.Now().Before(leaf.NotAfter) {
		return nil, status.Error(codes.FailedPrecondition, "not expired")
	}
	csr, err := x509.ParseCertificateRequest(r.GetCsrDer())
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(csr.PublicKey) {
		return nil, status.Error(codes.Unauthenticated, "key mismatch")
	}
	s.f.mu.Lock()
	s.f.expiredRenewals++
	s.f.mu.Unlock()
	return &agentv1.RenewResponse{Certificate: s.f.issue(csr.PublicKey, time.Hour)}, nil
}

func (f *fakeCP) issue(pub any, life time.Duration) *agentv1.CertificateBundle {
	now := time.Now()
	id := identity.Agent{OrgID: "org-1", AgentID: "agent-1"}
	leaf := newCert(f.t, &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "agent-1"},
		NotBefore: now.Truncate(time.Second), NotAfter: now.Truncate(time.Second).Add(life), URIs: []*neturl.URL{id.URI()},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, f.inter, pub, f.interKey)
	return &agentv1.CertificateBundle{ChainDer: [][]byte{leaf.Raw, f.inter.Raw}, RootsDer: [][]byte{f.root.Raw},
		NotBefore: timestamppb.New(leaf.NotBefore), NotAfter: timestamppb.New(leaf.NotAfter),
		RenewAfter: timestamppb.New(leaf.NotBefore.Add(life * 2 / 3)), Serial: leaf.SerialNumber.Text(16)}
}

type fakeAgentSvc struct {
	agentv1.UnimplementedAgentServiceServer
	f *fakeCP
}

func (s *fakeAgentSvc) Renew(_ context.Context, r *agentv1.RenewRequest) (*agentv1.RenewResponse, error) {
	s.f.mu.Lock()
	refuse := s.f.refuseRenew
	s.f.mu.Unlock()
	if refuse {
		return nil, status.Error(codes.Unavailable, "renewal refused by the test")
	}
	csr, err := x509.ParseCertificateRequest(r.GetCsrDer())
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	s.f.mu.Lock()
	s.f.renewals++
	s.f.mu.Unlock()
	return &agentv1.RenewResponse{Certificate: s.f.issue(csr.PublicKey, time.Hour)}, nil
}

func (s *fakeAgentSvc) EscrowRecoveryKey(_ context.Context, r *agentv1.EscrowRecoveryKeyRequest) (*agentv1.EscrowRecoveryKeyResponse, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.escrows = append(s.f.escrows, r)
	if s.f.failEscrow > 0 {
		s.f.failEscrow--
		return nil, status.Error(codes.Unavailable, "escrow refused by the test")
	}
	return &agentv1.EscrowRecoveryKeyResponse{}, nil
}

func (s *fakeAgentSvc) ReportInventory(_ context.Context, r *agentv1.ReportInventoryRequest) (*agentv1.ReportInventoryResponse, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.reports = append(s.f.reports, r)
	return &agentv1.ReportInventoryResponse{DeviceId: "dev-1"}, nil
}

func (s *fakeAgentSvc) Connect(st agentv1.AgentService_ConnectServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	s.f.mu.Lock()
	s.f.hellos = append(s.f.hellos, first.GetHello())
	s.f.streams++
	s.f.mu.Unlock()
	var sendMu sync.Mutex
	send := func(m *agentv1.ConnectResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return st.Send(m)
	}
	if err := send(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_Welcome{Welcome: &agentv1.Welcome{
		AgentId: "agent-1", DeviceId: "dev-1", HeartbeatIntervalSeconds: 1}}}); err != nil {
		return err
	}
	in := make(chan *agentv1.ConnectRequest)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			in <- m
		}
	}()
	for {
		select {
		case <-s.f.revokeCh:
			return status.Error(codes.Unauthenticated, "agent revoked")
		case err := <-errc:
			return err
		case c := <-s.f.cmdCh:
			if err := send(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_Command{Command: c}}); err != nil {
				return err
			}
		case m := <-in:
			switch x := m.GetMsg().(type) {
			case *agentv1.ConnectRequest_Heartbeat:
				s.f.mu.Lock()
				s.f.heartbeat++
				ack := s.f.ackHeartbeat
				s.f.mu.Unlock()
				if ack {
					_ = send(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_HeartbeatAck{HeartbeatAck: &agentv1.HeartbeatAck{ServerTime: timestamppb.Now()}}})
				}
			case *agentv1.ConnectRequest_CommandResult:
				s.f.mu.Lock()
				s.f.results = append(s.f.results, x.CommandResult)
				s.f.mu.Unlock()
			}
		}
	}
}
