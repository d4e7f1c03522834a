package cli

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestLifecycleCommands(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewSQLite(t)
	eng := lifecycle.New(db)
	eng.SetQueue(lifecycle.InlineQueue{E: eng})
	h := apitest.New(t, db, api.Options{}, eng.Routes())
	o := storetest.Org(t, db, domain.PlanPro)
	emp := storetest.Employee(t, db, o.ID, "Grace")
	dev := storetest.Device(t, db, o.ID, "C02CTL0001")
	if _, err := db.AssignDevice(ctx, o.ID, dev.ID, emp.ID); err != nil {
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
	auditBefore, _, _ := db.ListAudit(ctx, o.ID, store.AuditFilter{}, store.Page{Limit: 200})

	out, err := run("offboard", emp.HR.WorkEmail, "--dry-run")
	if err != nil || !strings.Contains(out, "Nothing was changed") || !strings.Contains(out, "lock_devices") ||
		!strings.Contains(out, "C02CTL0001") || !strings.Contains(out, "no agent and no MDM") {
		t.Fatalf("dry-run: %q %v", out, err)
	}
	auditAfter, _, _ := db.ListAudit(ctx, o.ID, store.AuditFilter{}, store.Page{Limit: 200})
	if len(auditAfter) != len(auditBefore) {
		t.Fatal("dry-run changed something")
	}
	if _, err := run("offboard", emp.ID); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("offboard without --yes: %v", err)
	}
	if out, err = run("offboard", emp.ID, "--yes"); err != nil || !strings.Contains(out, "started") {
		t.Fatalf("offboard: %q %v", out, err)
	}
	out, err = run("workflows", "list", "--kind", "offboarding")
	if err != nil || !strings.Contains(out, emp.ID) {
		t.Fatalf("list: %q %v", out, err)
	}
	ws, _, _ := db.ListWorkflows(ctx, o.ID, store.WorkflowFilter{EmployeeID: emp.ID}, store.Page{})
	wid := ws[0].ID
	out, err = run("workflows", "get", wid)
	if err != nil || !strings.Contains(out, "lock_devices") || !strings.Contains(out, "blocked") || !strings.Contains(out, "manual_lock") {
		t.Fatalf("get: %q %v", out, err)
	}
	if _, err := run("workflows", "skip", wid, "lock_devices"); err == nil {
		t.Fatal("skip without reason accepted")
	}
	if out, err = run("workflows", "skip", wid, "lock_devices", "--reason", "locked in person"); err != nil || !strings.Contains(out, "skipped") {
		t.Fatalf("skip: %q %v", out, err)
	}
	if _, err := run("workflows", "retry", wid, "lock_devices"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("retry of a skipped step: %v", err)
	}
	out, err = run("workflows", "cancel", wid, "--reason", "test over")
	if err != nil || !strings.Contains(out, "revoke_apps") || !strings.Contains(out, "open_retrieval") {
		t.Fatalf("cancel: %q %v", out, err)
	}
	// Assets and warehouses.
	csvPath := filepath.Join(t.TempDir(), "d.csv")
	_ = os.WriteFile(csvPath, []byte("serial_number,vendor,equipment_type,platform\nX1,dell,laptop,windows\nX2,,laptop,windows\n"), 0o600)
	out, err = run("assets", "import", csvPath)
	if err == nil || !strings.Contains(out, "vendor") || !strings.Contains(out, "3") {
		t.Fatalf("bad import: %q %v", out, err)
	}
	_ = os.WriteFile(csvPath, []byte("serial_number,vendor,equipment_type,platform\nX1,dell,laptop,windows\n"), 0o600)
	if out, err = run("assets", "import", csvPath); err != nil || !strings.Contains(out, "imported 1") {
		t.Fatalf("import: %q %v", out, err)
	}
	if out, err = run("assets", "export"); err != nil || !strings.Contains(out, "X1,dell") {
		t.Fatalf("export: %q %v", out, err)
	}
	if out, err = run("warehouses", "create", "Reno"); err != nil || !strings.Contains(out, "Reno") {
		t.Fatalf("warehouse: %q %v", out, err)
	}
	var whID string
	_ = db.SQL.QueryRowContext(ctx, `SELECT id FROM warehouses WHERE org_id = $1`, o.ID).Scan(&whID)
	var x1 string
	if err := db.InTx(ctx, func(tx *sql.Tx) error {
		ds, err := store.FindDevicesBySerial(ctx, tx, o.ID, "X1")
		x1 = ds[0].ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if out, err = run("warehouses", "intake", whID, "--device", x1, "--accessory", "charger"); err != nil || !strings.Contains(out, "true") {
		t.Fatalf("intake: %q %v", out, err)
	}
	if out, err = run("warehouses", "stock"); err != nil || !strings.Contains(out, "laptop") {
		t.Fatalf("stock: %q %v", out, err)
	}
}
