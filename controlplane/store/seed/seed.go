// Package seed records what a fleet looks like to Lanyard without real machines: an agent
// enrolls and reports its inventory and posture through the same store calls the agent API
// makes. The demo org, the console benchmark and tests share it.
package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Posture states as an agent reports them (agent.v1.PostureState names).
const (
	On      = "POSTURE_STATE_ON"
	Off     = "POSTURE_STATE_OFF"
	Unknown = "POSTURE_STATE_UNKNOWN"
)

// Report describes what an agent reports about its machine.
type Report struct {
	Serial, Vendor, Model, Hostname string
	Platform                        domain.Platform
	OSName, OSVersion               string
	// Disk, Firewall, ScreenLock are On, Off or Unknown; "" leaves the check out.
	Disk, Firewall, ScreenLock string
	// At is when the report arrived (zero = now); a past time makes the device look offline.
	At     time.Time
	DryRun bool
}

// Enroll creates a one-use enrollment secret in orgID and exchanges it for a new agent of
// the machine r describes, as an agent's first contact does.
func Enroll(ctx context.Context, db *store.DB, orgID string, r Report) (store.Agent, error) {
	hash := "seed-" + domain.NewID()
	sec := store.EnrollmentSecret{OrgID: orgID, Name: "seed " + r.Serial, Prefix: hash[:9], MaxUses: 1}
	if err := db.CreateEnrollmentSecret(ctx, &sec, hash); err != nil {
		return store.Agent{}, fmt.Errorf("seed %s: %w", r.Serial, err)
	}
	a := store.Agent{Hostname: r.Hostname, SerialNumber: r.Serial, Platform: string(r.Platform)}
	if _, err := db.ExchangeEnrollmentSecret(ctx, hash, &a); err != nil {
		return a, fmt.Errorf("seed %s: %w", r.Serial, err)
	}
	if err := db.MarkAgentEnrolled(ctx, orgID, a.ID); err != nil {
		return a, fmt.Errorf("seed %s: %w", r.Serial, err)
	}
	return a, nil
}

// ReportInventory enrolls a fresh agent and records one full report from it. It returns
// the agent id and the outcome (the device it linked to, or created for an unknown serial).
func ReportInventory(ctx context.Context, db *store.DB, orgID string, r Report) (string, store.InventoryOutcome, error) {
	a, err := Enroll(ctx, db, orgID, r)
	if err != nil {
		return "", store.InventoryOutcome{}, err
	}
	out, err := db.ApplyInventory(ctx, orgID, a.ID, InventoryReport(r))
	if err != nil {
		return a.ID, out, fmt.Errorf("seed report %s: %w", r.Serial, err)
	}
	return a.ID, out, nil
}

// InventoryReport builds the store form of a full report, its sections encoded as the
// agent API encodes them (protojson field and enum names).
func InventoryReport(r Report) store.InventoryReport {
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
