package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// openAPIParams returns the query parameters OpenAPI documents for GET path, by name.
func openAPIParams(t *testing.T, s *api.Server, path string) map[string]map[string]any {
	t.Helper()
	paths := s.OpenAPI()["paths"].(map[string]map[string]any)
	op := paths[path]["get"].(map[string]any)
	out := map[string]map[string]any{}
	for _, p := range op["parameters"].([]any) {
		m := p.(map[string]any)
		out[m["name"].(string)] = m["schema"].(map[string]any)
	}
	return out
}

func strs[T ~string](vs []T) []string {
	var out []string
	for _, v := range vs {
		out = append(out, string(v))
	}
	return out
}

// The typed parameters' enums are struct tags; they must list what the domain and store accept.
func TestListQueryEnums(t *testing.T) {
	h := apitest.New(t, storetest.NewSQLite(t), api.Options{})
	dev := openAPIParams(t, h.API, "/api/v1/devices")
	emp := openAPIParams(t, h.API, "/api/v1/employees")
	tests := []struct {
		name string
		got  any
		want []string
	}{
		{"device state", dev["state"]["enum"], strs(domain.AllDeviceStates)},
		{"device platform", dev["platform"]["enum"], strs([]domain.Platform{domain.PlatformMacOS, domain.PlatformWindows, domain.PlatformLinux, domain.PlatformIOS, domain.PlatformOther})},
		{"device sort", dev["sort"]["enum"], store.DeviceSorts},
		{"employee sort", emp["sort"]["enum"], store.EmployeeSorts},
		{"employee status", emp["status"]["enum"], strs([]domain.EmploymentStatus{domain.StatusPending, domain.StatusActive, domain.StatusTerminated})},
		{"employee member type", emp["member_type"]["enum"], strs([]domain.MemberType{domain.MemberFullTime, domain.MemberPartTime, domain.MemberContractor})},
	}
	for _, tc := range tests {
		if got, _ := tc.got.([]string); !slices.Equal(got, tc.want) {
			t.Errorf("%s: OpenAPI enum %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	for name, typ := range map[string]string{"assigned": "boolean", "disk_encrypted": "boolean", "offline_days": "integer", "limit": "integer", "q": "string"} {
		if dev[name]["type"] != typ {
			t.Errorf("%s: OpenAPI type %v, want %s", name, dev[name]["type"], typ)
		}
	}
	if dev["offline_days"]["minimum"] != 1 || dev["limit"]["maximum"] != store.MaxLimit {
		t.Errorf("bounds: offline_days %v, limit %v", dev["offline_days"], dev["limit"])
	}
}

func TestListDevicesOverHTTP(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := apitest.New(t, db, api.Options{})
		o := storetest.Org(t, db, domain.PlanPro)
		tok := h.Token(o.ID, domain.RoleViewer)
		alice := storetest.Employee(t, db, o.ID, "alice")
		var want []string
		for i := range 7 {
			d := storetest.Device(t, db, o.ID, fmt.Sprintf("HTTP%02d", 6-i))
			want = append([]string{d.SerialNumber}, want...)
			if i == 3 {
				if _, err := db.AssignDevice(t.Context(), o.ID, d.ID, alice.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		var got []string
		next := ""
		for i := 0; i < 5; i++ {
			v := url.Values{"sort": {"serial"}, "limit": {"3"}, "total": {"true"}, "q": {"http"}}
			if next != "" {
				v.Set("cursor", next)
			}
			resp := h.Do("GET", "/api/v1/devices?"+v.Encode(), tok, nil)
			if resp.Status != 200 {
				t.Fatalf("%d %s", resp.Status, resp.Body)
			}
			var page api.CountedList[store.DeviceListItem]
			resp.JSON(t, &page)
			if page.Total == nil || *page.Total != 7 {
				t.Fatalf("total %v", page.Total)
			}
			for _, it := range page.Items {
				got = append(got, it.SerialNumber)
			}
			if next = page.NextCursor; next == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages %v, want %v", got, want)
		}
		var held api.CountedList[store.DeviceListItem]
		h.Do("GET", "/api/v1/devices?assigned=true&q=ALICE", tok, nil).JSON(t, &held)
		if len(held.Items) != 1 || held.Items[0].Assignee == nil || held.Items[0].Assignee.ID != alice.ID || held.Total != nil {
			t.Fatalf("assigned to alice: %+v", held)
		}
		var people api.CountedList[domain.Employee]
		h.Do("GET", "/api/v1/employees?q=alice&sort=name&order=desc&total=true", tok, nil).JSON(t, &people)
		if len(people.Items) != 1 || people.Items[0].ID != alice.ID || people.Total == nil || *people.Total != 1 {
			t.Fatalf("people search: %+v", people)
		}
	})
}

func TestListQueryBadInput(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	tok := h.Token(o.ID, domain.RoleViewer)
	for i := range 3 {
		storetest.Device(t, db, o.ID, fmt.Sprintf("BAD%d", i))
	}
	var page api.CountedList[store.DeviceListItem]
	h.Do("GET", "/api/v1/devices?sort=serial&limit=1", tok, nil).JSON(t, &page)
	tests := []struct{ name, query, param string }{
		{"boolean", "assigned=maybe", "assigned"},
		{"boolean spelled 1", "disk_encrypted=1", "disk_encrypted"},
		{"integer", "offline_days=soon", "offline_days"},
		{"below minimum", "offline_days=0", "offline_days"},
		{"above maximum", "limit=500", "limit"},
		{"enum", "state=misplaced", "state"},
		{"platform enum", "platform=beos", "platform"},
		{"sort enum", "sort=colour", "sort"},
		{"order enum", "order=up", "order"},
		{"repeated", "state=in_stock&state=lost", "state"},
		{"employee status", "status=retired", "status"},
		{"cursor of another sort", "sort=model&cursor=" + url.QueryEscape(page.NextCursor), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/v1/devices?" + tc.query
			if tc.name == "employee status" {
				path = "/api/v1/employees?" + tc.query
			}
			resp := h.Do("GET", path, tok, nil)
			if resp.Status != 400 {
				t.Fatalf("status %d: %s", resp.Status, resp.Body)
			}
			m := resp.Map(t)
			if m["type"] != api.ProblemBase+"bad-request" || (tc.param != "" && m["parameter"] != tc.param) {
				t.Fatalf("problem %v", m)
			}
		})
	}
}
