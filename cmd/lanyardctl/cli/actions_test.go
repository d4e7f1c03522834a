package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestAgentActionsAndEnrollmentSecrets(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewSQLite(t)
	kr, _ := secrets.New(secrets.NewKey())
	srv, err := agentapi.Open(ctx, db, kr, agentapi.Config{AgentAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.New(t, db, api.Options{}, srv.Routes())
	o := storetest.Org(t, db, domain.PlanPro)
	dev := storetest.Device(t, db, o.ID, "C02XYZ")
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(ctx, args, &out)
		return out.String(), err
	}
	if _, err := run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	out, err := run("enrollment-secrets", "create", "--name", "pkg build 7", "--max-uses", "3", "--expires-in", "24h")
	if err != nil || !strings.Contains(out, "lyes_") || !strings.Contains(out, srv.CA().RootFingerprint()) {
		t.Fatalf("create secret: %v\n%s", err, out)
	}
	out, err = run("--json", "enrollment-secrets", "list")
	var secs []struct {
		ID      string `json:"id"`
		MaxUses int    `json:"max_uses"`
	}
	if err != nil || json.Unmarshal([]byte(out), &secs) != nil || len(secs) != 1 || secs[0].MaxUses != 3 || strings.Contains(out, "plaintext") {
		t.Fatalf("list secrets: %v\n%s", err, out)
	}
	if out, err := run("enrollment-secrets", "revoke", secs[0].ID); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}

	if out, err := run("devices", "lock", dev.ID, "--message", "call IT", "--idempotency-key", "k1"); err != nil || !strings.Contains(out, "queued") {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	if _, err := run("devices", "lock", dev.ID, "--idempotency-key", "k1"); err != nil {
		t.Fatalf("lock retry: %v", err)
	}
	if _, err := run("devices", "wipe", dev.ID, "--confirm", "WRONG"); err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("wipe with the wrong serial: %v", err)
	}
	if out, err := run("devices", "wipe", dev.ID, "--confirm", "c02xyz"); err != nil || !strings.Contains(out, "wipe") {
		t.Fatalf("wipe: %v\n%s", err, out)
	}
	out, err = run("devices", "actions", dev.ID)
	if err != nil || strings.Count(out, "agent") != 2 || !strings.Contains(out, "lock") || !strings.Contains(out, "wipe") {
		t.Fatalf("actions: %v\n%s", err, out)
	}
}
