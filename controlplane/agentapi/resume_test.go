package agentapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestResumedSessionOfRevokedAgentRefused: agents resume TLS sessions (a ticket skips the
// certificate exchange), and a resumed handshake of a revoked agent is still refused: the
// identity restored from the ticket goes through the same revocation check.
func TestResumedSessionOfRevokedAgentRefused(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		ag := e.enroll(secret, "SN-T", "uuid-t")
		pool := x509.NewCertPool()
		pool.AddCert(e.ca.Root())
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{ag.Cert},
			ClientSessionCache: tls.NewLRUClientSessionCache(4), NextProtos: []string{"h2"}}
		// handshake connects and reads the server's first bytes (its HTTP/2 settings): in
		// TLS 1.3 the client certificate is judged, and the ticket arrives, after the
		// client's side of the handshake, so only a read shows either.
		handshake := func(srv *agentapi.Server) (resumed bool, err error) {
			c, err := tls.Dial("tcp", srv.AgentAddr().String(), cfg)
			if err != nil {
				return false, err
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 64)); err != nil {
				return false, err
			}
			return c.ConnectionState().DidResume, nil
		}
		if _, err := handshake(e.srv); err != nil {
			t.Fatalf("first handshake: %v", err)
		}
		resumed, err := handshake(e.srv)
		if err != nil || !resumed {
			t.Fatalf("second handshake: resumed %v, err %v (want a resumed session)", resumed, err)
		}
		// Another replica (and this one after a restart) derives the same ticket keys:
		// the session resumes there too, which is what keeps a reconnect storm cheap.
		other, _, _ := startServer(t, db, e.kr)
		resumed, err = handshake(other)
		if err != nil || !resumed {
			t.Fatalf("handshake with another replica: resumed %v, err %v (want a resumed session)", resumed, err)
		}
		if err := e.srv.RevokeAgent(ctx, e.org.ID, ag.ID, "lost"); err != nil {
			t.Fatal(err)
		}
		if _, err := handshake(e.srv); err == nil {
			t.Fatal("a revoked agent's resumed session was accepted")
		}
		// The other replica learns of the revocation by its poll (or NOTIFY on Postgres).
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := handshake(other); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("another replica accepted a revoked agent's resumed session")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
