package lifecycle_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func apiHarness(t *testing.T, h *harness) *apitest.Harness {
	t.Helper()
	return apitest.New(t, h.db, api.Options{}, h.eng.Routes())
}

// TestPlanGates calls one route of each gated feature on each plan: a plan without the
// feature gets 402 problem+json naming the plan needed.
func TestPlanGates(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	eng := lifecycle.New(db)
	a := apitest.New(t, db, api.Options{}, eng.Routes())
	tokens := map[domain.Plan]string{}
	for _, p := range []domain.Plan{domain.PlanHR, domain.PlanEssentials, domain.PlanPro} {
		o := domain.Org{Name: string(p), Plan: p}
		if err := store.CreateOrg(ctx, db.SQL, &o); err != nil {
			t.Fatal(err)
		}
		tokens[p] = a.Token(o.ID, domain.RoleOwner)
	}
	cases := []struct {
		feature domain.Feature
		method  string
		path    string
		need    domain.Plan
	}{
		{domain.FeatureProcurement, "GET", "/api/v1/procurement/orders", domain.PlanHR},
		{domain.FeatureAssets, "GET", "/api/v1/assets/export", domain.PlanHR},
		{domain.FeatureAutomation, "GET", "/api/v1/workflows", domain.PlanEssentials},
		{domain.FeatureAutomation, "GET", "/api/v1/retrievals", domain.PlanEssentials},
		{domain.FeatureAppAccess, "GET", "/api/v1/apps/rules", domain.PlanEssentials},
		{domain.FeatureWarehousing, "GET", "/api/v1/warehouses", domain.PlanPro},
		{domain.FeatureWarehousing, "GET", "/api/v1/warehouse-stock", domain.PlanPro},
	}
	for _, tc := range cases {
		for _, plan := range []domain.Plan{domain.PlanHR, domain.PlanEssentials, domain.PlanPro} {
			t.Run(fmt.Sprintf("%s on %s", tc.path, plan), func(t *testing.T) {
				resp := a.Do(tc.method, tc.path, tokens[plan], nil)
				if plan.Includes(tc.need) {
					if resp.Status != http.StatusOK {
						t.Fatalf("status %d: %s", resp.Status, resp.Body)
					}
					return
				}
				if resp.Status != http.StatusPaymentRequired || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
					t.Fatalf("status %d %s: %s", resp.Status, resp.Header.Get("Content-Type"), resp.Body)
				}
				m := resp.Map(t)
				if m["required_plan"] != string(tc.need) || m["feature"] != string(tc.feature) {
					t.Fatalf("problem = %v", m)
				}
			})
		}
	}
}

// TestDowngradeStopsFutureAutomationOnly: a workflow that started on essentials finishes
// after a downgrade to hr; a new HR event after the downgrade starts nothing.
func TestDowngradeStopsFutureAutomationOnly(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db, harnessOpts{plan: domain.PlanEssentials})
		h.connectSCIM("github", "engineering")
		e, _ := h.onboarded("ha", "SER-HA", "")
		h.hrEvent(&e, domain.EventEmployeeTerminated, nil)
		h.pump("lock blocked", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "blocked"
		})
		h.org.Plan = domain.PlanHR
		if _, err := db.UpdateOrg(ctx, h.org); err != nil {
			t.Fatal(err)
		}
		w := h.workflow(e.ID, lifecycle.KindOffboarding)
		if _, err := h.eng.CompleteTask(ctx, h.org.ID, h.openTasks(w.ID)[0].ID, "done by hand"); err != nil {
			t.Fatal(err)
		}
		h.pump("half-finished work continues", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
		})
		// Without warehousing the box is received at the office (no intake record)...
		a := apiHarness(t, h)
		tok := a.Token(h.org.ID, domain.RoleIT)
		rid := mustRetrieval(t, db, h.org.ID, e.ID)
		if resp := a.Do("POST", "/api/v1/retrievals/"+rid+"/receive", tok, map[string]any{"warehouse_id": "wh", "condition": "good"}); resp.Status != 402 {
			t.Fatalf("warehouse receipt on hr = %d %s", resp.Status, resp.Body)
		}
		h.org.Plan = domain.PlanEssentials
		if _, err := db.UpdateOrg(ctx, h.org); err != nil {
			t.Fatal(err)
		}
		if resp := a.Do("POST", "/api/v1/retrievals/"+rid+"/receive", tok, nil); resp.Status != 200 {
			t.Fatalf("office receipt = %d %s", resp.Status, resp.Body)
		}
		// ...and, with no agent or MDM on it, wiped by hand.
		var wipeTask string
		h.pump("manual wipe", func() bool {
			for _, tk := range h.openTasks(w.ID) {
				if tk.Kind == "manual_wipe" {
					wipeTask = tk.ID
				}
			}
			return wipeTask != ""
		})
		if _, err := h.eng.CompleteTask(ctx, h.org.ID, wipeTask, "wiped with the vendor tool"); err != nil {
			t.Fatal(err)
		}
		h.pump("cleaning", func() bool {
			return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepCleanDevices) == "waiting"
		})
		h.org.Plan = domain.PlanHR
		if _, err := db.UpdateOrg(ctx, h.org); err != nil {
			t.Fatal(err)
		}
		f := h.hire("iv", domain.NewDate(2026, 12, 1))
		h.pump("event consumed", func() bool { return h.auditCount("lifecycle.automation.skipped", f.ID) == 1 })
		if got := h.workflow(f.ID, lifecycle.KindOnboarding); got.ID != "" {
			t.Fatalf("onboarding started after downgrade: %s", got.State)
		}
	})
}

func TestAPIWorkflowsDryRunAndAdmin(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	h := newHarness(t, db, harnessOpts{})
	h.connectSCIM("github", "engineering")
	a := apiHarness(t, h)
	tok := a.Token(h.org.ID, domain.RoleAdmin)
	e, dev := h.onboarded("jo", "SER-JO", "")
	term := domain.NewDate(2027, 3, 1)
	h.hrEvent(&e, domain.EventEmployeeUpdated, func(e *domain.Employee) { e.HR.TerminationDate = &term })
	auditBefore := len(mustAudit(t, db, h.org.ID))

	resp := a.Do("GET", "/api/v1/employees/"+e.ID+"/offboard/dry-run", tok, nil)
	if resp.Status != 200 {
		t.Fatalf("dry-run = %d %s", resp.Status, resp.Body)
	}
	var dr lifecycle.DryRun
	resp.JSON(t, &dr)
	if len(dr.Steps) != 6 || dr.Steps[0].Kind != lifecycle.StepRevokeApps || len(dr.Steps[0].Targets) != 1 ||
		dr.Steps[0].Targets[0].Name != "github" || dr.Steps[0].Targets[0].Action != "deactivate" {
		t.Fatalf("dry-run apps = %+v", dr.Steps)
	}
	lock := dr.Steps[1].Targets
	if len(lock) != 1 || lock[0].ID != dev.ID || lock[0].Action != "manual task" {
		t.Fatalf("dry-run lock = %+v", lock)
	}
	if want := time.Date(2027, 3, 1, 22, 0, 0, 0, time.UTC); !dr.RunAt.Equal(want) {
		t.Fatalf("run_at = %s", dr.RunAt)
	}
	// Doing nothing: no workflow, no audit rows, SCIM user still active.
	if got := h.workflow(e.ID, lifecycle.KindOffboarding); got.ID != "" {
		t.Fatal("dry-run created a workflow")
	}
	if n := len(mustAudit(t, db, h.org.ID)); n != auditBefore {
		t.Fatalf("dry-run wrote %d audit rows", n-auditBefore)
	}
	if u, _ := h.scim.UserByName(e.HR.WorkEmail); !u.Active {
		t.Fatal("dry-run deactivated the user")
	}
	// Offboard now through the API; skip the manual lock with a reason.
	resp = a.Do("POST", "/api/v1/employees/"+e.ID+"/offboard", tok, map[string]any{})
	if resp.Status != 422 {
		t.Fatalf("offboard without confirm = %d %s", resp.Status, resp.Body)
	}
	resp = a.Do("POST", "/api/v1/employees/"+e.ID+"/offboard", tok, map[string]any{"confirm": e.ID})
	if resp.Status != 200 {
		t.Fatalf("offboard = %d %s", resp.Status, resp.Body)
	}
	h.pump("lock blocked", func() bool {
		return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepLockDevices) == "blocked"
	})
	w := h.workflow(e.ID, lifecycle.KindOffboarding)
	resp = a.Do("POST", "/api/v1/workflows/"+w.ID+"/steps/lock_devices/skip", tok, map[string]any{})
	if resp.Status != 422 {
		t.Fatalf("skip without reason = %d", resp.Status)
	}
	resp = a.Do("POST", "/api/v1/workflows/"+w.ID+"/steps/lock_devices/skip", tok, map[string]any{"reason": "device reported stolen"})
	if resp.Status != 200 {
		t.Fatalf("skip = %d %s", resp.Status, resp.Body)
	}
	h.pump("retrieval waiting", func() bool {
		return h.stepState(e.ID, lifecycle.KindOffboarding, lifecycle.StepAwaitReceipt) == "waiting"
	})
	resp = a.Do("GET", "/api/v1/workflows/"+w.ID, tok, nil)
	var v lifecycle.WorkflowView
	resp.JSON(t, &v)
	if v.Steps[1].State != "skipped" || v.Steps[1].Reason != "device reported stolen" {
		t.Fatalf("lock step = %+v", v.Steps[1])
	}
	for _, tk := range v.Tasks {
		if tk.Kind == "manual_lock" && tk.State != "cancelled" {
			t.Fatalf("manual lock task = %s", tk.State)
		}
	}
	resp = a.Do("POST", "/api/v1/workflows/"+w.ID+"/pause", tok, map[string]any{"reason": "investigating"})
	if resp.Status != 200 || h.wfState(e.ID, lifecycle.KindOffboarding) != "paused" {
		t.Fatalf("pause = %d %s", resp.Status, resp.Body)
	}
	resp = a.Do("POST", "/api/v1/workflows/"+w.ID+"/resume", tok, nil)
	if resp.Status != 200 || h.wfState(e.ID, lifecycle.KindOffboarding) != "running" {
		t.Fatalf("resume = %d %s", resp.Status, resp.Body)
	}
	resp = a.Do("POST", "/api/v1/workflows/"+w.ID+"/cancel", tok, map[string]any{"reason": "employee stays"})
	var rep lifecycle.CancelReport
	resp.JSON(t, &rep)
	if resp.Status != 200 || len(rep.AlreadyDone) != 2 || rep.Reason != "employee stays" {
		t.Fatalf("cancel = %d %+v", resp.Status, rep)
	}
	if n := h.auditCount("lifecycle.step.skipped", w.Steps[1].ID); n != 1 {
		t.Fatalf("skip audits = %d", n)
	}
	// Generated checks over the route table.
	other := domain.Org{Name: "Other", Plan: domain.PlanPro}
	if err := store.CreateOrg(ctx, db.SQL, &other); err != nil {
		t.Fatal(err)
	}
	apitest.CheckIsolation(t, a, a.Token(other.ID, domain.RoleOwner), apitest.Fixtures{"workflow": w.ID, "employee": e.ID,
		"device": dev.ID, "task": v.Tasks[0].ID, "retrieval": mustRetrieval(t, db, h.org.ID, e.ID)})
	apitest.CheckRoles(t, a, h.org.ID)
	apitest.CheckOpenAPI(t, a.API)
}

func mustAudit(t *testing.T, db *store.DB, orgID string) []domain.AuditEntry {
	t.Helper()
	es, _, err := db.ListAudit(context.Background(), orgID, store.AuditFilter{}, store.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func mustRetrieval(t *testing.T, db *store.DB, orgID, empID string) string {
	t.Helper()
	rs, _, err := store.ListRetrievals(context.Background(), db.SQL, orgID, store.RetrievalFilter{EmployeeID: empID}, store.Page{})
	if err != nil || len(rs) == 0 {
		t.Fatalf("retrievals: %v %v", rs, err)
	}
	return rs[0].ID
}

func TestCSVImportAllOrNothing(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := newHarness(t, db, harnessOpts{noRiver: true})
	a := apiHarness(t, h)
	tok := a.Token(h.org.ID, domain.RoleIT)
	e := storetest.Employee(t, db, h.org.ID, "kim")
	bad := "serial_number,vendor,model,platform,equipment_type,purchase_date,state,assigned_email\n" +
		"AAA1,Apple,MacBook Air,macos,laptop,2025-01-02,,\n" +
		"AAA2,Apple,MacBook Air,beos,laptop,,,\n" +
		"AAA1,apple,MacBook Air,macos,laptop,,,\n" +
		"AAA3,Dell,XPS,windows,laptop,02/03/2024,,\n" +
		"AAA4,Dell,XPS,windows,laptop,,in_use,nobody@acme.test\n"
	resp := a.Do("POST", "/api/v1/assets/import", tok, bad)
	if resp.Status != 422 {
		t.Fatalf("bad import = %d %s", resp.Status, resp.Body)
	}
	var rep lifecycle.ImportReport
	resp.JSON(t, &rep)
	want := map[int]string{3: "platform", 4: "serial_number", 5: "purchase_date", 6: "assigned_email"}
	if len(rep.Errors) != len(want) || rep.Imported != 0 || rep.Rows != 5 {
		t.Fatalf("report = %+v", rep)
	}
	for _, re := range rep.Errors {
		if want[re.Row] != re.Column {
			t.Fatalf("unexpected error %+v", re)
		}
	}
	devs, _, _ := db.ListDevices(context.Background(), h.org.ID, store.DeviceFilter{}, store.Page{})
	if len(devs) != 0 {
		t.Fatalf("half-imported: %d devices", len(devs))
	}
	good := "serial_number,vendor,model,platform,equipment_type,purchase_date,state,assigned_email\n" +
		"AAA1,Apple,MacBook Air,macos,laptop,2025-01-02,,\n" +
		"AAA4,Dell,XPS,windows,laptop,,in_use," + e.HR.WorkEmail + "\n"
	resp = a.Do("POST", "/api/v1/assets/import?dry_run=true", tok, good)
	resp.JSON(t, &rep)
	if resp.Status != 200 || !rep.DryRun || rep.Imported != 0 {
		t.Fatalf("dry run = %d %+v", resp.Status, rep)
	}
	resp = a.Do("POST", "/api/v1/assets/import", tok, good)
	resp.JSON(t, &rep)
	if resp.Status != 200 || rep.Imported != 2 {
		t.Fatalf("import = %d %+v", resp.Status, rep)
	}
	resp = a.Do("GET", "/api/v1/assets/export", tok, nil)
	lines := strings.Split(strings.TrimSpace(string(resp.Body)), "\n")
	if resp.Status != 200 || len(lines) != 3 || !strings.Contains(string(resp.Body), "AAA4,dell,XPS,windows,laptop,,in_use,"+e.HR.WorkEmail) {
		t.Fatalf("export = %d %q", resp.Status, resp.Body)
	}
	// Re-importing the export collides row by row.
	resp = a.Do("POST", "/api/v1/assets/import", tok, string(resp.Body))
	resp.JSON(t, &rep)
	if resp.Status != 422 || len(rep.Errors) != 2 {
		t.Fatalf("re-import = %d %+v", resp.Status, rep)
	}
	// Manual assignment of a new serial.
	resp = a.Do("POST", "/api/v1/assets/assign", tok, map[string]any{"employee_id": e.ID, "serial_number": "new-1", "vendor": "Lenovo", "equipment_type": "laptop"})
	var d domain.Device
	resp.JSON(t, &d)
	if resp.Status != 200 || d.SerialNumber != "NEW-1" || d.AssignedEmployeeID != e.ID || d.State != domain.StateAssigned {
		t.Fatalf("assign = %d %+v", resp.Status, d)
	}
}

func TestWarehouseIntakeRules(t *testing.T) {
	db := storetest.NewSQLite(t)
	ctx := context.Background()
	h := newHarness(t, db, harnessOpts{noRiver: true})
	a := apiHarness(t, h)
	tok := a.Token(h.org.ID, domain.RoleAdmin)
	resp := a.Do("POST", "/api/v1/warehouses", tok, map[string]any{"name": "Newark"})
	var wh store.Warehouse
	resp.JSON(t, &wh)
	old := h.device("OLD1", domain.PlatformMacOS, "")
	pd := domain.NewDate(2019, 12, 1) // 7 years before the fake clock's 2026-12-01
	if _, err := db.PatchDevice(ctx, h.org.ID, old.ID, store.DevicePatch{PurchaseDate: &pd}); err != nil {
		t.Fatal(err)
	}
	newer := h.device("NEW1", domain.PlatformMacOS, "")
	cases := []struct {
		name   string
		body   map[string]any
		status int
		reason string
	}{
		{"seven years old", map[string]any{"device_id": old.ID, "condition": "good"}, 422, "7 or more years"},
		{"activation lock", map[string]any{"device_id": newer.ID, "condition": "good", "activation_lock": true}, 422, "Activation Lock"},
		{"firmware lock", map[string]any{"device_id": newer.ID, "condition": "fair", "firmware_lock": true}, 422, "firmware"},
		{"bad condition", map[string]any{"device_id": newer.ID, "condition": "shiny"}, 400, "condition"},
		{"accepted", map[string]any{"device_id": newer.ID, "condition": "good", "photo_urls": []string{"https://p.test/a.jpg"},
			"accessories": []string{"charger", "box"}}, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := a.Do("POST", "/api/v1/warehouses/"+wh.ID+"/intake", tok, tc.body)
			if resp.Status != tc.status || !strings.Contains(string(resp.Body), tc.reason) {
				t.Fatalf("status %d: %s", resp.Status, resp.Body)
			}
		})
	}
	resp = a.Do("GET", "/api/v1/warehouse-stock", tok, nil)
	var stock api.List[store.StockCount]
	resp.JSON(t, &stock)
	if len(stock.Items) != 1 || stock.Items[0].Count != 1 || stock.Items[0].WarehouseID != wh.ID || stock.Items[0].EquipmentType != "laptop" {
		t.Fatalf("stock = %+v", stock)
	}
	resp = a.Do("GET", "/api/v1/warehouse-storage?from=2026-11&to=2027-01", tok, nil)
	var months api.List[lifecycle.MonthlyStorage]
	resp.JSON(t, &months)
	if len(months.Items) != 1 || months.Items[0].Month != "2026-12" || months.Items[0].Devices != 1 {
		t.Fatalf("storage = %+v", months)
	}
	intakes, _ := db.ListIntakes(ctx, h.org.ID, "")
	if len(intakes) != 4 {
		t.Fatalf("intake records (refusals kept) = %d", len(intakes))
	}
}

func TestProcurementFlow(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{})
		a := apiHarness(t, h)
		tok := a.Token(h.org.ID, domain.RoleIT)
		// No stock: the onboarding orders a laptop through the manual vendor adapter.
		e := h.hire("lu", domain.NewDate(2026, 12, 1))
		h.pump("waiting for delivery", func() bool {
			return h.stepState(e.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitDelivery) == "waiting"
		})
		resp := a.Do("GET", "/api/v1/procurement/orders", tok, nil)
		var orders api.List[store.ProcurementOrder]
		resp.JSON(t, &orders)
		if len(orders.Items) != 1 || orders.Items[0].State != "ordered" || orders.Items[0].ShipTo.City != "Brooklyn" {
			t.Fatalf("orders = %+v", orders)
		}
		o := orders.Items[0]
		w := h.workflow(e.ID, lifecycle.KindOnboarding)
		if ts := h.openTasks(w.ID); len(ts) != 1 || ts[0].Kind != "place_order" {
			t.Fatalf("tasks = %+v", ts)
		}
		if r := a.Do("POST", "/api/v1/procurement/orders/"+o.ID+"/deliver", tok, map[string]any{}); r.Status != 400 {
			t.Fatalf("deliver without serial = %d", r.Status)
		}
		if r := a.Do("POST", "/api/v1/procurement/orders/"+o.ID+"/ship", tok, map[string]any{"tracking_number": "1Z1"}); r.Status != 200 {
			t.Fatalf("ship = %d %s", r.Status, r.Body)
		}
		if r := a.Do("POST", "/api/v1/procurement/orders/"+o.ID+"/ship", tok, map[string]any{"tracking_number": "1Z1"}); r.Status != 409 {
			t.Fatalf("ship twice = %d", r.Status)
		}
		r := a.Do("POST", "/api/v1/procurement/orders/"+o.ID+"/deliver", tok, map[string]any{"serial_number": "pf-1", "platform": "linux"})
		if r.Status != 200 {
			t.Fatalf("deliver = %d %s", r.Status, r.Body)
		}
		h.pump("assigned", func() bool {
			return h.stepState(e.ID, lifecycle.KindOnboarding, lifecycle.StepAwaitCheckIn) == "waiting"
		})
		w = h.workflow(e.ID, lifecycle.KindOnboarding)
		var devID string
		for _, s := range w.Steps {
			if s.Kind == "assign_device" && !strings.Contains(string(s.Output), "PF-1") {
				t.Fatalf("assign output = %s", s.Output)
			}
		}
		devs, _, _ := db.ListDevices(context.Background(), h.org.ID, store.DeviceFilter{Serial: "PF-1"}, store.Page{})
		if len(devs) == 1 {
			devID = devs[0].ID
		}
		if d := h.getDevice(devID); d.AssignedEmployeeID != e.ID {
			t.Fatalf("device holder = %q", d.AssignedEmployeeID)
		}
	})
}
