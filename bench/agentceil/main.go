// Command agentceil is the ceiling for the agent benchmark: a gRPC server with the agent
// API's transport (internal/agenttransport: keepalive, windows, buffers, shared write
// buffer; mutual TLS 1.3 with ECDSA P-256 and a root → intermediate → leaf chain) serving
// the same proto services with no work behind them. bench/agentsim drives it exactly like
// `lanyard serve`, so each of Lanyard's figures is reported as a ratio to what the machine
// does for the transport alone, measured minutes apart in the same run (run.sh).
//
// What it answers: ExchangeSecret and Enroll (signs the CSR), ReportInventory (a device id
// derived from the agent id), Connect (welcome, heartbeat acks, command results counted)
// and, on -http, POST /api/v1/devices/{id}/actions, which pushes a command onto the
// device's stream and answers 201, and GET /healthz. Nothing is stored.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	_ "net/http/pprof" // the simulator takes a CPU profile of the inventory phase, as from lanyard
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/internal/agenttransport"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

func main() {
	agentAddr := flag.String("agent", "127.0.0.1:18443", "agent (mTLS) listener")
	enrollAddr := flag.String("enroll", "127.0.0.1:18444", "enrollment listener")
	httpAddr := flag.String("http", "127.0.0.1:18080", "admin stand-in: POST /api/v1/devices/{id}/actions, GET /healthz, /debug/pprof")
	caOut := flag.String("ca-out", "", "write the root's SHA-256 fingerprint here (for agentsim -ca-sha256)")
	heartbeat := flag.Duration("heartbeat", 30*time.Second, "heartbeat interval told to agents")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *agentAddr, *enrollAddr, *httpAddr, *caOut, *heartbeat); err != nil {
		log.Fatal(err)
	}
}

func serve(ctx context.Context, agentAddr, enrollAddr, httpAddr, caOut string, hb time.Duration) error {
	ca, err := newCA()
	if err != nil {
		return err
	}
	if caOut != "" {
		if err := os.WriteFile(caOut, []byte(ca.fingerprint()+"\n"), 0o644); err != nil {
			return err
		}
	}
	srvCert, err := ca.serverCert()
	if err != nil {
		return err
	}
	s := &ceiling{ca: ca, heartbeat: hb, streams: map[string]*stream{}}
	agentTLS := &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool,
		Certificates: []tls.Certificate{srvCert}}
	agentGRPC := grpc.NewServer(append(agenttransport.ServerOptions(),
		grpc.Creds(credentials.NewTLS(agentTLS)), grpc.MaxRecvMsgSize(512<<10))...)
	agentv1.RegisterAgentServiceServer(agentGRPC, s)
	enrollGRPC := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{srvCert}})),
		agenttransport.KeepaliveParams(), agenttransport.KeepalivePolicy())
	agentv1.RegisterEnrollmentServiceServer(enrollGRPC, &enroller{ca: ca})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /api/v1/devices/{id}/actions", s.action)
	mux.Handle("/debug/pprof/", http.DefaultServeMux)
	hs := &http.Server{Addr: httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	aln, err := agenttransport.Listen(context.Background(), agentAddr)
	if err != nil {
		return err
	}
	eln, err := net.Listen("tcp", enrollAddr)
	if err != nil {
		return err
	}
	errc := make(chan error, 3)
	go func() { errc <- agentGRPC.Serve(aln) }()
	go func() { errc <- enrollGRPC.Serve(eln) }()
	go func() { errc <- hs.ListenAndServe() }()
	log.Printf("agentceil serving: agent %s, enroll %s, http %s", aln.Addr(), eln.Addr(), httpAddr)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	agentGRPC.Stop()
	enrollGRPC.Stop()
	_ = hs.Close()
	return err
}

// ceiling is the no-work agent service.
type ceiling struct {
	agentv1.UnimplementedAgentServiceServer
	ca        *miniCA
	heartbeat time.Duration
	mu        sync.Mutex
	streams   map[string]*stream // by device id
	nextCmd   atomic.Int64
}

type stream struct {
	mu sync.Mutex // one Send at a time: the handler's acks and the HTTP handler's pushes
	st agentv1.AgentService_ConnectServer
}

func (s *stream) send(m *agentv1.ConnectResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Send(m)
}

// agentID is the agent id in the client certificate's common name.
func agentID(ctx context.Context) string {
	if ti, ok := peerTLS(ctx); ok && len(ti.State.VerifiedChains) > 0 {
		return ti.State.VerifiedChains[0][0].Subject.CommonName
	}
	return ""
}

func deviceOf(agent string) string { return "dev-" + agent }

func (s *ceiling) ReportInventory(ctx context.Context, _ *agentv1.ReportInventoryRequest) (*agentv1.ReportInventoryResponse, error) {
	return &agentv1.ReportInventoryResponse{DeviceId: deviceOf(agentID(ctx))}, nil
}

func (s *ceiling) Connect(st agentv1.AgentService_ConnectServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	if first.GetHello() == nil {
		return status.Error(codes.InvalidArgument, "the first message on a stream must be hello")
	}
	agent := agentID(st.Context())
	dev := deviceOf(agent)
	w := &stream{st: st}
	s.mu.Lock()
	s.streams[dev] = w
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.streams[dev] == w {
			delete(s.streams, dev)
		}
		s.mu.Unlock()
	}()
	if err := w.send(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_Welcome{Welcome: &agentv1.Welcome{
		AgentId: agent, DeviceId: dev, HeartbeatIntervalSeconds: uint32(s.heartbeat / time.Second)}}}); err != nil {
		return err
	}
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if m.GetHeartbeat() != nil {
			if err := w.send(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_HeartbeatAck{HeartbeatAck: &agentv1.HeartbeatAck{
				ServerTime: timestamppb.Now()}}}); err != nil {
				return err
			}
		}
	}
}

// action pushes a lock command to the device's stream, like the admin API's device actions.
func (s *ceiling) action(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Type           string `json:"type"`
		IdempotencyKey string `json:"idempotency_key"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	st := s.streams[r.PathValue("id")]
	s.mu.Unlock()
	if st == nil {
		http.Error(w, "device has no open stream", http.StatusConflict)
		return
	}
	id := "cmd-" + strconv.FormatInt(s.nextCmd.Add(1), 10)
	if err := st.send(&agentv1.ConnectResponse{Msg: &agentv1.ConnectResponse_Command{Command: &agentv1.Command{
		Id: id, IdempotencyKey: body.IdempotencyKey}}}); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "state": "sent"})
}

// enroller hands out certificates for any secret: the ceiling measures the channel, not
// enrollment policy.
type enroller struct {
	agentv1.UnimplementedEnrollmentServiceServer
	ca   *miniCA
	next atomic.Int64
}

func (e *enroller) ExchangeSecret(context.Context, *agentv1.ExchangeSecretRequest) (*agentv1.ExchangeSecretResponse, error) {
	return &agentv1.ExchangeSecretResponse{Token: "agent-" + strconv.FormatInt(e.next.Add(1), 10)}, nil
}

func (e *enroller) Enroll(_ context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	csr, err := x509.ParseCertificateRequest(req.GetCsrDer())
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad CSR")
	}
	leaf, err := e.ca.sign(req.GetToken(), csr.PublicKey)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &agentv1.EnrollResponse{AgentId: req.GetToken(), Certificate: &agentv1.CertificateBundle{
		ChainDer: [][]byte{leaf, e.ca.inter.Raw}, RootsDer: [][]byte{e.ca.root.Raw}}}, nil
}

// miniCA is a root and an intermediate, P-256 like the control plane's CA.
type miniCA struct {
	root, inter *x509.Certificate
	interKey    *ecdsa.PrivateKey
	pool        *x509.CertPool
}

func newCA() (*miniCA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agentceil root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rt, rt, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(rootDER)
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "agentceil intermediate"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, MaxPathLenZero: true}
	interDER, err := x509.CreateCertificate(rand.Reader, it, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, _ := x509.ParseCertificate(interDER)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &miniCA{root: root, inter: inter, interKey: interKey, pool: pool}, nil
}

func (c *miniCA) fingerprint() string {
	sum := sha256.Sum256(c.root.Raw)
	return hex.EncodeToString(sum[:])
}

var serial atomic.Int64

func (c *miniCA) sign(cn string, pub any) ([]byte, error) {
	now := time.Now()
	t := &x509.Certificate{SerialNumber: big.NewInt(1000 + serial.Add(1)), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	return x509.CreateCertificate(rand.Reader, t, c.inter, pub, c.interKey)
}

func (c *miniCA) serverCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := c.sign("localhost", &key.PublicKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	// The root goes along, as the control plane sends it: the simulator pins it.
	return tls.Certificate{Certificate: [][]byte{der, c.inter.Raw, c.root.Raw}, PrivateKey: key}, nil
}
func peerTLS(ctx context.Context) (credentials.TLSInfo, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return credentials.TLSInfo{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ti, ok
}
