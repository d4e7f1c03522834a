package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/notify"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// TestDemoInbox: `make run`'s demo org mails through the in-process SMTP server (a real
// STARTTLS + AUTH session over loopback), and /demo/inbox shows the message.
func TestDemoInbox(t *testing.T) {
	d := startDemo(t)
	s, ctx, org, token, base := d.s, d.ctx, d.org, d.token, d.base
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
