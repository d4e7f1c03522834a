package dashboard_test

import (
	"context"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/dashboard"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

const (
	on  = "POSTURE_STATE_ON"
	off = "POSTURE_STATE_OFF"
)

func newService(db *store.DB, now time.Time) *dashboard.Service {
	return dashboard.New(dashboard.Deps{Devices: db, Workflows: db, Approvals: db, HRSync: db, PushCerts: db, Now: func() time.Time { return now }})
}

// seed gives an org one of everything the dashboard shows.
func seed(t *testing.T, db *store.DB, org domain.Org, now time.Time) apitest.Fixtures {
	t.Helper()
	ctx := context.Background()
	ada := storetest.Employee(t, db, org.ID, "ada")
	bo := storetest.Employee(t, db, org.ID, "bo")
	for s, p := range map[string]domain.Platform{"MAC1": domain.PlatformMacOS, "MAC2": domain.PlatformMacOS, "MAC3": domain.PlatformMacOS,
		"WIN1": domain.PlatformWindows, "LNX1": domain.PlatformLinux, "SPARE1": domain.PlatformMacOS} {
		d := domain.Device{OrgID: org.ID, SerialNumber: s, Vendor: "apple", Model: "Laptop", Platform: p, EquipmentType: "laptop"}
		if err := db.CreateDevice(ctx, &d); err != nil {
			t.Fatal(err)
		}
	}
	retired := storetest.Device(t, db, org.ID, "OLD1")
	for _, to := range []domain.DeviceState{domain.StateRetired} {
		if _, err := db.TransitionDevice(ctx, org.ID, retired.ID, to); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	for _, r := range []storetest.Report{
		{Serial: "MAC1", Vendor: "apple", Platform: domain.PlatformMacOS, OSVersion: "15.1", Disk: on, Firewall: on, ScreenLock: on, At: now},
		{Serial: "MAC2", Vendor: "apple", Platform: domain.PlatformMacOS, OSVersion: "14.6", Disk: off, Firewall: on, ScreenLock: on, At: now.Add(-8 * day)},
		{Serial: "MAC3", Vendor: "apple", Platform: domain.PlatformMacOS, OSVersion: "15.1", Disk: on, Firewall: off, ScreenLock: "POSTURE_STATE_UNKNOWN", At: now},
		{Serial: "WIN1", Vendor: "apple", Platform: domain.PlatformWindows, OSVersion: "10.0.22631", Disk: on, Firewall: on, ScreenLock: off, At: now.Add(-30 * day)},
		{Serial: "LNX1", Vendor: "apple", Platform: domain.PlatformLinux, OSVersion: "24.04", Disk: on, Firewall: on, ScreenLock: on, At: now, DryRun: true},
		{Serial: "NEW1", Vendor: "framework", Platform: domain.PlatformLinux, OSVersion: "22.04", Disk: off, Firewall: off, ScreenLock: off, At: now},
		// A retired device's report counts nowhere.
		{Serial: "OLD1", Vendor: "apple", Platform: domain.PlatformMacOS, OSVersion: "16.0", Disk: off, At: now.Add(-90 * day)},
	} {
		storetest.AgentReports(t, db, org.ID, r)
	}
	for _, w := range []store.Workflow{
		{OrgID: org.ID, Kind: "offboarding", EmployeeID: ada.ID, State: "running", RunAt: now.Add(-time.Hour)},
		{OrgID: org.ID, Kind: "onboarding", EmployeeID: bo.ID, State: "scheduled", RunAt: now.Add(48 * time.Hour)},
	} {
		if err := store.InsertWorkflow(ctx, db.SQL, &w, []string{"notify"}); err != nil {
			t.Fatal(err)
		}
	}
	mac1, err := store.FindDevicesBySerial(ctx, db.SQL, org.ID, "MAC1")
	if err != nil || len(mac1) != 1 {
		t.Fatalf("MAC1: %v %v", mac1, err)
	}
	wipe := store.DeviceCommand{OrgID: org.ID, DeviceID: mac1[0].ID, Type: "wipe", State: store.CommandAwaitingApproval, Channel: "agent",
		TargetSerial: "MAC1", CreatedBy: "user:someone", ExpiresAt: now.Add(24 * time.Hour)}
	if _, err := db.CreateDeviceCommand(ctx, &wipe); err != nil {
		t.Fatal(err)
	}
	conn := store.HRConnection{OrgID: org.ID, Provider: "justworks", State: "active", CompanyName: "Demo Co", LastSyncAt: &now}
	if err := store.InsertHRConnection(ctx, db.SQL, &conn); err != nil {
		t.Fatal(err)
	}
	fin := now.Add(-time.Hour)
	for _, r := range []store.HRSyncRun{
		{OrgID: org.ID, ConnectionID: conn.ID, Kind: "incremental", Trigger: "schedule", Status: store.HRRunFailed, Error: "justworks: 503",
			StartedAt: now.Add(-2 * time.Hour), HeartbeatAt: now, FinishedAt: &fin},
		{OrgID: org.ID, ConnectionID: conn.ID, Kind: "incremental", Trigger: "schedule", Status: store.HRRunSucceeded,
			StartedAt: now.Add(-time.Minute), HeartbeatAt: now, FinishedAt: &now},
	} {
		if err := store.InsertHRSyncRun(ctx, db.SQL, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MDMPutPushCert(ctx, store.MDMPushCert{OrgID: org.ID, Topic: "com.apple.mgmt.test-" + org.ID, NotAfter: now.Add(20*day + time.Hour),
		CertPEM: "x", KeySealed: "x", UpdatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	return apitest.Fixtures{"device": mac1[0].ID, "employee": ada.ID, "command": wipe.ID}
}

func TestDashboard(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		now := domain.Now()
		org := storetest.Org(t, db, domain.PlanPro)
		seed(t, db, org, now)
		d, err := newService(db, now).Build(context.Background(), org.ID, org.Plan)
		if err != nil {
			t.Fatal(err)
		}
		// MAC1..3, WIN1, LNX1 and SPARE1 in stock or in use, NEW1 created by its report, OLD1 retired.
		if d.Devices.Total != 8 || d.Devices.ByState["retired"] != 1 {
			t.Errorf("devices %+v", d.Devices)
		}
		c := d.Compliance
		if c == nil {
			t.Fatal("no compliance on Pro")
		}
		if c.Reporting != 6 || c.NotReporting != 1 {
			t.Errorf("reporting %d, not reporting %d", c.Reporting, c.NotReporting)
		}
		if c.DiskEncryption != (dashboard.CheckCounts{On: 4, Off: 2}) || c.Firewall != (dashboard.CheckCounts{On: 4, Off: 2}) ||
			c.ScreenLock != (dashboard.CheckCounts{On: 3, Off: 2, Unknown: 1}) {
			t.Errorf("checks disk %+v firewall %+v screen %+v", c.DiskEncryption, c.Firewall, c.ScreenLock)
		}
		wantOS := []dashboard.OSCurrency{
			{Platform: "linux", CurrentVersion: "24.04", UpToDate: 1, Outdated: 1},
			{Platform: "macos", CurrentVersion: "15.1", UpToDate: 2, Outdated: 1},
			{Platform: "windows", CurrentVersion: "10.0.22631", UpToDate: 1},
		}
		if len(c.OSVersion) != len(wantOS) {
			t.Fatalf("os %+v", c.OSVersion)
		}
		for i := range wantOS {
			if c.OSVersion[i] != wantOS[i] {
				t.Errorf("os[%d] = %+v, want %+v", i, c.OSVersion[i], wantOS[i])
			}
		}
		if d.Offline == nil || d.Offline.Count != 2 || len(d.Offline.Items) != 2 || d.Offline.Items[0].SerialNumber != "WIN1" {
			t.Errorf("offline %+v", d.Offline)
		}
		// A heartbeat since the old report brings a device back online.
		win, err := store.FindDevicesBySerial(context.Background(), db.SQL, org.ID, "WIN1")
		if err != nil || len(win) != 1 {
			t.Fatalf("WIN1: %v %v", win, err)
		}
		tr, err := db.GetDeviceTracking(context.Background(), org.ID, win[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.TouchAgents(context.Background(), now, []string{tr.AgentID}, nil); err != nil {
			t.Fatal(err)
		}
		if d2, err := newService(db, now).Build(context.Background(), org.ID, org.Plan); err != nil || d2.Offline.Count != 1 ||
			d2.Offline.Items[0].SerialNumber != "MAC2" {
			t.Errorf("offline after WIN1's heartbeat: %+v %v", d2.Offline, err)
		}
		if d.NeedsReview == nil || d.NeedsReview.Count != 2 {
			t.Errorf("needs review %+v", d.NeedsReview)
		}
		if d.Workflows.Offboarding != 1 || d.Workflows.Onboarding != 1 || len(d.Workflows.Next) != 2 ||
			d.Workflows.Next[0].State != "running" || d.Workflows.Next[0].EmployeeName != "ada Test" {
			t.Errorf("workflows %+v", d.Workflows)
		}
		if d.Approvals.Count != 1 || len(d.Approvals.Items) != 1 || d.Approvals.Items[0].SerialNumber != "MAC1" || d.Approvals.Items[0].Type != "wipe" {
			t.Errorf("approvals %+v", d.Approvals)
		}
		h := d.HRSync
		if !h.Connected || h.LastRun == nil || h.LastRun.Status != store.HRRunSucceeded || h.LastError == nil || h.LastError.Error != "justworks: 503" {
			t.Errorf("hr %+v run %+v error %+v", h, h.LastRun, h.LastError)
		}
		if d.APNs == nil || d.APNs.DaysLeft != 20 || d.APNs.Expired {
			t.Errorf("apns %+v", d.APNs)
		}
	})
}

func TestDashboardEmptyAndPlans(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		org := storetest.Org(t, db, domain.PlanHR)
		d, err := newService(db, domain.Now()).Build(context.Background(), org.ID, org.Plan)
		if err != nil {
			t.Fatal(err)
		}
		if d.Devices.Total != 0 || d.Compliance != nil || d.Offline != nil || d.NeedsReview != nil || d.APNs != nil || d.HRSync.Connected ||
			d.Workflows.Next == nil || d.Approvals.Items == nil {
			t.Errorf("empty HR-plan dashboard %+v", d)
		}
	})
}

func TestDashboardRoute(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		svc := newService(db, domain.Now())
		h := apitest.New(t, db, api.Options{}, svc.Routes())
		a, b := storetest.Org(t, db, domain.PlanPro), storetest.Org(t, db, domain.PlanPro)
		fx := seed(t, db, a, domain.Now())
		t.Run("roles", func(t *testing.T) { apitest.CheckRoles(t, h, a.ID) })
		t.Run("openapi", func(t *testing.T) { apitest.CheckOpenAPI(t, h.API) })
		t.Run("isolation", func(t *testing.T) { apitest.CheckIsolation(t, h, h.Token(b.ID, domain.RoleOwner), fx) })
		var other dashboard.Dashboard
		resp := h.Do("GET", "/api/v1/dashboard", h.Token(b.ID, domain.RoleViewer), nil)
		resp.JSON(t, &other)
		if resp.Status != 200 || other.Devices.Total != 0 || other.Approvals.Count != 0 || other.APNs != nil {
			t.Fatalf("another org sees %d: %+v", resp.Status, other)
		}
		var mine dashboard.Dashboard
		h.Do("GET", "/api/v1/dashboard", h.Token(a.ID, domain.RoleViewer), nil).JSON(t, &mine)
		if mine.Devices.Total != 8 || mine.Approvals.Count != 1 {
			t.Fatalf("viewer dashboard %+v", mine)
		}
	})
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"15.10", "15.9", 1}, {"10.0.19045", "10.0.22631", -1}, {"15", "15.0", 0}, {"15.1", "15.1", 0},
		{"", "1", -1}, {"1", "", 1}, {"24.04", "22.04", 1}, {"14.6.1", "14.6", 1}, {"15.0-beta", "15.0", 1},
	} {
		if got := dashboard.CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
