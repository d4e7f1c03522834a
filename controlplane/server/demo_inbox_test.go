package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// TestDemoInbox: `make run`'s demo org mails through the in-process SMTP server (a real
// STARTTLS + AUTH session over loopback), and /demo/inbox shows the message.
func TestDemoInbox(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Demo = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	org, token, err := s.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	base := "http://" + addr.String()
	if !poll(10*time.Second, func() bool { r, err := http.Get(base + "/healthz"); return err == nil && r.Body.Close() == nil }) {
		t.Fatal("server not up")
	}
	chs, err := store.ListNotifyChannels(ctx, s.DB.SQL, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	var inbox string
	kinds := map[string]bool{}
	for _, c := range chs {
		kinds[c.Kind] = true
		if c.Name == "Demo inbox" {
			inbox = c.ID
		}
	}
	if inbox == "" || !kinds["log"] {
		t.Fatalf("demo channels: %+v", chs)
	}
	body, _ := json.Marshal(map[string]string{"to": "someone@demo.example"})
	req, _ := http.NewRequest("POST", base+"/api/v1/notifications/channels/"+inbox+"/test", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out notify.Outcome
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out.Result != "delivered" {
		t.Fatalf("send test: %d %+v", resp.StatusCode, out)
	}
	resp, err = http.Get(s.DemoInboxURL(base))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "someone@demo.example") {
		t.Fatalf("inbox: %d %s", resp.StatusCode, page)
	}
	if s.caps.demoInbox == nil || DemoInboxPath != "/demo/inbox" {
		t.Fatal("the console is not told where the demo inbox is")
	}
}
