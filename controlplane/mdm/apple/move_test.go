package apple_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/pgmove"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// A Mac enrolled through Apple MDM on SQLite, with a lock queued while it is away, is
// moved to Postgres (move-to-postgres: the tables plus nanomdm's replayed state); the
// server on Postgres, at the same URL, accepts the Mac's identity certificate without a
// new enrollment and delivers the lock, which ends done.
func TestMoveNanoMDMToPostgres(t *testing.T) {
	dst := storetest.NewPostgres(t)
	src := storetest.NewSQLite(t)
	ctx := context.Background()
	apns := fakeapns.New()
	t.Cleanup(apns.Close)
	keys, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	var handler atomic.Pointer[http.Handler]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	base := "http://" + srv.Listener.Addr().String()
	serve := func(db *store.DB) *apple.Service {
		svc, err := apple.New(ctx, apple.Config{DB: db, Keyring: keys, BaseURL: base,
			Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			APNsURL: apns.URL(), APNsRootCAs: apns.RootCAs(), CAKeyBits: 2048, RepushInterval: time.Minute})
		if err != nil {
			t.Fatalf("mdm service on %s: %v", db.Dialect, err)
		}
		t.Cleanup(svc.Close)
		h := svc.Handler()
		handler.Store(&h)
		return svc
	}
	before := serve(src)
	srv.Start()
	t.Cleanup(srv.Close)

	org := storetest.Org(t, src, domain.PlanPro)
	emp := storetest.Employee(t, src, org.ID, "Ada")
	topic := "com.apple.mgmt.External." + domain.NewID()
	certPEM, keyPEM, err := fakeapns.NewPushCert(topic, time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := before.UploadPushCert(ctx, org.ID, "token:test", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	// Not subscribed to the fake APNs: the Mac checks in only when the test says so.
	mac := macsim.New("C02MOVE00001")
	link, err := before.CreateEnrollLink(ctx, org.ID, emp.ID, "token:test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := mac.FetchProfile(ctx, link.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := mac.Enroll(ctx, prof); err != nil {
		t.Fatal(err)
	}
	if err := mac.Session(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := src.MDMGetEnrollment(ctx, mac.UDID)
	if err != nil || e.Status != "enrolled" {
		t.Fatalf("enrollment on SQLite %+v %v", e, err)
	}
	lock, err := before.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqDeviceLock, Message: "moved"}, apple.EnqueueOptions{IdempotencyKey: "lock-move"})
	if err != nil {
		t.Fatal(err)
	}
	var kvRows int
	if err := src.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM mdm_kv`).Scan(&kvRows); err != nil || kvRows == 0 {
		t.Fatalf("no nanomdm state on SQLite: %d %v", kvRows, err)
	}

	// Without a nanomdm mover the move refuses rather than drop the Mac's state.
	if _, err := pgmove.Move(ctx, src, dst, pgmove.Options{}); err == nil || !strings.Contains(err.Error(), "Apple MDM state") {
		t.Fatalf("move without the nanomdm mover: %v", err)
	}
	var summary string
	if _, err := pgmove.Move(ctx, src, dst, pgmove.Options{NanoMDM: apple.NanoMDMMove{}, Progress: func(s string, n int64) {
		if n < 0 {
			summary = s
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "1 enrollments, 1 identity certificates, 1 queued commands") {
		t.Fatalf("nanomdm summary %q", summary)
	}

	serve(dst)
	if err := mac.Session(ctx); err != nil {
		t.Fatalf("the Mac's check-in on Postgres: %v", err)
	}
	c, err := dst.MDMGetCommand(ctx, lock.Command.UUID)
	if err != nil || c.State != store.MDMCmdDone {
		t.Fatalf("the lock queued on SQLite, on Postgres: %+v %v", c, err)
	}
	if locked, _ := mac.Locked(); !locked {
		t.Fatal("the Mac was not locked")
	}
	if errs := mac.Errors(); len(errs) > 0 {
		t.Fatalf("the Mac saw errors: %v", errs)
	}
}
