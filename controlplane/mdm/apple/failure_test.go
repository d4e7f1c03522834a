package apple_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestBadInputAndFailure covers the issue's "Bad input and failure" list on both dialects.
func TestBadInputAndFailure(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		mac := h.newMac("C02BAD00001")
		h.enroll(mac, h.emp.ID)
		h.idle(mac)
		e := h.enrollment(mac.UDID)
		cert, key := mac.Identity()
		idle := []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>` + mac.UDID + `</string></dict></plist>`)
		serverURL := h.srv.URL + "/mdm/connect"

		put := func(body []byte, sig string) int {
			t.Helper()
			req, _ := http.NewRequest(http.MethodPut, serverURL, bytes.NewReader(body))
			if sig != "" {
				req.Header.Set("Mdm-Signature", sig)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}

		t.Run("no Mdm-Signature", func(t *testing.T) {
			if got := put(idle, ""); got != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400 (never 401)", got)
			}
		})
		t.Run("forged Mdm-Signature", func(t *testing.T) {
			other, _ := macsim.SignMessage([]byte("another body"), cert, key)
			if got := put(idle, other); got != http.StatusBadRequest {
				t.Fatalf("signature over another body: status = %d, want 400", got)
			}
			if got := put(idle, "bm90IGEgQ01TIG1lc3NhZ2U="); got != http.StatusBadRequest {
				t.Fatalf("garbage signature: status = %d, want 400", got)
			}
		})
		t.Run("certificate from another CA", func(t *testing.T) {
			fc, fk, err := macsim.SelfSigned("Lanyard MDM CA")
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := macsim.SignMessage(idle, fc, fk)
			if got := put(idle, sig); got != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", got)
			}
		})
		t.Run("malformed plist", func(t *testing.T) {
			body := []byte("<plist><dict><key>Status</key>")
			sig, _ := macsim.SignMessage(body, cert, key)
			if got := put(body, sig); got != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", got)
			}
		})
		t.Run("result for unknown command UUID", func(t *testing.T) {
			body := []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>CommandUUID</key><string>0000-not-a-command</string><key>Status</key><string>Acknowledged</string><key>UDID</key><string>` + mac.UDID + `</string></dict></plist>`)
			sig, _ := macsim.SignMessage(body, cert, key)
			if got := put(body, sig); got != http.StatusOK {
				t.Fatalf("status = %d, want 200 (ignored)", got)
			}
		})
		t.Run("SCEP challenge used twice or expired", func(t *testing.T) {
			link, err := h.svc.CreateEnrollLink(ctx, h.org.ID, "", "token:test", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			m2 := macsim.New("C02BAD00002")
			prof, err := m2.FetchProfile(ctx, link.URL)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m2.SCEP(ctx, prof); err != nil {
				t.Fatalf("first use: %v", err)
			}
			if _, err := macsim.New("C02BAD00003").SCEP(ctx, prof); !errors.Is(err, macsim.ErrSCEPRefused) {
				t.Fatalf("second use: err = %v, want refused", err)
			}
			prof2, err := m2.FetchProfile(ctx, link.URL)
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(2 * time.Hour) // challenges live 1 h
			defer h.clock.Advance(-2 * time.Hour)
			if _, err := m2.SCEP(ctx, prof2); !errors.Is(err, macsim.ErrSCEPRefused) {
				t.Fatalf("expired challenge: err = %v, want refused", err)
			}
		})
		t.Run("NotNow is retried later", func(t *testing.T) {
			mac.AnswerNext(apple.ReqRestartDevice, macsim.NotNow)
			res, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqRestartDevice}, apple.EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "NotNow recorded", func() bool { return h.command(res.Command.UUID).NotNowCount == 1 })
			mac.Wait()
			if c := h.command(res.Command.UUID); c.State != store.MDMCmdSent {
				t.Fatalf("after NotNow state = %s", c.State)
			}
			// The re-push loop finds the pending command and pushes; the Mac answers.
			h.clock.Advance(10 * time.Minute)
			if n, err := h.svc.RepushOnce(ctx); err != nil || n != 1 {
				t.Fatalf("repush = %d, %v", n, err)
			}
			eventually(t, "retried command acknowledged", func() bool { return h.command(res.Command.UUID).State == store.MDMCmdDone })
			h.idle(mac)
		})
		t.Run("device never answers: command expires, queue moves on", func(t *testing.T) {
			mac.AnswerNext(apple.ReqSecurityInfo, macsim.Ignore)
			res, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqSecurityInfo}, apple.EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "command sent", func() bool { return h.command(res.Command.UUID).State == store.MDMCmdSent })
			mac.Wait()
			h.clock.Advance(8 * 24 * time.Hour)
			if _, err := h.svc.RepushOnce(ctx); err != nil {
				t.Fatal(err)
			}
			c := h.command(res.Command.UUID)
			if c.State != store.MDMCmdExpired || c.Error == "" {
				t.Fatalf("expired command = %+v", c)
			}
			audit, _, _ := db.ListAudit(ctx, h.org.ID, store.AuditFilter{Action: "mdm.command.expired"}, store.Page{})
			if len(audit) != 1 {
				t.Fatalf("expiry audit rows = %d", len(audit))
			}
			// The stale command no longer blocks the queue.
			next, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqDeviceInformation}, apple.EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "next command answered", func() bool { return h.command(next.Command.UUID).State == store.MDMCmdDone })
			h.idle(mac)
			for _, r := range mac.Received() {
				if r.UUID == c.WireUUID && r.Answer != macsim.Ignore {
					t.Fatal("expired command was delivered again")
				}
			}
		})
		t.Run("re-enroll of a locked Mac re-issues the lock", func(t *testing.T) {
			mac.AnswerNext(apple.ReqDeviceLock, macsim.Ignore)
			lock, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqDeviceLock}, apple.EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "lock delivered", func() bool { return h.command(lock.Command.UUID).State == store.MDMCmdSent })
			mac.Wait()
			// The Mac is wiped of its MDM profile and re-enrolls: Authenticate clears
			// nanomdm's queue; Lanyard re-issues the lock with the same PIN.
			h.enroll(mac, h.emp.ID)
			eventually(t, "lock acknowledged after re-enroll", func() bool { return h.command(lock.Command.UUID).State == store.MDMCmdDone })
			h.idle(mac)
			c := h.command(lock.Command.UUID)
			pin, _ := h.svc.RevealPIN(c)
			if locked, macPIN := mac.Locked(); !locked || macPIN != pin || c.IssueCount != 2 {
				t.Fatalf("locked=%v pin=%q want %q issue_count=%d", locked, macPIN, pin, c.IssueCount)
			}
		})
		t.Run("dead push token is classified and backed off", func(t *testing.T) {
			h.apns.Fail(mac.Token(), http.StatusGone, "Unregistered")
			defer h.apns.Heal(mac.Token())
			res, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqProfileList}, apple.EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var pe *apple.PushError
			if !errors.As(res.PushError, &pe) || pe.Class != apple.PushBadToken || pe.Reason != "Unregistered" {
				t.Fatalf("push error = %v", res.PushError)
			}
			en := h.enrollment(mac.UDID)
			if en.NextPushAt == nil || en.NextPushAt.Before(h.clock.Now().Add(23*time.Hour)) || !strings.Contains(en.LastPushError, "Unregistered") {
				t.Fatalf("enrollment after dead token = %+v", en)
			}
			_, _ = h.svc.CancelCommand(ctx, h.org.ID, res.Command.UUID)
		})
		t.Run("expired push certificate: clear error, command kept", func(t *testing.T) {
			h.clock.Advance(366 * 24 * time.Hour)
			defer h.clock.Advance(-366 * 24 * time.Hour)
			res, err := h.svc.Enqueue(ctx, e, apple.CommandSpec{RequestType: apple.ReqRestartDevice}, apple.EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(res.PushError, apple.ErrPushCertExpired) {
				t.Fatalf("push error = %v, want expired certificate", res.PushError)
			}
			if c := h.command(res.Command.UUID); c.State != store.MDMCmdQueued {
				t.Fatalf("state = %s, want queued (kept for when the certificate is renewed)", c.State)
			}
			if en := h.enrollment(mac.UDID); !strings.Contains(en.LastPushError, "expired") {
				t.Fatalf("last push error = %q", en.LastPushError)
			}
			w := h.svc.ReadyWarnings(ctx)
			if len(w) != 1 || !strings.Contains(w[0], "expired") {
				t.Fatalf("readiness warnings = %v", w)
			}
			_, _ = h.svc.CancelCommand(ctx, h.org.ID, res.Command.UUID)
		})
		t.Run("push certificate renewal keeps the topic", func(t *testing.T) {
			c2, k2, _ := fakeapns.NewPushCert("com.apple.mgmt.External.other", time.Now().AddDate(1, 0, 0))
			if _, err := h.svc.UploadPushCert(ctx, h.org.ID, "token:test", c2, k2); !errors.Is(err, apple.ErrTopicChanged) {
				t.Fatalf("new topic: err = %v", err)
			}
			c3, k3, _ := fakeapns.NewPushCert(h.topic, time.Now().Add(10*24*time.Hour))
			if _, err := h.svc.UploadPushCert(ctx, h.org.ID, "token:test", c3, k3); err != nil {
				t.Fatalf("renewal: %v", err)
			}
			w := h.svc.ReadyWarnings(ctx)
			if len(w) != 1 || !strings.Contains(w[0], "expires in") {
				t.Fatalf("warning 30 days before expiry = %v", w)
			}
			if _, err := apple.ParsePushCert([]byte("garbage"), k3); err == nil {
				t.Fatal("garbage certificate accepted")
			}
			expired, ek, _ := fakeapns.NewPushCert(h.topic, time.Now().Add(-time.Hour))
			if _, err := h.svc.UploadPushCert(ctx, h.org.ID, "token:test", expired, ek); !errors.Is(err, apple.ErrPushCertExpired) {
				t.Fatalf("expired upload: err = %v", err)
			}
		})
		if errs := mac.Errors(); len(errs) > 0 {
			t.Fatalf("mac session errors: %v", errs)
		}
	})
}
