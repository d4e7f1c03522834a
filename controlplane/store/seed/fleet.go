package seed

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
		"Radia", "Linus", "Hedy", "Tim", "Katherine", "John", "Sophie", "Guido", "Anita", "Niklaus"}
	lastNames = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie",
		"Perlman", "Torvalds", "Lamarr", "Berners-Lee", "Johnson", "McCarthy", "Wilson", "Rossum", "Borg", "Wirth", "Nakamura", "Okafor",
		"Schmidt", "Garcia", "Kowalski", "Ivanova", "Singh", "Chen", "Haddad", "Silva"}
	departments = []string{"Engineering", "Sales", "Support", "Finance", "Marketing", "Operations", "People"}
	memberTypes = []domain.MemberType{domain.MemberFullTime, domain.MemberFullTime, domain.MemberFullTime, domain.MemberPartTime, domain.MemberContractor}
)

type model struct {
	prefix, vendor, model string
	platform              domain.Platform
	osName                string
	versions              []string
}

var models = []model{
	{"C02", "apple", "MacBook Pro 14", domain.PlatformMacOS, "macOS", []string{"15.1", "15.0.1", "14.7"}},
	{"FVF", "apple", "MacBook Air 13", domain.PlatformMacOS, "macOS", []string{"15.1", "14.6"}},
	{"PF4", "lenovo", "ThinkPad T14 Gen 4", domain.PlatformWindows, "Windows 11", []string{"10.0.26100", "10.0.22631"}},
	{"DL7", "dell", "Latitude 7440", domain.PlatformWindows, "Windows 11", []string{"10.0.26100", "10.0.22631", "10.0.19045"}},
	{"PX1", "lenovo", "ThinkPad X1 Carbon", domain.PlatformLinux, "Ubuntu", []string{"24.04", "22.04"}},
	{"FRW", "framework", "Laptop 13", domain.PlatformLinux, "Fedora", []string{"41", "40"}},
}

// Fleet creates an org (Pro plan) with people employees and devices laptops: about 70 % assigned
// and in use, the rest in stock or further along the lifecycle; 90 % with an agent that
// reported inventory and posture (3 % of those more than a week ago, 1 % flagged for
// review by a dry-run agent). Everything goes through the store functions the API, HR
// sync and the agent API use, in batches so 10,000 devices take seconds, not minutes.
func Fleet(ctx context.Context, db *store.DB, devices, people int) (domain.Org, error) {
	ctx = domain.WithActor(ctx, domain.Actor{ID: "system:bench"})
	org := domain.Org{Name: "Bench Co", Plan: domain.PlanPro, TimeZone: "America/New_York"}
	if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
		return org, err
	}
	rng := rand.New(rand.NewPCG(13, 13))
	var active []string
	const batch = 500
	for start := 0; start < people; start += batch {
		var es []*domain.Employee
		for i := start; i < min(start+batch, people); i++ {
			f, l := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
			st := domain.StatusActive
			switch i % 20 {
			case 7:
				st = domain.StatusPending
			case 13:
				st = domain.StatusTerminated
			}
			start := domain.Date{Time: time.Date(2018+i%8, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)}
			e := &domain.Employee{OrgID: org.ID, Source: "justworks", ExternalID: fmt.Sprintf("m_%06d", i), HR: domain.HRFields{
				FirstName: f, LastName: l, WorkEmail: fmt.Sprintf("%s.%s.%d@bench.example.com", f, l, i), Status: st,
				Departments: []string{departments[i%len(departments)]}, MemberType: memberTypes[i%len(memberTypes)], StartDate: &start}}
			es = append(es, e)
		}
		if err := db.InTx(ctx, func(tx *sql.Tx) error { return db.InsertHRBatch(ctx, tx, es, nil, nil, nil) }); err != nil {
			return org, fmt.Errorf("seed people: %w", err)
		}
		for _, e := range es { // InsertHRBatch gave them their ids
			if e.HR.Status == domain.StatusActive {
				active = append(active, e.ID)
			}
		}
	}
	type dev struct {
		d      domain.Device
		m      model
		assign string
		report bool
	}
	devs := make([]dev, devices)
	for i := range devs {
		m := models[i%len(models)]
		devs[i] = dev{m: m, d: domain.Device{OrgID: org.ID, SerialNumber: fmt.Sprintf("%s%07d", m.prefix, 1000000+i*7919%9000000), Vendor: m.vendor,
			Model: m.model, Platform: m.platform, EquipmentType: "laptop"}, report: i%10 != 9}
		if i%10 < 7 && len(active) > 0 {
			devs[i].assign = active[i%len(active)]
		}
	}
	for start := 0; start < devices; start += batch {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			for i := start; i < min(start+batch, devices); i++ {
				if err := store.CreateDevice(ctx, tx, &devs[i].d); err != nil {
					return err
				}
				if devs[i].assign != "" {
					if _, err := store.AssignDevice(ctx, tx, org.ID, devs[i].d.ID, devs[i].assign); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return org, fmt.Errorf("seed devices: %w", err)
		}
	}
	// One enrollment secret for the whole fleet, as an MDM rollout would use.
	hash := "bench-" + domain.NewID()
	sec := store.EnrollmentSecret{OrgID: org.ID, Name: "bench rollout", Prefix: hash[:9]}
	if err := db.CreateEnrollmentSecret(ctx, &sec, hash); err != nil {
		return org, err
	}
	now := domain.Now()
	var items []store.InventoryItem
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		_, err := db.ApplyInventoryBatch(ctx, items)
		items = items[:0]
		return err
	}
	posture := func() string {
		switch n := rng.IntN(100); {
		case n < 85:
			return On
		case n < 97:
			return Off
		}
		return Unknown
	}
	for i, dv := range devs {
		if !dv.report {
			continue
		}
		host := fmt.Sprintf("%s-%05d", dv.m.prefix, i)
		a := store.Agent{Hostname: host, SerialNumber: dv.d.SerialNumber, Platform: string(dv.d.Platform)}
		if _, err := db.ExchangeEnrollmentSecret(ctx, hash, &a); err != nil {
			return org, fmt.Errorf("seed agent: %w", err)
		}
		at := now.Add(-time.Duration(rng.IntN(3600)) * time.Second)
		if i%33 == 5 {
			at = now.Add(-time.Duration(8+rng.IntN(30)) * 24 * time.Hour)
		}
		v := dv.m.versions[0]
		if rng.IntN(4) == 0 {
			v = dv.m.versions[rng.IntN(len(dv.m.versions))]
		}
		r := Report{Serial: dv.d.SerialNumber, Vendor: dv.d.Vendor, Model: dv.d.Model, Hostname: host, Platform: dv.d.Platform,
			OSName: dv.m.osName, OSVersion: v, Disk: posture(), Firewall: posture(), ScreenLock: posture(), At: at, DryRun: i%100 == 42}
		items = append(items, store.InventoryItem{OrgID: org.ID, AgentID: a.ID, Report: InventoryReport(r)})
		if len(items) == 200 {
			if err := flush(); err != nil {
				return org, fmt.Errorf("seed reports: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return org, fmt.Errorf("seed reports: %w", err)
	}
	return org, nil
}
