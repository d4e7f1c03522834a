package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func testConfig(t *testing.T, databaseURL string) config.Config {
	t.Helper()
	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.DataDir, cfg.KeyFile, cfg.DatabaseURL = dir, filepath.Join(dir, "keyring.json"), databaseURL
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Every route of the fully wired control plane, whichever capability registered it, is
// checked for tenant isolation and role enforcement on both stores.
func TestEveryRouteIsolatedAndRoleChecked(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			url := ""
			if dialect == "postgres" {
				url = storetest.PostgresURL(t)
			}
			s, err := New(context.Background(), testConfig(t, url), quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.DB.Close)
			h := apitest.Wrap(t, s.DB, s.API, s.Handler)
			a, b := storetest.Org(t, s.DB, domain.PlanPro), storetest.Org(t, s.DB, domain.PlanPro)
			emp := storetest.Employee(t, s.DB, a.ID, "Iso")
			dev := storetest.Device(t, s.DB, a.ID, "ISO-SRV-1")
			tok, _, err := s.DB.CreateToken(context.Background(), a.ID, "a", domain.RoleViewer, nil)
			if err != nil {
				t.Fatal(err)
			}
			fx := apitest.Fixtures{"device": dev.ID, "employee": emp.ID, "token": tok.ID}
			for kind, id := range apiFixtures(t, s, a) {
				fx[kind] = id
			}
			t.Run("isolation", func(t *testing.T) { apitest.CheckIsolation(t, h, h.Token(b.ID, domain.RoleOwner), fx) })
			t.Run("roles", func(t *testing.T) { apitest.CheckRoles(t, h, a.ID) })
			t.Run("openapi", func(t *testing.T) { apitest.CheckOpenAPI(t, s.API) })
		})
	}
}

func TestGeneratedDocsAreFresh(t *testing.T) {
	ref, err := APIReference(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"api.md": ref} {
		got, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
		if err != nil || string(got) != want {
			t.Errorf("docs/%s is stale: run `make generate` and commit it", name)
		}
	}
	cfgDoc, _ := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if !strings.Contains(string(cfgDoc), config.Markdown()) {
		t.Error("docs/configuration.md is stale: run `make generate` and commit it")
	}
}

// The make-run path: serve with the demo org answers /healthz, and the printed token
// lists the demo devices.
func TestServeDemo(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Demo = true
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	_, token, err := s.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + addr.String()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get(base + "/healthz"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/api/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "C02DEMO0001") {
		t.Fatalf("demo devices: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}
