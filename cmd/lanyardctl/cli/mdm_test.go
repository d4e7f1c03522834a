package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestMDMCommands(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewSQLite(t)
	apns := fakeapns.New()
	t.Cleanup(apns.Close)
	keys, _ := secrets.New(secrets.NewKey())
	mux := http.NewServeMux()
	dev := httptest.NewUnstartedServer(mux)
	svc, err := apple.New(ctx, apple.Config{DB: db, Keyring: keys, BaseURL: "http://" + dev.Listener.Addr().String(),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		APNsURL: apns.URL(), APNsRootCAs: apns.RootCAs(), CAKeyBits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	mux.Handle("/", svc.Handler())
	dev.Start()
	t.Cleanup(dev.Close)
	h := apitest.New(t, db, api.Options{}, svc.Routes())
	o := storetest.Org(t, db, domain.PlanPro)
	emp := storetest.Employee(t, db, o.ID, "Linus")
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(ctx, args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	topic := "com.apple.mgmt.External.cli-test"
	certPEM, keyPEM, _ := fakeapns.NewPushCert(topic, time.Now().AddDate(1, 0, 0))
	_ = os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "k.pem"), keyPEM, 0o600)
	if out, err := run("mdm", "push-cert-upload", "--cert", filepath.Join(dir, "c.pem"), "--key", filepath.Join(dir, "k.pem")); err != nil || !strings.Contains(out, topic) {
		t.Fatalf("push-cert-upload: %q %v", out, err)
	}
	out, err := run("--json", "mdm", "enroll-link", "--employee", emp.ID)
	if err != nil || !strings.Contains(out, "/enroll/") {
		t.Fatalf("enroll-link: %q %v", out, err)
	}
	linkURL := out[strings.Index(out, "http"):]
	linkURL = linkURL[:strings.Index(linkURL, `"`)]
	mac := macsim.New("C02CLI00001")
	apns.Subscribe(mac.Token(), mac.Wake)
	prof, err := mac.FetchProfile(ctx, linkURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := mac.Enroll(ctx, prof); err != nil {
		t.Fatal(err)
	}
	var devID string
	deadline := time.Now().Add(15 * time.Second)
	for devID == "" && time.Now().Before(deadline) {
		if e, err := db.MDMGetEnrollment(ctx, mac.UDID); err == nil && e.Status == "enrolled" {
			devID = e.DeviceID
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, err := run("mdm", "enrollments"); err != nil || !strings.Contains(out, "C02CLI00001") {
		t.Fatalf("enrollments: %q %v", out, err)
	}
	if _, err := run("mdm", "command", devID, "DeviceLock"); err == nil || !strings.Contains(err.Error(), "confirm") {
		t.Fatalf("lock without --confirm: %v", err)
	}
	out, err = run("--json", "mdm", "command", devID, "DeviceLock", "--confirm", "--message", "Call IT")
	if err != nil || !strings.Contains(out, `"state": "queued"`) {
		t.Fatalf("lock: %q %v", out, err)
	}
	id := out[strings.Index(out, `"id": "`)+7:]
	id = id[:strings.Index(id, `"`)]
	deadline = time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if l, _ := mac.Locked(); l {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, macPIN := mac.Locked()
	if out, err := run("mdm", "pin", id); err != nil || macPIN == "" || !strings.Contains(out, macPIN) {
		t.Fatalf("pin: %q %v (mac %q)", out, err, macPIN)
	}
	if out, err := run("mdm", "commands", devID); err != nil || !strings.Contains(out, "DeviceLock") {
		t.Fatalf("commands: %q %v", out, err)
	}
	mac.Wait()
}
