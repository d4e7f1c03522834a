package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Run is the conformance suite: every dialect must pass it unchanged.
func Run(t *testing.T, newDB func(t *testing.T) *store.DB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"OrgRoundTrip", testOrgRoundTrip},
		{"TokenLifecycle", testTokenLifecycle},
		{"EmployeeFiltersAndPaging", testEmployeeFilters},
		{"DeviceStateMachine", testDeviceStateMachine},
		{"ConcurrentAssignOneWins", testConcurrentAssign},
		{"DuplicateSerialConflict", testDuplicateSerial},
		{"AuditAppendOnly", testAuditAppendOnly},
		{"TenantScoping", testTenantScoping},
		{"OutboxOrder", testOutboxOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB(t)) })
	}
}

func testOrgRoundTrip(t *testing.T, db *store.DB) {
	ctx := context.Background()
	o := Org(t, db, domain.PlanPro)
	o.Settings.WipeRequiresApproval = true
	o.Name = "Renamed"
	got, err := db.UpdateOrg(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Renamed" || !got.Settings.WipeRequiresApproval || got.Plan != domain.PlanPro || got.TimeZone != "America/New_York" {
		t.Fatalf("round trip lost data: %+v", got)
	}
	if _, err := db.GetOrg(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing org: got %v, want ErrNotFound", err)
	}
}

func testTokenLifecycle(t *testing.T, db *store.DB) {
	ctx := context.Background()
	o := Org(t, db, domain.PlanHR)
	past := time.Now().Add(-time.Minute)
	tok, secret, err := db.CreateToken(ctx, o.ID, "ci", domain.RoleIT, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.AuthenticateToken(ctx, secret)
	if err != nil || got.ID != tok.ID || got.Role != domain.RoleIT {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	if _, err := db.AuthenticateToken(ctx, secret+"x"); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("wrong secret accepted: %v", err)
	}
	_, expired, err := db.CreateToken(ctx, o.ID, "old", domain.RoleViewer, &past)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AuthenticateToken(ctx, expired); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("expired token accepted: %v", err)
	}
	if _, err := db.RevokeToken(ctx, o.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AuthenticateToken(ctx, secret); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("revoked token accepted: %v", err)
	}
}

func testEmployeeFilters(t *testing.T, db *store.DB) {
	ctx := context.Background()
	o := Org(t, db, domain.PlanHR)
	for i := 0; i < 5; i++ {
		e := Employee(t, db, o.ID, "E")
		if i%2 == 0 {
			e.HR.Departments = []string{"Sales", "EMEA"}
			e.HR.Status = domain.StatusTerminated
			if err := store.UpdateEmployee(ctx, db.SQL, &e); err != nil {
				t.Fatal(err)
			}
		}
	}
	sales, _, err := db.ListEmployees(ctx, o.ID, store.EmployeeFilter{Department: "sales"}, store.Page{})
	if err != nil || len(sales) != 3 {
		t.Fatalf("department filter: %d %v", len(sales), err)
	}
	active, _, _ := db.ListEmployees(ctx, o.ID, store.EmployeeFilter{Status: domain.StatusActive}, store.Page{})
	if len(active) != 2 {
		t.Fatalf("status filter: got %d, want 2", len(active))
	}
	var all []domain.Employee
	cursor := ""
	for {
		page, next, err := db.ListEmployees(ctx, o.ID, store.EmployeeFilter{}, store.Page{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 5 {
		t.Fatalf("paging returned %d, want 5", len(all))
	}
	if _, _, err := db.ListEmployees(ctx, o.ID, store.EmployeeFilter{}, store.Page{Cursor: "%%%"}); !errors.Is(err, store.ErrInvalidInput) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func testDeviceStateMachine(t *testing.T, db *store.DB) {
	ctx := context.Background()
	o := Org(t, db, domain.PlanPro)
	e := Employee(t, db, o.ID, "Ada")
	d := Device(t, db, o.ID, "C02XYZ")
	steps := []struct {
		to      domain.DeviceState
		wantErr bool
	}{
		{domain.StateCleaning, true},
		{domain.StateRetired, false},
		{domain.StateInStock, true},
	}
	d2 := Device(t, db, o.ID, "C02ABC")
	for _, s := range steps {
		_, err := db.TransitionDevice(ctx, o.ID, d2.ID, s.to)
		if (err != nil) != s.wantErr {
			t.Fatalf("transition to %s: err=%v wantErr=%v", s.to, err, s.wantErr)
		}
	}
	got, err := db.AssignDevice(ctx, o.ID, d.ID, e.ID)
	if err != nil || got.State != domain.StateAssigned || got.AssignedEmployeeID != e.ID {
		t.Fatalf("assign: %+v %v", got, err)
	}
	for _, to := range []domain.DeviceState{domain.StateInUse, domain.StateRetrievalReq, domain.StateInRetrieval, domain.StateReceived} {
		if got, err = db.TransitionDevice(ctx, o.ID, d.ID, to); err != nil {
			t.Fatalf("transition to %s: %v", to, err)
		}
	}
	if got.AssignedEmployeeID != "" {
		t.Fatalf("received device still assigned to %s", got.AssignedEmployeeID)
	}
	hist, _, err := db.ListAssignments(ctx, o.ID, d.ID, "", store.Page{})
	if err != nil || len(hist) != 1 || hist[0].UnassignedAt == nil {
		t.Fatalf("history: %+v %v", hist, err)
	}
}

func testConcurrentAssign(t *testing.T, db *store.DB) {
	ctx := context.Background()
	o := Org(t, db, domain.PlanPro)
	d := Device(t, db, o.ID, "RACE1")
	emps := []domain.Employee{Employee(t, db, o.ID, "A"), Employee(t, db, o.ID, "B"), Employee(t, db, o.ID, "C"), Employee(t, db, o.ID, "D")}
	var wg sync.WaitGroup
	errs := make([]error, len(emps))
	for i, e := range emps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.AssignDevice(ctx, o.ID, d.ID, e.ID)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("loser got %v, want ErrConflict", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d assignments won, want exactly 1", wins)
	}
	hist, _, _ := db.ListAssignments(ctx, o.ID, d.ID, "", store.Page{})
	if len(hist) != 1 {
		t.Fatalf("history has %d rows, want 1", len(hist))
	}
}

func testDuplicateSerial(t *testing.T, db *store.DB) {
	o := Org(t, db, domain.PlanPro)
	Device(t, db, o.ID, "DUP1")
	d := domain.Device{OrgID: o.ID, SerialNumber: "DUP1", Vendor: "apple"}
	if err := db.CreateDevice(context.Background(), &d); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate serial: got %v, want ErrConflict", err)
	}
}

func testAuditAppendOnly(t *testing.T, db *store.DB) {
	ctx := context.Background()
	o := Org(t, db, domain.PlanPro)
	d := Device(t, db, o.ID, "AUD1")
	entries, _, err := db.ListAudit(ctx, o.ID, store.AuditFilter{TargetID: d.ID}, store.Page{})
	if err != nil || len(entries) != 1 || entries[0].Action != "device.created" {
		t.Fatalf("audit: %+v %v", entries, err)
	}
	if _, err := db.SQL.ExecContext(ctx, `UPDATE audit_log SET action = 'x'`); err == nil {
		t.Fatal("audit_log accepted an UPDATE")
	}
	if _, err := db.SQL.ExecContext(ctx, `DELETE FROM audit_log`); err == nil {
		t.Fatal("audit_log accepted a DELETE")
	}
}

func testTenantScoping(t *testing.T, db *store.DB) {
	ctx := context.Background()
	a, b := Org(t, db, domain.PlanPro), Org(t, db, domain.PlanPro)
	d := Device(t, db, a.ID, "TEN1")
	e := Employee(t, db, b.ID, "Eve")
	if _, err := db.GetDevice(ctx, b.ID, d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other org read device: %v", err)
	}
	if _, err := db.AssignDevice(ctx, a.ID, d.ID, e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("assigned to another org's employee: %v", err)
	}
	list, _, _ := db.ListDevices(ctx, b.ID, store.DeviceFilter{}, store.Page{})
	if len(list) != 0 {
		t.Fatalf("org b sees %d devices of org a", len(list))
	}
}

func testOutboxOrder(t *testing.T, db *store.DB) {
	ctx := context.Background()
	o := Org(t, db, domain.PlanPro)
	e := Employee(t, db, o.ID, "Out")
	for _, s := range []string{"O1", "O2"} {
		d := Device(t, db, o.ID, s)
		if _, err := db.AssignDevice(ctx, o.ID, d.ID, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := db.ListEvents(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var mine []domain.Event
	for _, ev := range evs {
		if ev.OrgID == o.ID {
			mine = append(mine, ev)
		}
	}
	if len(mine) != 2 || mine[0].Seq >= mine[1].Seq || mine[0].Type != domain.EventDeviceAssigned {
		t.Fatalf("outbox: %+v", mine)
	}
}
