package dashboard_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/dashboard"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	storeseed "github.com/lanyardhq/lanyard/controlplane/store/seed"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// The dashboard aggregates the posture columns agent tracking writes with each report (and
// migration 00650 backfilled); its counts must be what reading every device's stored report
// gives, whichever way the columns were filled.
func TestComplianceMatchesReports(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org, err := storeseed.Fleet(ctx, db, 300, 60)
		if err != nil {
			t.Fatal(err)
		}
		// Reports that leave checks out, or carry a state the dashboard does not know.
		for _, r := range []storetest.Report{
			{Serial: "PARTIAL1", Vendor: "framework", Platform: domain.PlatformLinux, OSVersion: "", Disk: on},
			{Serial: "PARTIAL2", Vendor: "framework", Platform: domain.PlatformLinux, OSVersion: "24.10", Firewall: "POSTURE_STATE_NEW", ScreenLock: off},
		} {
			storetest.AgentReports(t, db, org.ID, r)
		}
		want := complianceFromReports(t, db, org.ID)
		if want.Reporting < 250 || want.NotReporting == 0 || want.DiskEncryption.Off == 0 || want.ScreenLock.Unknown == 0 {
			t.Fatalf("the fleet does not exercise every count: %+v", want)
		}
		check := func(t *testing.T) {
			d, err := newService(db, domain.Now()).Build(ctx, org.ID, org.Plan)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*d.Compliance, want) {
				t.Errorf("dashboard compliance\n%+v\nwant (from the stored reports)\n%+v", *d.Compliance, want)
			}
		}
		t.Run("written with each report", check)
		t.Run("backfilled by migration 00650", func(t *testing.T) {
			if _, err := db.SQL.ExecContext(ctx, `UPDATE device_tracking SET posture_reported = FALSE, disk_encryption = '', firewall = '', screen_lock = ''`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL.ExecContext(ctx, backfill(t, db.Dialect)); err != nil {
				t.Fatal(err)
			}
			check(t)
		})
	})
}

// complianceFromReports is the straightforward computation: every in-service device's
// tracking record, its posture JSON parsed in Go.
func complianceFromReports(t *testing.T, db *store.DB, orgID string) dashboard.Compliance {
	t.Helper()
	ctx := context.Background()
	c := dashboard.Compliance{OSVersion: []dashboard.OSCurrency{}}
	add := func(cc *dashboard.CheckCounts, v string) {
		switch v {
		case "on":
			cc.On++
		case "off":
			cc.Off++
		default:
			cc.Unknown++
		}
	}
	type dev struct{ platform, os string }
	var reported []dev
	for cursor := ""; ; {
		ds, next, err := db.ListDevices(ctx, orgID, store.DeviceFilter{}, store.Page{Limit: 200, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.State == domain.StateRetired || d.State == domain.StateLost {
				continue
			}
			tr, err := db.GetDeviceTracking(ctx, orgID, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Posture) == 0 {
				c.NotReporting++
				continue
			}
			c.Reporting++
			p := store.ParsePosture(string(tr.Posture))
			add(&c.DiskEncryption, p.DiskEncryption)
			add(&c.Firewall, p.Firewall)
			add(&c.ScreenLock, p.ScreenLock)
			reported = append(reported, dev{string(d.Platform), tr.OSVersion})
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	newest := map[string]string{}
	for _, d := range reported {
		if dashboard.CompareVersions(d.os, newest[d.platform]) > 0 {
			newest[d.platform] = d.os
		}
	}
	byPlatform := map[string]int{}
	for _, d := range reported {
		i, ok := byPlatform[d.platform]
		if !ok {
			i = len(c.OSVersion)
			byPlatform[d.platform] = i
			c.OSVersion = append(c.OSVersion, dashboard.OSCurrency{Platform: d.platform, CurrentVersion: newest[d.platform]})
		}
		o := &c.OSVersion[i]
		switch {
		case d.os == "":
			o.Unknown++
		case dashboard.CompareVersions(d.os, o.CurrentVersion) >= 0:
			o.UpToDate++
		default:
			o.Outdated++
		}
	}
	slices.SortFunc(c.OSVersion, func(a, b dashboard.OSCurrency) int { return strings.Compare(a.Platform, b.Platform) })
	return c
}

// backfill is the UPDATE of migration 00650 for the dialect, as the migration runs it.
func backfill(t *testing.T, d store.Dialect) string {
	t.Helper()
	dir := "sqlite"
	if d == store.Postgres {
		dir = "postgres"
	}
	b, err := os.ReadFile(filepath.Join("..", "store", dir, "migrations", "00650_posture_columns.sql"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "UPDATE device_tracking")
	end := strings.Index(s[max(start, 0):], ";")
	if start < 0 || end < 0 {
		t.Fatal("no backfill UPDATE in migration 00650")
	}
	return s[start : start+end]
}
