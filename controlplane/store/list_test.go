package store_test

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

const (
	on      = "POSTURE_STATE_ON"
	off     = "POSTURE_STATE_OFF"
	unknown = "POSTURE_STATE_UNKNOWN"
)

// fleet is a small org with one device per interesting case, plus ties (same model, same
// state) so sorted paging has to break them by id.
type fleet struct {
	org domain.Org
	now time.Time
}

func newFleet(t *testing.T, db *store.DB) fleet {
	t.Helper()
	ctx := context.Background()
	f := fleet{org: storetest.Org(t, db, domain.PlanPro), now: domain.Now()}
	people := map[string]domain.Employee{}
	for _, n := range []string{"alice", "bob", "carol"} {
		people[n] = storetest.Employee(t, db, f.org.ID, n)
	}
	mk := func(serial, vendor, model string, p domain.Platform, kind string) domain.Device {
		d := domain.Device{OrgID: f.org.ID, SerialNumber: serial, Vendor: vendor, Model: model, Platform: p, EquipmentType: kind}
		if err := db.CreateDevice(ctx, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	assign := func(d domain.Device, who string) {
		if _, err := db.AssignDevice(ctx, f.org.ID, d.ID, people[who].ID); err != nil {
			t.Fatal(err)
		}
	}
	mbp := mk("C02AAA01", "apple", "MacBook Pro 14", domain.PlatformMacOS, "laptop")
	assign(mbp, "alice")
	mk("C02AAA02", "apple", "MacBook Air", domain.PlatformMacOS, "laptop")
	tp := mk("PF0BBB01", "lenovo", "ThinkPad T14", domain.PlatformWindows, "laptop")
	assign(tp, "bob")
	mk("PF0BBB02", "lenovo", "ThinkPad X1", domain.PlatformLinux, "laptop")
	mon := mk("CN0CCC01", "dell", "U2723QE", domain.PlatformOther, "monitor")
	assign(mon, "carol")
	mk("DRY00001", "apple", "MacBook Air", domain.PlatformMacOS, "laptop")
	for _, s := range []string{"GEN00001", "GEN00002", "GEN00003", "GEN00004"} {
		mk(s, "acme", "Generic", domain.PlatformWindows, "laptop")
	}
	day := 24 * time.Hour
	for _, r := range []storetest.Report{
		{Serial: "C02AAA01", Vendor: "apple", Model: "MacBook Pro 14", Hostname: "alice-mbp", Platform: domain.PlatformMacOS, OSName: "macOS",
			OSVersion: "15.1", Disk: on, Firewall: on, ScreenLock: on, At: f.now},
		{Serial: "C02AAA02", Vendor: "apple", Model: "MacBook Air", Hostname: "spare-air", Platform: domain.PlatformMacOS, OSName: "macOS",
			OSVersion: "14.6", Disk: off, Firewall: on, ScreenLock: off, At: f.now.Add(-10 * day)},
		{Serial: "PF0BBB01", Vendor: "lenovo", Model: "ThinkPad T14", Hostname: "bob-tp", Platform: domain.PlatformWindows, OSName: "Windows",
			OSVersion: "10.0.22631", Disk: on, Firewall: off, ScreenLock: on, At: f.now.Add(-3 * day)},
		// Unknown to the org: tracking creates the device and flags it for review.
		{Serial: "ZZUNKNOWN1", Vendor: "framework", Model: "Laptop 13", Hostname: "mystery", Platform: domain.PlatformLinux, OSName: "Ubuntu",
			OSVersion: "24.04", Disk: unknown, At: f.now},
		{Serial: "DRY00001", Vendor: "apple", Model: "MacBook Air", Hostname: "dry", Platform: domain.PlatformMacOS, OSName: "macOS",
			OSVersion: "15.1", Disk: on, Firewall: on, ScreenLock: on, At: f.now.Add(-time.Hour), DryRun: true},
	} {
		storetest.AgentReports(t, db, f.org.ID, r)
	}
	// Another org's device never shows up.
	other := storetest.Org(t, db, domain.PlanPro)
	storetest.Device(t, db, other.ID, "C02AAA99")
	return f
}

func serials(items []store.DeviceListItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.SerialNumber)
	}
	return out
}

func yes() *bool { v := true; return &v }
func no() *bool  { v := false; return &v }

func TestSearchDevicesFilters(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFleet(t, db)
		all := []string{"C02AAA01", "C02AAA02", "CN0CCC01", "DRY00001", "GEN00001", "GEN00002", "GEN00003", "GEN00004", "PF0BBB01", "PF0BBB02", "ZZUNKNOWN1"}
		tests := []struct {
			name string
			q    store.DeviceQuery
			want []string
		}{
			{"everything", store.DeviceQuery{}, all},
			{"q matches the assignee's name", store.DeviceQuery{Q: "ALICE"}, []string{"C02AAA01"}},
			{"q matches the assignee's email", store.DeviceQuery{Q: "@example.com"}, []string{"C02AAA01", "CN0CCC01", "PF0BBB01"}},
			{"q matches the model", store.DeviceQuery{Q: "thinkpad"}, []string{"PF0BBB01", "PF0BBB02"}},
			{"q matches the vendor", store.DeviceQuery{Q: "Lenovo"}, []string{"PF0BBB01", "PF0BBB02"}},
			{"q matches the hostname", store.DeviceQuery{Q: "bob-tp"}, []string{"PF0BBB01"}},
			{"q matches part of the serial", store.DeviceQuery{Q: "aaa0"}, []string{"C02AAA01", "C02AAA02"}},
			{"q wildcards match literally", store.DeviceQuery{Q: "%"}, nil},
			{"q underscore matches literally", store.DeviceQuery{Q: "c02_aa"}, nil},
			{"state", store.DeviceQuery{DeviceFilter: store.DeviceFilter{State: domain.StateInUse}}, []string{"C02AAA01", "PF0BBB01"}},
			{"platform", store.DeviceQuery{DeviceFilter: store.DeviceFilter{Platform: domain.PlatformLinux}}, []string{"PF0BBB02", "ZZUNKNOWN1"}},
			{"os version", store.DeviceQuery{OSVersion: "15.1"}, []string{"C02AAA01", "DRY00001"}},
			{"assigned", store.DeviceQuery{Assigned: yes()}, []string{"C02AAA01", "CN0CCC01", "PF0BBB01"}},
			{"not assigned", store.DeviceQuery{Assigned: no()},
				[]string{"C02AAA02", "DRY00001", "GEN00001", "GEN00002", "GEN00003", "GEN00004", "PF0BBB02", "ZZUNKNOWN1"}},
			{"disk encrypted", store.DeviceQuery{DiskEncrypted: yes()}, []string{"C02AAA01", "DRY00001", "PF0BBB01"}},
			{"disk not encrypted (unknown is neither)", store.DeviceQuery{DiskEncrypted: no()}, []string{"C02AAA02"}},
			{"firewall off", store.DeviceQuery{Firewall: no()}, []string{"PF0BBB01"}},
			{"screen lock off", store.DeviceQuery{ScreenLock: no()}, []string{"C02AAA02"}},
			{"offline more than 7 days", store.DeviceQuery{OfflineDays: 7}, []string{"C02AAA02"}},
			{"offline more than 2 days", store.DeviceQuery{OfflineDays: 2}, []string{"C02AAA02", "PF0BBB01"}},
			{"needs review (unknown serial, dry run)", store.DeviceQuery{NeedsReview: yes()}, []string{"DRY00001", "ZZUNKNOWN1"}},
			{"does not need review", store.DeviceQuery{NeedsReview: no()},
				[]string{"C02AAA01", "C02AAA02", "CN0CCC01", "GEN00001", "GEN00002", "GEN00003", "GEN00004", "PF0BBB01", "PF0BBB02"}},
			{"facets combine", store.DeviceQuery{DeviceFilter: store.DeviceFilter{Platform: domain.PlatformMacOS}, DiskEncrypted: yes(), NeedsReview: no()},
				[]string{"C02AAA01"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				q := tc.q
				q.Sort, q.Total, q.Page = "serial", true, store.Page{Limit: 200}
				q.Now = f.now
				got, err := db.SearchDevices(context.Background(), f.org.ID, q)
				if err != nil {
					t.Fatal(err)
				}
				if s := serials(got.Items); !slices.Equal(s, tc.want) {
					t.Fatalf("got %v, want %v", s, tc.want)
				}
				if got.Total == nil || *got.Total != len(tc.want) {
					t.Fatalf("total = %v, want %d", got.Total, len(tc.want))
				}
			})
		}
	})
}

func TestSearchDevicesRowDetails(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFleet(t, db)
		got, err := db.SearchDevices(context.Background(), f.org.ID, store.DeviceQuery{Q: "C02AAA01"})
		if err != nil || len(got.Items) != 1 {
			t.Fatalf("%v %v", got, err)
		}
		it := got.Items[0]
		if it.Assignee == nil || !strings.HasPrefix(it.Assignee.Name, "alice") || it.Assignee.Email == "" || it.Hostname != "alice-mbp" ||
			it.OSVersion != "15.1" || it.LastSeenAt == nil || it.NeedsReview ||
			it.Posture != (store.PostureSummary{DiskEncryption: "on", Firewall: "on", ScreenLock: "on", OSVersion: "15.1"}) {
			t.Fatalf("row = %+v (assignee %+v)", it, it.Assignee)
		}
		if got.Total != nil {
			t.Fatalf("total counted without being asked: %d", *got.Total)
		}
	})
}

// deviceKey is the order each sort promises, in Go, to check the database's against.
func deviceKey(sort string, it store.DeviceListItem) string {
	switch sort {
	case "serial":
		return it.SerialNumber
	case "model":
		return strings.ToLower(it.Model)
	case "state":
		return string(it.State)
	case "assignee":
		if it.Assignee == nil {
			return ""
		}
		return strings.ToLower(it.Assignee.Name)
	case "last_seen":
		if it.LastSeenAt == nil {
			return time.Unix(0, 0).UTC().Format(time.RFC3339Nano)
		}
		return it.LastSeenAt.UTC().Format("2006-01-02T15:04:05.000000000")
	}
	return it.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000")
}

func TestSearchDevicesSortAndPages(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFleet(t, db)
		ctx := context.Background()
		for _, sort := range store.DeviceSorts {
			for _, desc := range []bool{false, true} {
				name := sort
				if desc {
					name += " desc"
				}
				t.Run(name, func(t *testing.T) {
					one, err := db.SearchDevices(ctx, f.org.ID, store.DeviceQuery{Sort: sort, Desc: desc, Page: store.Page{Limit: 200}})
					if err != nil {
						t.Fatal(err)
					}
					if len(one.Items) != 11 || one.NextCursor != "" {
						t.Fatalf("one page: %d items, next %q", len(one.Items), one.NextCursor)
					}
					want := slices.Clone(one.Items)
					slices.SortStableFunc(want, func(a, b store.DeviceListItem) int {
						c := cmp.Or(cmp.Compare(deviceKey(sort, a), deviceKey(sort, b)), cmp.Compare(a.ID, b.ID))
						if desc {
							return -c
						}
						return c
					})
					if !slices.Equal(serials(one.Items), serials(want)) {
						t.Fatalf("order %v, want %v", serials(one.Items), serials(want))
					}
					// Pages of 3 (ties across page boundaries) give the same sequence.
					var paged []store.DeviceListItem
					cursor := ""
					for i := 0; ; i++ {
						if i > 10 {
							t.Fatal("paging does not end")
						}
						pg, err := db.SearchDevices(ctx, f.org.ID, store.DeviceQuery{Sort: sort, Desc: desc, Page: store.Page{Limit: 3, Cursor: cursor}})
						if err != nil {
							t.Fatal(err)
						}
						paged = append(paged, pg.Items...)
						if cursor = pg.NextCursor; cursor == "" {
							break
						}
					}
					if !slices.Equal(serials(paged), serials(one.Items)) {
						t.Fatalf("pages %v, one page %v", serials(paged), serials(one.Items))
					}
				})
			}
		}
	})
}

func TestSearchDevicesBadInput(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFleet(t, db)
		ctx := context.Background()
		pg, err := db.SearchDevices(ctx, f.org.ID, store.DeviceQuery{Sort: "serial", Page: store.Page{Limit: 2}})
		if err != nil || pg.NextCursor == "" {
			t.Fatalf("%v %v", pg, err)
		}
		for name, q := range map[string]store.DeviceQuery{
			"unknown sort":            {Sort: "colour"},
			"malformed cursor":        {Page: store.Page{Cursor: "%%%"}},
			"cursor of another sort":  {Sort: "model", Page: store.Page{Cursor: pg.NextCursor}},
			"cursor of another order": {Sort: "serial", Desc: true, Page: store.Page{Cursor: pg.NextCursor}},
		} {
			if _, err := db.SearchDevices(ctx, f.org.ID, q); !errors.Is(err, store.ErrInvalidInput) {
				t.Errorf("%s: err = %v, want ErrInvalidInput", name, err)
			}
		}
	})
}

func TestSearchEmployees(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := storetest.Org(t, db, domain.PlanPro)
		type person struct {
			first, last, email, dept string
			status                   domain.EmploymentStatus
			kind                     domain.MemberType
			start                    string
		}
		for _, p := range []person{
			{"Ada", "Lovelace", "ada@example.com", "Engineering", domain.StatusActive, domain.MemberFullTime, "2024-01-10"},
			{"Grace", "Hopper", "grace@example.com", "Engineering", domain.StatusActive, domain.MemberContractor, "2025-03-01"},
			{"Alan", "Turing", "alan@example.com", "Research", domain.StatusTerminated, domain.MemberFullTime, "2023-06-15"},
			{"Edsger", "Dijkstra", "edsger@example.com", "Research", domain.StatusPending, domain.MemberPartTime, ""},
			{"Barbara", "Liskov", "barbara@example.com", "Engineering", domain.StatusActive, domain.MemberFullTime, "2024-01-10"},
		} {
			e := domain.Employee{OrgID: org.ID, Source: "manual", HR: domain.HRFields{FirstName: p.first, LastName: p.last, WorkEmail: p.email,
				Status: p.status, Departments: []string{p.dept}, MemberType: p.kind}}
			if p.start != "" {
				d, err := domain.ParseDate(p.start)
				if err != nil {
					t.Fatal(err)
				}
				e.HR.StartDate = &d
			}
			if err := store.InsertEmployee(ctx, db.SQL, &e); err != nil {
				t.Fatal(err)
			}
		}
		firsts := func(es []domain.Employee) []string {
			var out []string
			for _, e := range es {
				out = append(out, e.HR.FirstName)
			}
			return out
		}
		filters := []struct {
			name string
			q    store.EmployeeQuery
			want []string
		}{
			{"q by first name", store.EmployeeQuery{Q: "ADA"}, []string{"Ada"}},
			{"q across first and last", store.EmployeeQuery{Q: "grace hop"}, []string{"Grace"}},
			{"q by email", store.EmployeeQuery{Q: "alan@"}, []string{"Alan"}},
			{"q substring", store.EmployeeQuery{Q: "ar"}, []string{"Barbara"}},
			{"status", store.EmployeeQuery{EmployeeFilter: store.EmployeeFilter{Status: domain.StatusActive}}, []string{"Ada", "Barbara", "Grace"}},
			{"department", store.EmployeeQuery{EmployeeFilter: store.EmployeeFilter{Department: "research"}}, []string{"Alan", "Edsger"}},
			{"member type", store.EmployeeQuery{EmployeeFilter: store.EmployeeFilter{MemberType: domain.MemberFullTime}}, []string{"Ada", "Alan", "Barbara"}},
			{"combined", store.EmployeeQuery{Q: "a", EmployeeFilter: store.EmployeeFilter{Department: "engineering", MemberType: domain.MemberFullTime}},
				[]string{"Ada", "Barbara"}},
		}
		for _, tc := range filters {
			q := tc.q
			q.Sort, q.Total, q.Page = "name", true, store.Page{Limit: 200}
			got, err := db.SearchEmployees(ctx, org.ID, q)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if f := firsts(got.Items); !slices.Equal(f, tc.want) || got.Total == nil || *got.Total != len(tc.want) {
				t.Errorf("%s: got %v (total %v), want %v", tc.name, f, got.Total, tc.want)
			}
		}
		sorts := map[string][]string{
			"name":       {"Ada", "Alan", "Barbara", "Edsger", "Grace"},
			"email":      {"Ada", "Alan", "Barbara", "Edsger", "Grace"},
			"status":     {"Ada", "Grace", "Barbara", "Edsger", "Alan"}, // active, pending, terminated; ties by id (insert order)
			"start_date": {"Edsger", "Alan", "Ada", "Barbara", "Grace"}, // no date first; the 2024-01-10 tie by id
			"created":    {"Ada", "Grace", "Alan", "Edsger", "Barbara"},
		}
		for sort, want := range sorts {
			for _, desc := range []bool{false, true} {
				exp := slices.Clone(want)
				if desc {
					slices.Reverse(exp)
				}
				var got []string
				cursor := ""
				for i := 0; i < 10; i++ {
					pg, err := db.SearchEmployees(ctx, org.ID, store.EmployeeQuery{Sort: sort, Desc: desc, Page: store.Page{Limit: 2, Cursor: cursor}})
					if err != nil {
						t.Fatalf("sort %s: %v", sort, err)
					}
					got = append(got, firsts(pg.Items)...)
					if cursor = pg.NextCursor; cursor == "" {
						break
					}
				}
				if !slices.Equal(got, exp) {
					t.Errorf("sort %s desc=%v: got %v, want %v", sort, desc, got, exp)
				}
			}
		}
		if _, err := db.SearchEmployees(ctx, org.ID, store.EmployeeQuery{Sort: "salary"}); !errors.Is(err, store.ErrInvalidInput) {
			t.Errorf("unknown sort: %v", err)
		}
	})
}
