package agentapi_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

func TestEnrollReportAndTrack(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		emp := storetest.Employee(t, db, e.org.ID, "Grace")
		dev := storetest.Device(t, db, e.org.ID, "SN-100")
		if _, err := db.AssignDevice(ctx, e.org.ID, dev.ID, emp.ID); err != nil {
			t.Fatal(err)
		}
		secret, _ := e.secret(e.org.ID, enrollment.Options{Name: "laptops"})
		ag := e.enroll(secret, "SN-100", "uuid-SN-100")
		cl := e.agentClient(&ag.Cert)
		res, err := cl.ReportInventory(ctx, inventory("sn-100"))
		if err != nil {
			t.Fatal(err)
		}
		if res.GetDeviceId() != dev.ID || res.GetNeedsReview() || res.GetSerialConflict() {
			t.Fatalf("report response %+v", res)
		}
		d, _ := db.GetDevice(ctx, e.org.ID, dev.ID)
		if d.State != domain.StateInUse || d.AssignedEmployeeID != emp.ID {
			t.Fatalf("device %s / %s", d.State, d.AssignedEmployeeID)
		}
		tr, err := db.GetDeviceTracking(ctx, e.org.ID, dev.ID)
		if err != nil || tr.AgentID != ag.ID || tr.OSName != "Debian" || !strings.Contains(string(tr.Posture), "POSTURE_STATE_ON") ||
			!strings.Contains(string(tr.Inventory), "aa:bb:cc:dd:ee:ff") {
			t.Fatalf("tracking %+v %v", tr, err)
		}
		// Delta: only the changed section.
		delta := &agentv1.ReportInventoryRequest{ChangedSections: []string{"memory_bytes"}, InventoryHash: "h2",
			Inventory: &agentv1.Inventory{MemoryBytes: 32 << 30}}
		if _, err := cl.ReportInventory(ctx, delta); err != nil {
			t.Fatal(err)
		}
		hist, _, _ := db.ListInventoryHistory(ctx, e.org.ID, dev.ID, store.Page{})
		if len(hist) != 2 {
			t.Fatalf("history entries %d", len(hist))
		}
		tr, _ = db.GetDeviceTracking(ctx, e.org.ID, dev.ID)
		if tr.OSName != "Debian" || tr.InventoryHash != "h2" {
			t.Fatalf("delta lost identity columns: %+v", tr)
		}
		// Renew and rekey over mTLS keep the identity.
		rn, err := cl.Renew(ctx, &agentv1.RenewRequest{})
		if err != nil || len(rn.GetCertificate().GetChainDer()) < 2 {
			t.Fatalf("renew %v", err)
		}
		_, csr, _ := identity.NewKeyAndCSR("")
		if _, err := cl.Renew(ctx, &agentv1.RenewRequest{CsrDer: csr}); err != nil {
			t.Fatalf("rekey %v", err)
		}
		if _, err := cl.Renew(ctx, &agentv1.RenewRequest{CsrDer: []byte("junk")}); err == nil {
			t.Fatal("rekey with a junk CSR accepted")
		} else {
			wantCode(t, err, codes.InvalidArgument)
		}
	})
}

// TestRejections covers the "bad input and failure" cases: each is refused with the right
// gRPC code and writes nothing.
func TestRejections(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		secret, sec := e.secret(e.org.ID, enrollment.Options{})
		good := e.enroll(secret, "SN-1", "uuid-1")

		t.Run("no client certificate", func(t *testing.T) {
			_, err := e.agentClient(nil).ReportInventory(ctx, inventory("SN-1"))
			wantCode(t, err, codes.Unavailable)
		})
		t.Run("certificate from another CA", func(t *testing.T) {
			kr, _ := secrets.New(secrets.NewKey())
			other, err := pki.Open(ctx, storetest.NewSQLite(t), kr, pki.Config{})
			if err != nil {
				t.Fatal(err)
			}
			tok, _, _ := other.MintToken(identity.Agent{OrgID: e.org.ID, AgentID: good.ID})
			key, csr, _ := identity.NewKeyAndCSR("")
			iss, err := other.Sign(ctx, tok, csr)
			if err != nil {
				t.Fatal(err)
			}
			cert := tls.Certificate{Certificate: [][]byte{iss.Chain[0].Raw, iss.Chain[1].Raw}, PrivateKey: key}
			_, err = e.agentClient(&cert).ReportInventory(ctx, inventory("SN-1"))
			wantCode(t, err, codes.Unavailable)
		})
		t.Run("expired certificate", func(t *testing.T) {
			id := identity.Agent{OrgID: e.org.ID, AgentID: good.ID}
			cert := forgeCert(t, id, e.ca.Intermediate(), e.intermediateKey(), time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
			_, err := e.agentClient(&cert).ReportInventory(ctx, inventory("SN-1"))
			wantCode(t, err, codes.Unavailable)
		})
		if n := count(t, db, "device_tracking"); n != 0 {
			t.Fatalf("rejected reports wrote %d tracking rows", n)
		}

		t.Run("enrollment token used twice", func(t *testing.T) {
			ec := e.enrollClient()
			ex, err := ec.ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: secret, Hostname: "h"})
			if err != nil {
				t.Fatal(err)
			}
			_, csr, _ := identity.NewKeyAndCSR("")
			if _, err := ec.Enroll(ctx, &agentv1.EnrollRequest{Token: ex.GetToken(), CsrDer: csr}); err != nil {
				t.Fatal(err)
			}
			before := count(t, db, "pki_certs")
			_, err = ec.Enroll(ctx, &agentv1.EnrollRequest{Token: ex.GetToken(), CsrDer: csr})
			wantCode(t, err, codes.Unauthenticated)
			if after := count(t, db, "pki_certs"); after != before {
				t.Fatalf("reused token issued a certificate (%d → %d)", before, after)
			}
		})
		t.Run("malformed CSR", func(t *testing.T) {
			ec := e.enrollClient()
			ex, err := ec.ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: secret, Hostname: "h"})
			if err != nil {
				t.Fatal(err)
			}
			before := count(t, db, "pki_certs")
			_, err = ec.Enroll(ctx, &agentv1.EnrollRequest{Token: ex.GetToken(), CsrDer: []byte("not a csr")})
			wantCode(t, err, codes.InvalidArgument)
			if count(t, db, "pki_certs") != before || count(t, db, "pki_used_tokens") != before {
				t.Fatal("malformed CSR wrote a certificate or consumed the token")
			}
		})
		t.Run("revoked secret", func(t *testing.T) {
			plain, s := e.secret(e.org.ID, enrollment.Options{})
			if _, err := db.RevokeEnrollmentSecret(ctx, e.org.ID, s.ID, false); err != nil {
				t.Fatal(err)
			}
			agents := count(t, db, "agents")
			_, err := e.enrollClient().ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: plain, Hostname: "h"})
			wantCode(t, err, codes.Unauthenticated)
			if !strings.Contains(status.Convert(err).Message(), "download a fresh installer") {
				t.Fatalf("refusal does not tell the user what to do: %v", err)
			}
			if count(t, db, "agents") != agents {
				t.Fatal("revoked secret created an agent")
			}
		})
		t.Run("expired and used-up secrets", func(t *testing.T) {
			past := time.Now().Add(time.Second)
			expiring, _ := e.secret(e.org.ID, enrollment.Options{ExpiresAt: &past})
			once, _ := e.secret(e.org.ID, enrollment.Options{MaxUses: 1})
			e.enroll(once, "SN-ONCE", "")
			time.Sleep(1100 * time.Millisecond)
			for _, s := range []string{expiring, once, "lyes_unknown", ""} {
				_, err := e.enrollClient().ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: s})
				if s == "" {
					wantCode(t, err, codes.InvalidArgument)
				} else {
					wantCode(t, err, codes.Unauthenticated)
				}
			}
		})
		t.Run("oversized inventory", func(t *testing.T) {
			req := inventory("SN-1")
			for i := 0; i < 2000; i++ {
				req.Inventory.Users = append(req.Inventory.Users, &agentv1.User{Username: strings.Repeat("u", 40), FullName: strings.Repeat("x", 40)})
			}
			_, err := e.agentClient(&good.Cert).ReportInventory(ctx, req)
			wantCode(t, err, codes.ResourceExhausted)
			if n := count(t, db, "device_tracking"); n != 0 {
				t.Fatalf("oversized report wrote %d tracking rows", n)
			}
		})
		t.Run("unknown inventory section", func(t *testing.T) {
			_, err := e.agentClient(&good.Cert).ReportInventory(ctx, &agentv1.ReportInventoryRequest{ChangedSections: []string{"nope"}, Inventory: &agentv1.Inventory{}})
			wantCode(t, err, codes.InvalidArgument)
		})
		t.Run("another org's certificate on this org's device", func(t *testing.T) {
			dev := linuxDevice(t, db, e.org.ID, "SN-ORG-A")
			cmd, _, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandLock})
			if err != nil {
				t.Fatal(err)
			}
			orgB := storetest.Org(t, db, domain.PlanPro)
			secB, _ := e.secret(orgB.ID, enrollment.Options{})
			b := e.enroll(secB, "SN-ORG-A", "uuid-b")
			cl := e.agentClient(&b.Cert)
			res, err := cl.ReportInventory(ctx, inventory("SN-ORG-A"))
			if err != nil {
				t.Fatal(err)
			}
			if res.GetDeviceId() == dev.ID {
				t.Fatal("org B's agent was linked to org A's device")
			}
			st, err := cl.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: &agentv1.Hello{}}})
			_ = st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_CommandResult{CommandResult: &agentv1.CommandResult{
				CommandId: cmd.ID, State: agentv1.CommandState_COMMAND_STATE_DONE}}})
			var rerr error
			for rerr == nil {
				_, rerr = st.Recv()
			}
			wantCode(t, rerr, codes.PermissionDenied)
			got, _ := db.GetDeviceCommand(ctx, e.org.ID, cmd.ID)
			if got.State != store.CommandQueued {
				t.Fatalf("org A's command moved to %s", got.State)
			}
			tr, _ := db.GetDeviceTracking(ctx, e.org.ID, dev.ID)
			if tr.AgentID != "" {
				t.Fatalf("org A's device tracked by %s", tr.AgentID)
			}
		})
		_ = sec
	})
}

func TestRevokedOnOpenStream(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		dev := storetest.Device(t, db, e.org.ID, "SN-R")
		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		ag := e.enroll(secret, "SN-R", "uuid-r")
		cl := e.agentClient(&ag.Cert)
		if _, err := cl.ReportInventory(ctx, inventory("SN-R")); err != nil {
			t.Fatal(err)
		}
		st, err := cl.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: &agentv1.Hello{}}}); err != nil {
			t.Fatal(err)
		}
		if m, err := st.Recv(); err != nil || m.GetWelcome() == nil {
			t.Fatalf("welcome: %v %v", m, err)
		}
		tr, _ := db.GetDeviceTracking(ctx, e.org.ID, dev.ID)
		if !tr.Online {
			t.Fatal("device not online while its stream is open")
		}
		if _, err := e.srv.RevokeDevice(ctx, e.org.ID, dev.ID, "offboarded"); err != nil {
			t.Fatal(err)
		}
		var rerr error
		deadline := time.After(5 * time.Second)
		got := make(chan error, 1)
		go func() {
			for {
				if _, err := st.Recv(); err != nil {
					got <- err
					return
				}
			}
		}()
		select {
		case rerr = <-got:
		case <-deadline:
			t.Fatal("open stream not cut after revocation")
		}
		// The stream is ended from outside its Recv (endable.go), so gRPC answers it
		// Canceled; the agent's next stream is refused as revoked.
		wantCode(t, rerr, codes.Canceled)
		st2, err := cl.Connect(ctx)
		if err == nil {
			_ = st2.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: &agentv1.Hello{}}})
			_, err = st2.Recv()
		}
		if c := codeOf(err); c != codes.Unauthenticated && c != codes.Unavailable {
			t.Fatalf("revoked agent's next stream: %v", err)
		}
		// New calls with the revoked certificate fail at the handshake (new connection) or
		// in the interceptor (existing connection).
		_, err = cl.ReportInventory(ctx, inventory("SN-R"))
		if c := codeOf(err); c != codes.Unauthenticated && c != codes.Unavailable {
			t.Fatalf("revoked agent call: %v", err)
		}
		_, err = e.agentClient(&ag.Cert).ReportInventory(ctx, inventory("SN-R"))
		wantCode(t, err, codes.Unavailable)
		// Renewal is refused too.
		if _, err := cl.Renew(ctx, &agentv1.RenewRequest{}); err == nil {
			t.Fatal("revoked agent renewed")
		}
	})
}

func TestEnrollmentRateLimit(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnvWith(t, db, domain.PlanPro, func(c *agentapi.Config) {
			c.EnrollRateLimit = agentapi.RateLimit{PerSecond: 0.01, Burst: 2}
		})
		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		ec := e.enrollClient()
		exchange := func(serial string) error {
			_, err := ec.ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: secret, SerialNumber: serial, Hostname: serial})
			return err
		}
		for _, serial := range []string{"SN-RL-1", "SN-RL-2"} {
			if err := exchange(serial); err != nil {
				t.Fatalf("call within the burst: %v", err)
			}
		}
		err := exchange("SN-RL-3")
		wantCode(t, err, codes.ResourceExhausted)
		if !strings.Contains(status.Convert(err).Message(), "retry in") {
			t.Fatalf("refusal does not say when to retry: %v", err)
		}
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents WHERE org_id = $1`, e.org.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("%d agents written, want 2: a refused call must write nothing", n)
		}
	})
}

// TestPresenceOfManyStreams opens streams at once (their online writes share batches) and
// closes them: every agent is online when its welcome arrives, and offline after.
func TestPresenceOfManyStreams(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		const n = 12
		agents := make([]enrolledAgent, n)
		for i := range agents {
			agents[i] = e.enroll(secret, fmt.Sprintf("SN-P-%02d", i), fmt.Sprintf("uuid-p-%02d", i))
		}
		sctx, closeStreams := context.WithCancel(ctx)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, ag := range agents {
			wg.Add(1)
			go func(ag enrolledAgent) {
				defer wg.Done()
				st, err := e.agentClient(&ag.Cert).Connect(sctx)
				if err == nil {
					err = st.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: &agentv1.Hello{}}})
				}
				if err == nil {
					var m *agentv1.ConnectResponse
					if m, err = st.Recv(); err == nil && m.GetWelcome() == nil {
						err = fmt.Errorf("first message is not a welcome: %v", m)
					}
				}
				if err == nil {
					if a, gerr := db.GetAgent(ctx, e.org.ID, ag.ID); gerr != nil || !a.Online {
						err = fmt.Errorf("agent %s not online after its welcome (%v)", ag.ID, gerr)
					}
				}
				errs <- err
			}(ag)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		closeStreams()
		for _, ag := range agents {
			waitOffline(t, db, e.org.ID, ag.ID)
		}
	})
}

func TestRenewExpiredCertificate(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// A CA made a moment ago cannot have issued a certificate that expired days ago, so
		// the grace period is scaled down instead: 30 s.
		e := newEnvWith(t, db, domain.PlanPro, func(c *agentapi.Config) { c.RenewGrace = 30 * time.Second })
		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		ec := e.enrollClient()
		expired := func(agentID string, age time.Duration) tls.Certificate {
			id := identity.Agent{OrgID: e.org.ID, AgentID: agentID}
			return forgeCert(t, id, e.ca.Intermediate(), e.intermediateKey(), e.ca.Intermediate().NotBefore, time.Now().Add(-age))
		}
		csrFor := func(key any) []byte {
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			if err != nil {
				t.Fatal(err)
			}
			return der
		}
		renew := func(c tls.Certificate, csr []byte) (*agentv1.RenewResponse, error) {
			return ec.RenewExpired(ctx, &agentv1.RenewExpiredRequest{ChainDer: c.Certificate, CsrDer: csr})
		}
		good := e.enroll(secret, "SN-EXP-1", "uuid-exp-1")
		revoked := e.enroll(secret, "SN-EXP-2", "uuid-exp-2")
		if err := e.srv.RevokeAgent(ctx, e.org.ID, revoked.ID, "offboarded"); err != nil {
			t.Fatal(err)
		}
		otherKey, _, _ := identity.NewKeyAndCSR("")
		old := expired(good.ID, time.Second)
		tooOld := expired(good.ID, 55*time.Second) // the intermediate dates from a minute before the CA was made
		revokedCert := expired(revoked.ID, time.Second)
		// Signed by a key that is not the CA's, naming the revoked agent: the answer must not
		// say that this agent exists or is revoked.
		strangerKey, _, _ := identity.NewKeyAndCSR("")
		impostor := *e.ca.Intermediate() // same name as our intermediate, the stranger's key
		impostor.PublicKey = strangerKey.Public()
		der, err := x509.CreateCertificate(rand.Reader, &impostor, &impostor, &strangerKey.PublicKey, strangerKey)
		if err != nil {
			t.Fatal(err)
		}
		impostorCert, _ := x509.ParseCertificate(der)
		stranger := forgeCert(t, identity.Agent{OrgID: e.org.ID, AgentID: revoked.ID}, impostorCert, strangerKey,
			e.ca.Intermediate().NotBefore, time.Now().Add(-time.Second))

		before := count(t, db, "pki_certs")
		for _, tc := range []struct {
			name string
			cert tls.Certificate
			csr  []byte
			want codes.Code
		}{
			{"not expired", good.Cert, csrFor(good.Cert.PrivateKey), codes.FailedPrecondition},
			{"expired beyond the grace period", tooOld, csrFor(tooOld.PrivateKey), codes.Unauthenticated},
			{"CSR signed with another key", old, csrFor(otherKey), codes.Unauthenticated},
			{"revoked agent", revokedCert, csrFor(revokedCert.PrivateKey), codes.Unauthenticated},
			{"malformed CSR", old, []byte("nope"), codes.InvalidArgument},
			{"no certificate", tls.Certificate{}, csrFor(old.PrivateKey), codes.Unauthenticated},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := renew(tc.cert, tc.csr)
				wantCode(t, err, tc.want)
			})
		}
		t.Run("forged certificate naming a revoked agent", func(t *testing.T) {
			_, err := renew(stranger, csrFor(stranger.PrivateKey))
			wantCode(t, err, codes.Unauthenticated)
			if msg := status.Convert(err).Message(); msg != "certificate not accepted" {
				t.Fatalf("message %q tells more than a refusal", msg)
			}
		})
		t.Run("revoked agent is told so", func(t *testing.T) {
			_, err := renew(revokedCert, csrFor(revokedCert.PrivateKey))
			if msg := status.Convert(err).Message(); msg != "agent certificate revoked" {
				t.Fatalf("message %q", msg)
			}
		})
		if n := count(t, db, "pki_certs"); n != before {
			t.Fatalf("refused renewals issued %d certificates", n-before)
		}

		t.Run("expired within the grace period", func(t *testing.T) {
			res, err := renew(old, csrFor(old.PrivateKey))
			if err != nil {
				t.Fatal(err)
			}
			renewed := tls.Certificate{Certificate: res.GetCertificate().GetChainDer(), PrivateKey: old.PrivateKey}
			// The new certificate works on the mTLS agent API, as the same agent.
			if _, err := e.agentClient(&renewed).ReportInventory(ctx, inventory("SN-EXP-1")); err != nil {
				t.Fatalf("report with the renewed certificate: %v", err)
			}
			leaf, err := x509.ParseCertificate(renewed.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if id, err := identity.FromCertificate(leaf); err != nil || id.AgentID != good.ID {
				t.Fatalf("renewed identity %+v, %v; want agent %s", id, err, good.ID)
			}
		})
	})
}
