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
	"github.com/lanyardhq/lanyard/controlplane/store"
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
	dev := domain.Device{OrgID: o.ID, SerialNumber: "C02XYZ", Vendor: "dell", Platform: domain.PlatformLinux, EquipmentType: "laptop"}
	if err := db.CreateDevice(ctx, &dev); err != nil {
		t.Fatal(err)
	}
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
	if err != nil || strings.Count(out, "agent") != 2 || !strings.Contains(out, "lock") || !strings.Contains(out, "wipe") || !strings.Contains(out, "REASON") {
		t.Fatalf("actions: %v\n%s", err, out)
	}
	if out, err := run("devices", "unlock", dev.ID); err != nil || !strings.Contains(out, "unlock") || !strings.Contains(out, "queued") {
		t.Fatalf("unlock: %v\n%s", err, out)
	}

	// What the agent API records for a lock whose evidence failed a check, rendered.
	cmds, _, _ := db.ListDeviceCommands(ctx, o.ID, dev.ID, store.Page{})
	lock := cmds[0]
	ev := &store.CommandEvidence{Verified: false, SerialNumber: "C02XYZ", Checks: []store.CommandCheck{
		{Name: "account-locked:ada", OK: true, Observed: "locked", Expected: "locked"},
		{Name: "pam-account-deny", OK: false, Observed: "no deny rule", Expected: "deny rule for non-root"}}}
	for _, u := range []store.CommandUpdate{{From: store.OpenCommandStates, To: store.CommandReceived},
		{From: store.OpenCommandStates, To: store.CommandFailed, Evidence: ev, Error: "check pam-account-deny failed: found no deny rule, want deny rule for non-root"}} {
		if _, err := db.TransitionDeviceCommand(ctx, lock.OrgID, lock.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	out, err = run("devices", "action", lock.ID)
	flat := strings.Join(strings.Fields(out), " ") // column widths aside
	for _, want := range []string{"state: failed", "reason: check pam-account-deny failed", "evidence verified: no", "received: 20",
		"check: ok account-locked:ada: found locked (want locked)", "check: FAIL pam-account-deny: found no deny rule (want deny rule for non-root)"} {
		if err != nil || !strings.Contains(flat, want) {
			t.Fatalf("action get: %v, want %q in\n%s", err, want, out)
		}
	}
	out, err = run("--json", "devices", "action", lock.ID)
	var full map[string]any
	if err != nil || json.Unmarshal([]byte(out), &full) != nil || full["received_at"] == nil || full["evidence"] == nil || full["org_id"] != o.ID {
		t.Fatalf("action --json: %v\n%s", err, out)
	}
	if out, err := run("devices", "actions", dev.ID); err != nil || !strings.Contains(out, "1/2 ok, unverified") {
		t.Fatalf("actions with evidence: %v\n%s", err, out)
	}

	// A Mac without MDM: the lock is failed at once, and the CLI says why.
	mac := storetest.Device(t, db, o.ID, "C02MAC1")
	if out, err := run("devices", "lock", mac.ID); err != nil || !strings.Contains(out, "failed") || !strings.Contains(out, agentapi.MacNeedsMDM) {
		t.Fatalf("mac lock: %v\n%s", err, out)
	}

	// Escrowed BitLocker keys are revealed to admins.
	if out, err := run("devices", "recovery-keys", dev.ID); err != nil || !strings.Contains(out, "no recovery key") {
		t.Fatalf("no keys: %v\n%s", err, out)
	}
	const pw = "111111-222222-333333-444444-555555-666666-777777-888888"
	sealed, err := kr.Seal([]byte(pw), store.RecoveryKeyAAD(o.ID, dev.ID, "C:", "{P}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.EscrowRecoveryKey(ctx, &store.RecoveryKey{OrgID: o.ID, DeviceID: dev.ID, Kind: "bitlocker", Volume: "C:", ProtectorID: "{P}", SecretSealed: sealed}); err != nil {
		t.Fatal(err)
	}
	if out, err := run("devices", "recovery-keys", dev.ID); err != nil || !strings.Contains(out, pw) || !strings.Contains(out, "C:") {
		t.Fatalf("recovery keys: %v\n%s", err, out)
	}
}
