package apple_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// clock is a test clock that can jump forward.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

type harness struct {
	t     *testing.T
	db    *store.DB
	svc   *apple.Service
	apns  *fakeapns.Server
	srv   *httptest.Server
	keys  *secrets.Keyring
	clock *clock
	org   domain.Org
	emp   domain.Employee
	topic string
	mux   *http.ServeMux
}

// newHarness starts the MDM service on a real loopback HTTP server with a fake APNs
// gateway, an org with an uploaded push certificate and one employee.
func newHarness(t *testing.T, db *store.DB, tune ...func(*apple.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, db: db, clock: &clock{}}
	h.apns = fakeapns.New()
	t.Cleanup(h.apns.Close)
	var err error
	if h.keys, err = secrets.New(secrets.NewKey()); err != nil {
		t.Fatal(err)
	}
	h.mux = http.NewServeMux()
	h.srv = httptest.NewUnstartedServer(h.mux)
	base := "http://" + h.srv.Listener.Addr().String()
	level := slog.LevelWarn
	if os.Getenv("MDM_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg := apple.Config{
		DB: db, Keyring: h.keys, BaseURL: base,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		APNsURL: h.apns.URL(), APNsRootCAs: h.apns.RootCAs(),
		CAKeyBits: 2048, Now: h.clock.Now, RepushInterval: time.Minute,
	}
	for _, f := range tune {
		f(&cfg)
	}
	h.svc, err = apple.New(ctx, cfg)
	if err != nil {
		t.Fatalf("new mdm service: %v", err)
	}
	if db.Dialect == store.Postgres {
		schema := apple.NanoMDMSchema(db.Schema)
		t.Cleanup(func() { _, _ = db.SQL.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`) })
	}
	t.Cleanup(h.svc.Close)
	h.mux.Handle("/", h.svc.Handler())
	h.srv.Start()
	t.Cleanup(h.srv.Close)

	h.org = storetest.Org(t, db, domain.PlanPro)
	h.emp = storetest.Employee(t, db, h.org.ID, "Ada")
	h.topic = "com.apple.mgmt.External." + domain.NewID()
	certPEM, keyPEM, err := fakeapns.NewPushCert(h.topic, time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.UploadPushCert(ctx, h.org.ID, "token:test", certPEM, keyPEM); err != nil {
		t.Fatalf("upload push cert: %v", err)
	}
	return h
}

// newMac returns a simulated Mac woken by the fake APNs gateway.
func (h *harness) newMac(serial string) *macsim.Mac {
	m := macsim.New(serial)
	h.apns.Subscribe(m.Token(), m.Wake)
	h.t.Cleanup(m.Wait)
	return m
}

// enroll downloads a profile from a fresh link for the employee and enrolls m.
func (h *harness) enroll(m *macsim.Mac, employeeID string) {
	h.t.Helper()
	ctx := context.Background()
	link, err := h.svc.CreateEnrollLink(ctx, h.org.ID, employeeID, "token:test", time.Hour)
	if err != nil {
		h.t.Fatalf("create link: %v", err)
	}
	prof, err := m.FetchProfile(ctx, link.URL)
	if err != nil {
		h.t.Fatalf("fetch profile: %v", err)
	}
	if err := m.Enroll(ctx, prof); err != nil {
		h.t.Fatalf("enroll: %v", err)
	}
}

// eventually polls cond for up to 30 s (CI runs every package at once on 2 cores).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for: %s", what)
}

func (h *harness) enrollment(udid string) store.MDMEnrollment {
	h.t.Helper()
	e, err := h.db.MDMGetEnrollment(context.Background(), udid)
	if err != nil {
		h.t.Fatalf("get enrollment: %v", err)
	}
	return e
}

func (h *harness) command(id string) store.MDMCommand {
	h.t.Helper()
	c, err := h.db.MDMGetCommand(context.Background(), id)
	if err != nil {
		h.t.Fatalf("get command: %v", err)
	}
	return c
}

// idle waits until the Mac has no open command left.
func (h *harness) idle(m *macsim.Mac) {
	h.t.Helper()
	eventually(h.t, "no open commands for "+m.Serial, func() bool {
		open, err := h.db.MDMOpenCommands(context.Background(), m.UDID)
		return err == nil && len(open) == 0
	})
	m.Wait()
}
