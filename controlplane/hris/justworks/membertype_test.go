package justworks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks"
	"github.com/lanyardhq/lanyard/controlplane/hris/justworks/fakejustworks"
)

// Every member type value the Justworks reference names (API.md §5: the DOC
// values, the guessed ones and the help centre's member types; EDGE_CASES 8),
// each mapped exactly: "international_employee" is an international full-time
// employee, not an "intern".
func TestMemberTypeTable(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		emp  string // current_employment JSON, optional
		want string
		intl bool
	}{
		{typ: "employee", want: hris.TypeFullTime},
		{typ: "", want: hris.TypeFullTime},
		{typ: "employee", emp: `{"US":{"employment_type":"full_time"}}`, want: hris.TypeFullTime},
		{typ: "employee", emp: `{"US":{"employment_type":"part_time"}}`, want: hris.TypePartTime},
		{typ: "employee", emp: `{"US":{"employment_type":"paid_intern"}}`, want: hris.TypeIntern},
		{typ: "employee", emp: `{"US":{"employment_type":"intern"}}`, want: hris.TypeIntern},
		{typ: "employee", emp: `{"US":{"employment_type":"contractor"}}`, want: hris.TypeContractor},
		{typ: "full_time", want: hris.TypeFullTime},
		{typ: "Full Time", want: hris.TypeFullTime},
		{typ: "part_time", want: hris.TypePartTime},
		{typ: "Part-Time", want: hris.TypePartTime},
		{typ: "international_employee", want: hris.TypeFullTime, intl: true},
		{typ: "INTERNATIONAL_EMPLOYEE", want: hris.TypeFullTime, intl: true},
		{typ: "international_employee", emp: `{"FR":{"employment_type":"full_time"}}`, want: hris.TypeFullTime, intl: true},
		{typ: "international_employee", emp: `{"FR":{"employment_type":"part_time"}}`, want: hris.TypePartTime, intl: true},
		{typ: "outside_us_employee", want: hris.TypeFullTime, intl: true},
		{typ: "employee_eor", want: hris.TypeFullTime, intl: true},
		{typ: "eor_employee", want: hris.TypeFullTime, intl: true},
		{typ: "contractor", want: hris.TypeContractor},
		{typ: "us_contractor", want: hris.TypeContractor},
		{typ: "international_contractor", want: hris.TypeContractor, intl: true},
		{typ: "vendor", want: hris.TypeContractor},
		{typ: "intern", want: hris.TypeIntern},
		{typ: "paid_intern", want: hris.TypeIntern},
		{typ: "third_party_admin", want: hris.TypeOther},
		// Unknown values: the safe default, never a substring guess.
		{typ: "internal_auditor", want: hris.TypeOther},
		{typ: "partner", want: hris.TypeOther},
		{typ: "subcontractor", want: hris.TypeOther},
		{typ: "employee", emp: `{"US":{"employment_type":"partially_remote"}}`, want: hris.TypeFullTime},
	} {
		name := tc.typ
		if tc.emp != "" {
			name += " " + tc.emp
		}
		t.Run(name, func(t *testing.T) {
			rec := map[string]any{"id": "m1", "active": true, "type": tc.typ}
			if tc.emp != "" {
				rec["current_employment"] = json.RawMessage(tc.emp)
			} else if !tc.intl {
				rec["current_employment"] = json.RawMessage(`{"US":{}}`)
			}
			raw, _ := json.Marshal(rec)
			m, err := justworks.ParseMember(raw)
			if err != nil {
				t.Fatal(err)
			}
			if m.MemberType != tc.want || m.International != tc.intl {
				t.Fatalf("type %q: got %s international=%v, want %s international=%v", tc.typ, m.MemberType, m.International, tc.want, tc.intl)
			}
		})
	}
}

// An unknown type value is logged once, with the value, however often it is
// read, and lands on the default.
func TestUnknownMemberTypeLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	e := setup(t, fakejustworks.Options{}, 0, func(c *justworks.Config) { c.Logger = log })
	ms := fakejustworks.Generate(3, 1, fakejustworks.GenOptions{AllActiveUS: true})
	for i := range ms {
		ms[i].Type = "astronaut"
	}
	e.fake.Load(ms)
	for range 2 {
		got, _, err := listAll(context.Background(), e.dir, hris.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			if m.MemberType != hris.TypeOther {
				t.Fatalf("%s: %s", m.ExternalID, m.MemberType)
			}
		}
	}
	if _, err := e.dir.GetMember(context.Background(), ms[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "unknown Justworks member type value"); n != 1 || !strings.Contains(buf.String(), `value="type=astronaut"`) {
		t.Fatalf("%d log lines:\n%s", n, buf.String())
	}
}
