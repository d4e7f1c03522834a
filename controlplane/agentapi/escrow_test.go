package agentapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

const (
	testProtector = "{6E3B1F2A-0C4D-4E5F-8A9B-0C1D2E3F4A5B}"
	testPassword  = "111111-222222-333333-444444-555555-666666-777777-888888"
)

// TestRecoveryKeyEscrowAndReveal: the agent escrows a BitLocker recovery password
// (validated, sealed at rest, audited without it); a lock then names the protector; an
// admin reveals it (audited), lower roles and other orgs cannot; the device view says
// which volume has a key.
func TestRecoveryKeyEscrowAndReveal(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		ag, dev := linkedAgent(t, e, "SN-BITL")
		cl := e.agentClient(&ag.Cert)
		good := func() *agentv1.EscrowRecoveryKeyRequest {
			return &agentv1.EscrowRecoveryKeyRequest{Kind: "bitlocker", Volume: "c:", ProtectorId: strings.ToLower(testProtector), RecoveryPassword: testPassword}
		}
		bad := []struct {
			name string
			edit func(*agentv1.EscrowRecoveryKeyRequest)
		}{
			{"kind", func(r *agentv1.EscrowRecoveryKeyRequest) { r.Kind = "filevault" }},
			{"volume", func(r *agentv1.EscrowRecoveryKeyRequest) { r.Volume = `\\?\Volume{1}` }},
			{"protector without braces", func(r *agentv1.EscrowRecoveryKeyRequest) { r.ProtectorId = strings.Trim(testProtector, "{}") }},
			{"password of 7 groups", func(r *agentv1.EscrowRecoveryKeyRequest) { r.RecoveryPassword = testPassword[:48] }},
			{"password with letters", func(r *agentv1.EscrowRecoveryKeyRequest) {
				r.RecoveryPassword = strings.Replace(testPassword, "1", "a", 1)
			}},
			{"empty password", func(r *agentv1.EscrowRecoveryKeyRequest) { r.RecoveryPassword = "" }},
		}
		for _, tc := range bad {
			r := good()
			tc.edit(r)
			_, err := cl.EscrowRecoveryKey(ctx, r)
			if codeOf(err) != codes.InvalidArgument {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if n := count(t, db, "device_recovery_keys"); n != 0 {
			t.Fatalf("malformed escrows stored %d rows", n)
		}
		// An agent not linked to a device yet has nowhere to put the key.
		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		loose := e.enroll(secret, "SN-LOOSE", "uuid-loose")
		if _, err := e.agentClient(&loose.Cert).EscrowRecoveryKey(ctx, good()); codeOf(err) != codes.FailedPrecondition {
			t.Fatalf("unlinked agent: %v", err)
		}
		if _, err := cl.EscrowRecoveryKey(ctx, good()); err != nil {
			t.Fatal(err)
		}
		var sealed, vol, prot string
		if err := db.SQL.QueryRow(`SELECT secret_sealed, volume, protector_id FROM device_recovery_keys WHERE device_id = $1`, dev.ID).Scan(&sealed, &vol, &prot); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sealed, "111111") || vol != "C:" || prot != testProtector {
			t.Fatalf("stored %q %q %q", sealed, vol, prot)
		}
		for _, a := range auditRows(t, db, e.org.ID, dev.ID) {
			if strings.Contains(string(a.After), "111111") {
				t.Fatalf("audit %s carries the password", a.Action)
			}
		}

		// A lock names the escrowed protector.
		sim, stop := e.connect(t, ag, true)
		lock, _, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandLock})
		if err != nil {
			t.Fatal(err)
		}
		got := <-sim.cmds
		if got.GetId() != lock.ID || len(got.GetLock().GetEscrowedProtectorIds()) != 1 || got.GetLock().GetEscrowedProtectorIds()[0] != testProtector {
			t.Fatalf("lock params %+v", got.GetLock())
		}
		waitState(t, db, e.org.ID, lock.ID, store.CommandDone)
		stop()

		h := apitest.New(t, db, api.Options{Detailers: []api.DeviceDetailer{e.srv}}, e.srv.Routes())
		admin, it := h.Token(e.org.ID, domain.RoleAdmin), h.Token(e.org.ID, domain.RoleIT)
		if r := h.Do("GET", "/api/v1/devices/"+dev.ID+"/recovery-keys", it, nil); r.Status != http.StatusForbidden {
			t.Fatalf("it role revealed: %d %s", r.Status, r.Body)
		}
		orgB := storetest.Org(t, db, domain.PlanPro)
		if r := h.Do("GET", "/api/v1/devices/"+dev.ID+"/recovery-keys", h.Token(orgB.ID, domain.RoleOwner), nil); r.Status != http.StatusNotFound {
			t.Fatalf("another org: %d %s", r.Status, r.Body)
		}
		if n := countAudit(t, db, e.org.ID, dev.ID, "device.recovery_keys_revealed"); n != 0 {
			t.Fatalf("refused reveals audited as reveals: %d", n)
		}
		r := h.Do("GET", "/api/v1/devices/"+dev.ID+"/recovery-keys", admin, nil)
		var keys api.List[agentapi.RecoveryKeyView]
		r.JSON(t, &keys)
		if r.Status != 200 || len(keys.Items) != 1 || keys.Items[0].RecoveryPassword != testPassword || keys.Items[0].Volume != "C:" {
			t.Fatalf("reveal %d %s", r.Status, r.Body)
		}
		if n := countAudit(t, db, e.org.ID, dev.ID, "device.recovery_keys_revealed"); n != 1 {
			t.Fatalf("reveal audited %d times", n)
		}
		r = h.Do("GET", "/api/v1/devices/"+dev.ID, it, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"escrowed_recovery_keys":[{"kind":"bitlocker","volume":"C:"`) ||
			strings.Contains(string(r.Body), "111111") {
			t.Fatalf("device view %d %s", r.Status, r.Body)
		}
	})
}

func auditRows(t *testing.T, db *store.DB, orgID, target string) []domain.AuditEntry {
	t.Helper()
	rows, _, err := db.ListAudit(context.Background(), orgID, store.AuditFilter{TargetID: target}, store.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func countAudit(t *testing.T, db *store.DB, orgID, target, action string) int {
	n := 0
	for _, a := range auditRows(t, db, orgID, target) {
		if a.Action == action {
			n++
		}
	}
	return n
}

// TestAgentModeOnDevice: a dry-run Hello with a held lock shows on the device (API) and
// flags it for review; a dry-run inventory report does the same.
func TestAgentModeOnDevice(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		ag, dev := linkedAgent(t, e, "SN-DRY")
		h := apitest.New(t, db, api.Options{Detailers: []api.DeviceDetailer{e.srv}}, e.srv.Routes())
		viewer := h.Token(e.org.ID, domain.RoleViewer)
		var tr agentapi.TrackingView
		h.Do("GET", "/api/v1/devices/"+dev.ID+"/tracking", viewer, nil).JSON(t, &tr)
		if tr.AgentMode.Any() || tr.NeedsReview {
			t.Fatalf("release agent: %+v", tr)
		}
		sim, stop := e.connectWith(t, ag, &agentv1.Hello{AgentVersion: "1.1.0-test", Mode: &agentv1.AgentMode{DryRun: true},
			LockedByCommandId: "cmd-held"}, nil)
		sim.sync(t)
		h.Do("GET", "/api/v1/devices/"+dev.ID+"/tracking", viewer, nil).JSON(t, &tr)
		if !tr.AgentMode.DryRun || tr.LockedByCommandID != "cmd-held" || !tr.NeedsReview || !strings.Contains(tr.ReviewReason, "dry-run") {
			t.Fatalf("after a dry-run hello: %+v", tr)
		}
		r := h.Do("GET", "/api/v1/devices/"+dev.ID, viewer, nil)
		if !strings.Contains(string(r.Body), `"agent_mode":{"dry_run":true,"serial_overridden":false}`) || !strings.Contains(string(r.Body), `"locked_by_command_id":"cmd-held"`) {
			t.Fatalf("device view %s", r.Body)
		}
		stop()
		// A serial-override inventory report.
		req := inventory("SN-DRY")
		req.Mode = &agentv1.AgentMode{SerialOverridden: true}
		if _, err := e.agentClient(&ag.Cert).ReportInventory(ctx, req); err != nil {
			t.Fatal(err)
		}
		h.Do("GET", "/api/v1/devices/"+dev.ID+"/tracking", viewer, nil).JSON(t, &tr)
		if tr.AgentMode.DryRun || !tr.AgentMode.SerialOverridden || !strings.Contains(tr.ReviewReason, "test-override serial") {
			t.Fatalf("after a serial-override report: %+v", tr)
		}
	})
}

// TestWipeBestEffortSetting: with the org setting on (PATCH /api/v1/org), a wipe tells the
// agent so and a best-effort wipe's evidence is done; unlock needs the admin role.
func TestWipeBestEffortSetting(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, domain.PlanPro)
		ag, dev := linkedAgent(t, e, "SN-BE")
		h := apitest.New(t, db, api.Options{}, e.srv.Routes())
		admin, it := h.Token(e.org.ID, domain.RoleAdmin), h.Token(e.org.ID, domain.RoleIT)
		var o domain.Org
		h.Do("GET", "/api/v1/org", admin, nil).JSON(t, &o)
		if o.Settings.WipeAllowBestEffort {
			t.Fatal("best effort allowed by default")
		}
		o.Settings.WipeAllowBestEffort = true
		if r := h.Do("PATCH", "/api/v1/org", admin, map[string]any{"settings": o.Settings}); r.Status != 200 ||
			!strings.Contains(string(r.Body), `"wipe_allow_best_effort":true`) {
			t.Fatalf("patch org %d %s", r.Status, r.Body)
		}
		sim, stop := e.connectWith(t, ag, &agentv1.Hello{AgentVersion: "1.1.0"}, func(c *agentv1.Command) []*agentv1.CommandResult {
			ev := evidenceFor(c)
			ev.WipeMethod = "best_effort"
			ev.Checks = []*agentv1.Check{{Name: "home-removed:/home/ada", Ok: true, Observed: "absent", Expected: "absent"}}
			return []*agentv1.CommandResult{signed(t, c.GetId(), agentv1.CommandState_COMMAND_STATE_DONE, ev, ag.key(), ag.der())}
		})
		defer stop()
		r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", admin, map[string]any{"type": "wipe", "confirm": "SN-BE"})
		var wipe store.DeviceCommand
		r.JSON(t, &wipe)
		if r.Status != http.StatusCreated || wipe.Params["allow_best_effort"] != "true" {
			t.Fatalf("wipe %d %s", r.Status, r.Body)
		}
		if got := <-sim.cmds; !got.GetWipe().GetAllowBestEffort() {
			t.Fatalf("wipe params %+v", got.GetWipe())
		}
		done := waitState(t, db, e.org.ID, wipe.ID, store.CommandDone)
		if done.Evidence == nil || done.Evidence.WipeMethod != "best_effort" {
			t.Fatalf("evidence %+v", done.Evidence)
		}
		var fetched map[string]any
		h.Do("GET", "/api/v1/device-actions/"+wipe.ID, it, nil).JSON(t, &fetched)
		ev, _ := fetched["evidence"].(map[string]any)
		if ev["wipe_method"] != "best_effort" || ev["verified"] != true || fetched["received_at"] == nil || fetched["completed_at"] == nil {
			t.Fatalf("action JSON %v", fetched)
		}
		if r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", it, map[string]any{"type": "unlock"}); r.Status != http.StatusForbidden {
			t.Fatalf("it role unlocked: %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/devices/"+dev.ID+"/actions", admin, map[string]any{"type": "unlock"}); r.Status != http.StatusCreated {
			t.Fatalf("unlock: %d %s", r.Status, r.Body)
		}
	})
}
