package agentapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

type env struct {
	t   testing.TB
	db  *store.DB
	kr  *secrets.Keyring
	ca  *pki.CA
	srv *agentapi.Server
	org domain.Org
	// stop ends the server and waits for Start to return.
	stop func()
}

func startServer(t testing.TB, db *store.DB, kr *secrets.Keyring) (*agentapi.Server, *pki.CA, func()) {
	t.Helper()
	return startServerWith(t, db, kr, nil)
}

// startServerWith starts a server whose test config tune changes (nil: none).
func startServerWith(t testing.TB, db *store.DB, kr *secrets.Keyring, tune func(*agentapi.Config)) (*agentapi.Server, *pki.CA, func()) {
	t.Helper()
	ctx := context.Background()
	ca, err := pki.Open(ctx, db, kr, pki.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agentapi.Config{AgentAddr: "127.0.0.1:0", PollInterval: 200 * time.Millisecond,
		HeartbeatInterval: time.Second, MaxMessageBytes: 64 << 10, Sealer: kr}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := agentapi.New(db, ca, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Start(sctx) }()
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	}
	t.Cleanup(stop)
	return srv, ca, stop
}

func newEnv(t testing.TB, db *store.DB, plan domain.Plan) *env {
	t.Helper()
	return newEnvWith(t, db, plan, nil)
}

func newEnvWith(t testing.TB, db *store.DB, plan domain.Plan, tune func(*agentapi.Config)) *env {
	t.Helper()
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	srv, ca, stop := startServerWith(t, db, kr, tune)
	o := domain.Org{Name: "Org " + domain.NewID()[:8], Plan: plan, TimeZone: "UTC"}
	if err := store.CreateOrg(context.Background(), db.SQL, &o); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, db: db, kr: kr, ca: ca, srv: srv, org: o, stop: stop}
}

func (e *env) secret(orgID string, o enrollment.Options) (string, store.EnrollmentSecret) {
	e.t.Helper()
	plain, s, err := enrollment.Mint(context.Background(), e.db, orgID, o)
	if err != nil {
		e.t.Fatal(err)
	}
	return plain, s
}

func dial(t testing.TB, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (e *env) enrollClient() agentv1.EnrollmentServiceClient {
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	cc := dial(e.t, e.srv.EnrollAddr().String(), &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "localhost"})
	return agentv1.NewEnrollmentServiceClient(cc)
}

// enrolledAgent is an agent with its certificate.
type enrolledAgent struct {
	ID   string
	Cert tls.Certificate
}

func (e *env) enroll(secret, serial, hwUUID string) enrolledAgent {
	e.t.Helper()
	ctx := context.Background()
	ec := e.enrollClient()
	ex, err := ec.ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: secret, Hostname: "host-" + serial,
		SerialNumber: serial, HardwareUuid: hwUUID, Platform: "linux", AgentVersion: "test"})
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	key, csr, err := identity.NewKeyAndCSR("host")
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := ec.Enroll(ctx, &agentv1.EnrollRequest{Token: ex.GetToken(), CsrDer: csr})
	if err != nil {
		e.t.Fatalf("enroll: %v", err)
	}
	return enrolledAgent{ID: res.GetAgentId(), Cert: tls.Certificate{Certificate: res.GetCertificate().GetChainDer(), PrivateKey: key}}
}

func (e *env) agentClient(cert *tls.Certificate) agentv1.AgentServiceClient {
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "localhost"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return agentv1.NewAgentServiceClient(dial(e.t, e.srv.AgentAddr().String(), cfg))
}

func inventory(serial string) *agentv1.ReportInventoryRequest {
	return &agentv1.ReportInventoryRequest{Full: true, InventoryHash: "hash-" + serial, Inventory: &agentv1.Inventory{
		Hostname: "host-" + serial,
		Os:       &agentv1.OperatingSystem{Platform: "linux", Name: "Debian", Version: "12.11", KernelVersion: "6.1", Arch: "amd64"},
		Hardware: &agentv1.Hardware{SerialNumber: serial, Vendor: "Dell", Model: "XPS 13", HardwareUuid: "uuid-" + serial},
		Cpu:      &agentv1.Cpu{Model: "EPYC", PhysicalCores: 2, LogicalCores: 4}, MemoryBytes: 16 << 30,
		Disks: []*agentv1.Disk{{Device: "/dev/nvme0n1p2", Mountpoint: "/", Fstype: "ext4", TotalBytes: 512 << 30, FreeBytes: 100 << 30,
			Encrypted: agentv1.PostureState_POSTURE_STATE_ON}},
		NetworkInterfaces: []*agentv1.NetworkInterface{{Name: "eth0", MacAddress: "aa:bb:cc:dd:ee:ff", IpAddresses: []string{"192.0.2.10/24"}, Up: true}},
		Users:             []*agentv1.User{{Username: "ada", Uid: "1000", Admin: true}},
		UptimeSeconds:     3600,
		Posture: &agentv1.Posture{DiskEncryption: agentv1.PostureState_POSTURE_STATE_ON, Firewall: agentv1.PostureState_POSTURE_STATE_OFF,
			ScreenLock: agentv1.PostureState_POSTURE_STATE_UNKNOWN, OsVersion: "12.11"},
	}}
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v (%v), want %s", status.Code(err), err, code)
	}
}

// count returns a row count for a table and condition.
func count(t *testing.T, db *store.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL.QueryRow("SELECT COUNT(*) FROM "+q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// forgeCert signs a certificate for id with the given issuer, valid in [nb, na].
func forgeCert(t *testing.T, id identity.Agent, issuer *x509.Certificate, issuerKey any, nb, na time.Time) tls.Certificate {
	t.Helper()
	key, _, err := identity.NewKeyAndCSR("")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: id.AgentID},
		NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{id.URI()}, DNSNames: []string{id.DNSName()}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, issuer.Raw}, PrivateKey: key}
}

// intermediateKey opens the CA's sealed intermediate key (tests only).
func (e *env) intermediateKey() *ecdsa.PrivateKey {
	e.t.Helper()
	m, err := e.db.LoadPKIAuthority(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	der, err := e.kr.Open(m.IntermediateKeySealed, "pki:intermediate")
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		e.t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

func codeOf(err error) codes.Code { return status.Code(err) }

// linuxDevice creates a Linux laptop (storetest.Device makes Macs, which the agent cannot
// lock: their locks fail at once without MDM).
func linuxDevice(t testing.TB, db *store.DB, orgID, serial string) domain.Device {
	t.Helper()
	d := domain.Device{OrgID: orgID, SerialNumber: serial, Vendor: "dell", Model: "XPS 13", Platform: domain.PlatformLinux, EquipmentType: "laptop"}
	if err := db.CreateDevice(context.Background(), &d); err != nil {
		t.Fatalf("create device: %v", err)
	}
	return d
}
