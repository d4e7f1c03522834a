package mail_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/notify/fakesmtp"
	"github.com/lanyardhq/lanyard/controlplane/notify/mail"
)

func start(t *testing.T) *fakesmtp.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := fakesmtp.Start(ctx, fakesmtp.Options{Username: "lanyard", Password: "s3cret-pass"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func client(t *testing.T, s *fakesmtp.Server, mut func(*mail.Config)) *mail.Client {
	t.Helper()
	cfg := mail.Config{Host: "127.0.0.1", Port: s.Port(), Username: "lanyard", Password: "s3cret-pass",
		From: "Acme IT <it@acme.example>", RootCAs: s.RootCAs(), ServerName: "localhost", Timeout: 5 * time.Second}
	if mut != nil {
		mut(&cfg)
	}
	c, err := mail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func msg(id string) mail.Message {
	return mail.Message{ID: id, To: []string{"ada@acme.example"}, Subject: "Enroll your laptop — Acme",
		Text: "Open https://lanyard.acme.example/enroll/x to enroll.", HTML: "<p>Open <a href=\"https://lanyard.acme.example/enroll/x\">this link</a>.</p>"}
}

func wait(t *testing.T, s *fakesmtp.Server, n int) []fakesmtp.Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := s.WaitFor(ctx, func(m []fakesmtp.Received) bool { return len(m) >= n })
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A message goes over STARTTLS with AUTH PLAIN and arrives whole: envelope, the
// deterministic Message-ID, both parts, the automated-mail headers.
func TestSendOverSTARTTLS(t *testing.T) {
	s := start(t)
	c := client(t, s, nil)
	if err := c.Send(context.Background(), msg("dlv_1")); err != nil {
		t.Fatal(err)
	}
	got := wait(t, s, 1)[0]
	if got.MessageID != "<dlv_1@lanyard>" || got.From != "it@acme.example" || len(got.To) != 1 || got.To[0] != "ada@acme.example" {
		t.Fatalf("envelope/headers: %+v", got)
	}
	if got.Subject != "Enroll your laptop — Acme" || !strings.Contains(got.Text, "https://lanyard.acme.example/enroll/x") ||
		!strings.Contains(got.HTML, `<a href="https://lanyard.acme.example/enroll/x">`) {
		t.Fatalf("content: subject %q text %q html %q", got.Subject, got.Text, got.HTML)
	}
	if got.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted: %q", got.Header.Get("Auto-Submitted"))
	}
	if strings.Contains(string(got.Raw), "s3cret-pass") {
		t.Error("the password reached the message")
	}
}

// Each failure is classified so the engine retries what can succeed and stops on what cannot.
func TestFailuresAreClassified(t *testing.T) {
	for _, tc := range []struct {
		name      string
		setup     func(*fakesmtp.Server)
		cfg       func(*mail.Config)
		m         func(mail.Message) mail.Message
		permanent bool
		code      int
	}{
		{name: "temporary DATA failure 451", setup: func(s *fakesmtp.Server) { s.FailNext(1, 451) }, code: 451},
		{name: "permanent DATA failure 554", setup: func(s *fakesmtp.Server) { s.FailNext(1, 554) }, permanent: true, code: 554},
		{name: "unknown recipient 550", setup: func(s *fakesmtp.Server) { s.RejectRecipient("ada@acme.example", 550) }, permanent: true, code: 550},
		{name: "mailbox busy 450", setup: func(s *fakesmtp.Server) { s.RejectRecipient("ada@acme.example", 450) }, code: 450},
		{name: "bad password 535", cfg: func(c *mail.Config) { c.Password = "wrong" }, permanent: true, code: 535},
		{name: "malformed address", m: func(m mail.Message) mail.Message { m.To = []string{"not an address"}; return m }, permanent: true},
		{name: "header injection in an address", m: func(m mail.Message) mail.Message { m.To = []string{"a@b.example\r\nBcc: x@evil.example"}; return m }, permanent: true},
		{name: "no recipient", m: func(m mail.Message) mail.Message { m.To = nil; return m }, permanent: true},
		{name: "untrusted certificate", cfg: func(c *mail.Config) { c.RootCAs = nil }},
		{name: "unreachable server", setup: func(s *fakesmtp.Server) { s.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			m := msg("dlv_f")
			if tc.m != nil {
				m = tc.m(m)
			}
			err := client(t, s, tc.cfg).Send(context.Background(), m)
			var se *mail.SendError
			if !errors.As(err, &se) {
				t.Fatalf("want a SendError, got %v", err)
			}
			if se.Permanent != tc.permanent || (tc.code != 0 && se.Code != tc.code) {
				t.Fatalf("permanent %v code %d (%v); want permanent %v code %d", se.Permanent, se.Code, err, tc.permanent, tc.code)
			}
			if strings.Contains(err.Error(), "s3cret-pass") {
				t.Fatal("the password is in the error")
			}
			if n := len(s.Messages()); n != 0 {
				t.Fatalf("%d messages accepted", n)
			}
		})
	}
}

// A server that accepts and never answers costs at most the deadline, and is temporary.
func TestHangingServerIsBounded(t *testing.T) {
	s := start(t)
	s.Hang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := client(t, s, nil).Send(ctx, msg("dlv_h"))
	var se *mail.SendError
	if !errors.As(err, &se) || se.Permanent {
		t.Fatalf("hang: %v", err)
	}
	s.Hang(false)
}

// A relay that went away and came back on its port takes the retry.
func TestRetryAfterRestart(t *testing.T) {
	s := start(t)
	c := client(t, s, nil)
	s.Close()
	if err := c.Send(context.Background(), msg("dlv_r")); err == nil {
		t.Fatal("sent to a closed server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), msg("dlv_r")); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, s, 1); got[0].MessageID != "<dlv_r@lanyard>" {
		t.Fatalf("%+v", got)
	}
}

func TestConfigRefusals(t *testing.T) {
	for name, cfg := range map[string]mail.Config{
		"no host":              {From: "it@acme.example"},
		"bad from":             {Host: "smtp.acme.example", From: "not an address"},
		"plain text to remote": {Host: "smtp.acme.example", From: "it@acme.example", TLS: mail.TLSNone},
		"unknown tls":          {Host: "smtp.acme.example", From: "it@acme.example", TLS: "ssl3"},
	} {
		if _, err := mail.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := mail.New(mail.Config{Host: "127.0.0.1", From: "it@acme.example", TLS: mail.TLSNone}); err != nil {
		t.Errorf("plain text to loopback: %v", err)
	}
}
