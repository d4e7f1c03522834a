package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/hrsync"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestHRCommandsAgainstRealAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := storetest.NewSQLite(t)
	fake, err := fakejustworks.Start(fakejustworks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.Load(fakejustworks.Generate(150, 3, fakejustworks.GenOptions{AllActiveUS: true}))

	// The engine needs the server's URL before the server exists: route through a variable.
	var handler http.Handler
	h := apitest.Wrap(t, db, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	p, err := justworks.New(hrsync.FakeJustworksConfig(fake, h.Server.URL))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.New(secrets.NewKey())
	eng, err := hrsync.New(hrsync.Config{DB: db, Keyring: kr, Providers: map[string]hris.Provider{"justworks": p},
		PublicURL: h.Server.URL, PageSize: 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	go func() { _ = eng.Start(ctx) }()
	h.API = api.New(api.Options{Store: db}, eng.Routes())
	handler = h.API

	o := storetest.Org(t, db, domain.PlanHR)
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(ctx, args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	if out, err := run("hr", "status"); err != nil || !strings.Contains(out, "not connected") {
		t.Fatalf("status before: %q %v", out, err)
	}
	out, err := run("--json", "hr", "connect")
	if err != nil {
		t.Fatal(err)
	}
	var cr struct {
		AuthorizeURL  string `json:"authorize_url"`
		WebhookSecret string `json:"webhook_secret"`
	}
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.AuthorizeURL == "" || cr.WebhookSecret == "" {
		t.Fatalf("connect: %q %v", out, err)
	}
	// The admin approves in a browser: follow the redirects to our callback.
	resp, err := http.Get(cr.AuthorizeURL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("approve: %v %v", resp, err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err = run("hr", "status")
		if err != nil {
			t.Fatal(err)
		}
		// The rows land page by page before the run is marked done: wait for both.
		if strings.Contains(out, "150 active") && strings.Contains(out, "initial import:   done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("import did not finish: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out, "Acme Fake Co") || !strings.Contains(out, "done") {
		t.Fatalf("status: %s", out)
	}
	fake.UpdateMember(fakejustworks.MemberID(4), func(m *fakejustworks.Member) { m.JobTitle = "CLI" }, true)
	out, err = run("hr", "sync", "--full", "--wait")
	if err != nil || !strings.Contains(out, "pages 8, seen 150") || !strings.Contains(out, "updated 1") || !strings.Contains(out, "sync succeeded") {
		t.Fatalf("sync --wait: %q %v", out, err)
	}
	out, err = run("hr", "runs")
	if err != nil || strings.Count(out, "succeeded") < 2 || !strings.Contains(out, "TERMINATED") {
		t.Fatalf("runs: %q %v", out, err)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out, err = run("hr", "run", id); err != nil || !strings.Contains(out, "full") {
		t.Fatalf("run: %q %v", out, err)
	}
	if _, err = run("hr", "disconnect"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("disconnect without --yes: %v", err)
	}
	if out, err = run("hr", "disconnect", "--yes"); err != nil || !strings.Contains(out, "terminated") {
		t.Fatalf("disconnect: %q %v", out, err)
	}
	if _, err = run("hr", "sync"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("sync after disconnect: %v", err)
	}

	// Reconnect with --wait: the command waits for the approval, then follows the import.
	buf := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"hr", "connect", "--wait", "--timeout", "30s"}, buf) }()
	var authURL string
	for deadline := time.Now().Add(10 * time.Second); authURL == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.HasPrefix(line, "open this URL to approve access:") {
				authURL = strings.TrimSpace(strings.TrimPrefix(line, "open this URL to approve access:"))
			}
		}
	}
	if authURL == "" {
		t.Fatalf("no authorize URL in %q", buf.String())
	}
	resp, err = http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-done; err != nil || !strings.Contains(buf.String(), "connected to Acme Fake Co") || !strings.Contains(buf.String(), "sync succeeded") {
		t.Fatalf("connect --wait: %v\n%s", err, buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
