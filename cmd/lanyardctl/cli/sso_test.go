package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/auth/fakeoidc"
	"github.com/lanyardhq/lanyard/controlplane/auth/oidc"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestSSOCommandsAgainstRealAPI(t *testing.T) {
	db := storetest.NewSQLite(t)
	kr, _ := secrets.New(secrets.NewKey())
	never := func(context.Context, http.ResponseWriter, *http.Request, oidc.Vouched) error {
		t.Error("no sign-in happens in this test")
		return nil
	}
	rp, err := oidc.New(oidc.Config{Store: db, Keys: kr, PublicURL: "https://lanyard.example.com", Start: never,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.New(t, db, api.Options{Logger: slog.New(slog.DiscardHandler)}, rp.Routes())
	hs := httptest.NewUnstartedServer(nil)
	op, err := fakeoidc.New(fakeoidc.Config{Issuer: "http://" + hs.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = op
	hs.Start()
	defer hs.Close()

	o := storetest.Org(t, db, domain.PlanHR)
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(context.Background(), args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	if _, err := run("sso", "show"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("show before set: %v", err)
	}
	if out, err := run("sso", "test", "--issuer", op.Issuer()); err != nil || !strings.Contains(out, op.Issuer()+"/token") {
		t.Fatalf("test before saving: %q %v", out, err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("cli-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run("sso", "set", "--issuer", op.Issuer(), "--client-id", "cid", "--domains", "example.com"); err == nil ||
		!strings.Contains(err.Error(), "client_secret is required") {
		t.Fatalf("first set without a secret: %v", err)
	}
	out, err := run("sso", "set", "--issuer", op.Issuer(), "--client-id", "cid", "--client-secret-file", secretFile,
		"--domains", "example.com,corp.example.com", "--enabled")
	if err != nil || !strings.Contains(out, "https://lanyard.example.com/auth/sso/callback") || strings.Contains(out, "cli-secret-value") {
		t.Fatalf("set: %q %v", out, err)
	}
	// Changing one flag keeps the rest, the secret included.
	if _, err := run("sso", "set", "--enabled=false"); err != nil {
		t.Fatal(err)
	}
	out, err = run("--json", "sso", "show")
	var v ssoView
	if err != nil || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("show: %q %v", out, err)
	}
	if v.Enabled || v.Issuer != op.Issuer() || v.ClientID != "cid" || !v.ClientSecretSet || len(v.AllowedDomains) != 2 {
		t.Fatalf("after partial set: %+v", v)
	}
	if out, err := run("sso", "test"); err != nil || !strings.Contains(out, "ok:") {
		t.Fatalf("test saved: %q %v", out, err)
	}
	if _, err := run("sso", "test", "--issuer", "http://127.0.0.1:1"); err == nil {
		t.Fatal("a dead issuer passed the check")
	}
	if _, err := run("sso", "delete"); err == nil {
		t.Fatal("delete without --yes")
	}
	if out, err := run("sso", "delete", "--yes"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("delete: %q %v", out, err)
	}
	if _, err := run("sso", "show"); err == nil {
		t.Fatal("show after delete")
	}
}
