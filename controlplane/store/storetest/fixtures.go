package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
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

// Report describes what a test agent reports about its machine.
type Report struct {
	Serial, Vendor, Model, Hostname string
	Platform                        domain.Platform
	OSName, OSVersion               string
	// Disk, Firewall, ScreenLock are agent.v1.PostureState names ("POSTURE_STATE_ON", ...);
	// "" leaves the check out of the report.
	Disk, Firewall, ScreenLock string
	At                         time.Time
	DryRun                     bool
}

// AgentReports enrolls a fresh agent in orgID and records one full inventory report from
// it, through the same store calls the agent API makes. It returns the agent id and the
// outcome (the device it linked to, or created for an unknown serial).
func AgentReports(t testing.TB, db *store.DB, orgID string, r Report) (string, store.InventoryOutcome) {
	t.Helper()
	id, out, err := ReportInventory(context.Background(), db, orgID, r)
	if err != nil {
		t.Fatalf("agent report for %s: %v", r.Serial, err)
	}
	return id, out
}

// ReportInventory is AgentReports for seeds outside tests (demo, benchmarks).
func ReportInventory(ctx context.Context, db *store.DB, orgID string, r Report) (string, store.InventoryOutcome, error) {
	hash := "seed-" + domain.NewID()
	sec := store.EnrollmentSecret{OrgID: orgID, Name: "seed " + r.Serial, Prefix: hash[:9], MaxUses: 1}
	if err := db.CreateEnrollmentSecret(ctx, &sec, hash); err != nil {
		return "", store.InventoryOutcome{}, err
	}
	a := store.Agent{Hostname: r.Hostname, SerialNumber: r.Serial, Platform: string(r.Platform)}
	if _, err := db.ExchangeEnrollmentSecret(ctx, hash, &a); err != nil {
		return "", store.InventoryOutcome{}, err
	}
	if err := db.MarkAgentEnrolled(ctx, orgID, a.ID); err != nil {
		return "", store.InventoryOutcome{}, err
	}
	out, err := db.ApplyInventory(ctx, orgID, a.ID, InventoryReportOf(r))
	return a.ID, out, err
}

// InventoryReportOf builds the store form of a full report, its sections encoded as the
// agent API encodes them (protojson field and enum names).
func InventoryReportOf(r Report) store.InventoryReport {
	at := r.At
	if at.IsZero() {
		at = domain.Now()
	}
	posture := map[string]string{"os_version": r.OSVersion}
	for k, v := range map[string]string{"disk_encryption": r.Disk, "firewall": r.Firewall, "screen_lock": r.ScreenLock} {
		if v != "" {
			posture[k] = v
		}
	}
	enc := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	sections := map[string]json.RawMessage{
		"hostname": enc(r.Hostname),
		"os":       enc(map[string]string{"name": r.OSName, "version": r.OSVersion}),
		"hardware": enc(map[string]string{"serial_number": r.Serial, "vendor": r.Vendor, "model": r.Model}),
		"posture":  enc(posture),
	}
	return store.InventoryReport{Full: true, Sections: sections, Hash: "h-" + r.Serial + "-" + at.Format(time.RFC3339Nano),
		Serial: r.Serial, Vendor: r.Vendor, Model: r.Model, Hostname: r.Hostname, Platform: r.Platform,
		OSName: r.OSName, OSVersion: r.OSVersion, At: at, Mode: store.AgentMode{DryRun: r.DryRun}}
}
