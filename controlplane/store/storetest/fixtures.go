package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/seed"
)

// Org creates an organization on plan for a test.
func Org(t testing.TB, db *store.DB, plan domain.Plan) domain.Org {
	t.Helper()
	o := domain.Org{Name: "Org " + domain.NewID()[:8], Plan: plan, TimeZone: "America/New_York"}
	if err := store.CreateOrg(context.Background(), db.SQL, &o); err != nil {
		t.Fatalf("create org: %v", err)
	}
	return o
}

// Employee creates an active employee for a test.
func Employee(t testing.TB, db *store.DB, orgID, first string) domain.Employee {
	t.Helper()
	e := domain.Employee{OrgID: orgID, Source: "manual", HR: domain.HRFields{
		FirstName: first, LastName: "Test", WorkEmail: fmt.Sprintf("%s.%s@example.com", first, domain.NewID()[30:]),
		Status: domain.StatusActive, Departments: []string{"Engineering"}, MemberType: domain.MemberFullTime,
	}}
	if err := store.InsertEmployee(context.Background(), db.SQL, &e); err != nil {
		t.Fatalf("insert employee: %v", err)
	}
	return e
}

// Device creates an in-stock laptop for a test.
func Device(t testing.TB, db *store.DB, orgID, serial string) domain.Device {
	t.Helper()
	d := domain.Device{OrgID: orgID, SerialNumber: serial, Vendor: "apple", Model: "MacBook Pro", Platform: domain.PlatformMacOS, EquipmentType: "laptop"}
	if err := db.CreateDevice(context.Background(), &d); err != nil {
		t.Fatalf("create device: %v", err)
	}
	return d
}

// AuditActions lists the audit actions recorded about targetID, in ListAudit order.
func AuditActions(t testing.TB, db *store.DB, orgID, targetID string) []string {
	t.Helper()
	rows, _, err := db.ListAudit(context.Background(), orgID, store.AuditFilter{TargetID: targetID}, store.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range rows {
		out = append(out, a.Action)
	}
	return out
}

// Report describes what a test agent reports about its machine (see seed.Report).
type Report = seed.Report

// AgentReports enrolls a fresh agent in orgID and records one full inventory report from
// it, through the same store calls the agent API makes (seed.ReportInventory).
func AgentReports(t testing.TB, db *store.DB, orgID string, r Report) (string, store.InventoryOutcome) {
	t.Helper()
	id, out, err := seed.ReportInventory(context.Background(), db, orgID, r)
	if err != nil {
		t.Fatalf("agent report for %s: %v", r.Serial, err)
	}
	return id, out
}
