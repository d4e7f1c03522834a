package justworks

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris"
)

func TestParseMember(t *testing.T) {
	cases := []struct {
		name  string
		raw   string
		check func(t *testing.T, m *hris.Member)
		err   bool
	}{
		{name: "API.md fixture", raw: `{"id":"mem_1","company_id":"co_1","active":true,"type":"employee",
 "name":{"given_name":"Ada","family_name":"Lovelace"},
 "emails":[{"type":"WORK","address":"ada@acme.com"},{"type":"PERSONAL","address":"ada@example.org"}],
 "phones":[{"type":"HOME","number":"+12125550199"},{"type":"MOBILE","number":"+12125550100"}],
 "addresses":[{"line1":"1 Main St","city":"New York","state":"NY","postal_code":"10001","country":"us"}],
 "job_title":"Engineer","department":{"id":"dep_1","name":"Engineering"},
 "manager":{"id":"mem_0"},"employment_start_date":"2026-09-01",
 "current_employment":{"US":{"employment_type":"full_time"}},
 "created_at":"2026-08-01T12:00:00Z","updated_at":"2026-08-02T09:30:00Z"}`,
			check: func(t *testing.T, m *hris.Member) {
				want := hris.Member{ExternalID: "mem_1", CompanyID: "co_1", FirstName: "Ada", LastName: "Lovelace",
					WorkEmail: "ada@acme.com", PersonalEmail: "ada@example.org", Phone: "+12125550100",
					Address: hris.Address{Line1: "1 Main St", City: "New York", State: "NY", PostalCode: "10001", Country: "US"},
					Title:   "Engineer", Active: true, DepartmentID: "dep_1", DepartmentName: "Engineering", ManagerID: "mem_0",
					StartDate: "2026-09-01", MemberType: hris.TypeFullTime, ProviderType: "employee",
					CreatedAt: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 8, 2, 9, 30, 0, 0, time.UTC)}
				if *m != want {
					t.Fatalf("got  %+v\nwant %+v", *m, want)
				}
			}},
		{name: "part time and lower-case email types", raw: `{"id":"m","active":true,"type":"employee","emails":[{"type":"work","address":"w@x"}],"current_employment":{"US":{"employment_type":"part_time"}}}`,
			check: func(t *testing.T, m *hris.Member) {
				if m.MemberType != hris.TypePartTime || m.WorkEmail != "w@x" || m.International {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "contractor", raw: `{"id":"m","active":true,"type":"contractor"}`,
			check: func(t *testing.T, m *hris.Member) {
				if m.MemberType != hris.TypeContractor || m.International {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "EOR is international", raw: `{"id":"m","active":true,"type":"employee_eor","addresses":[{"city":"Berlin","country":"DE"}],"current_employment":{"DE":{}}}`,
			check: func(t *testing.T, m *hris.Member) {
				if !m.International || m.MemberType != hris.TypeFullTime || m.Address.State != "" {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "international_contractor", raw: `{"id":"m","active":true,"type":"international_contractor"}`,
			check: func(t *testing.T, m *hris.Member) {
				if !m.International || m.MemberType != hris.TypeContractor {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "null termination date is none", raw: `{"id":"m","active":true,"employment_termination_date":null}`,
			check: func(t *testing.T, m *hris.Member) {
				if m.TerminationDate != "" || m.MemberType != hris.TypeFullTime {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "future termination", raw: `{"id":"m","active":true,"employment_termination_date":"2027-01-31"}`,
			check: func(t *testing.T, m *hris.Member) {
				if m.TerminationDate != "2027-01-31" || !m.Active {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "no work email yet", raw: `{"id":"m","active":true,"emails":[{"type":"PERSONAL","address":"p@x"}]}`,
			check: func(t *testing.T, m *hris.Member) {
				if m.WorkEmail != "" || m.PersonalEmail != "p@x" {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "missing id", raw: `{"active":true}`, err: true},
		{name: "missing active", raw: `{"id":"m"}`, err: true},
		{name: "active wrong type", raw: `{"id":"m","active":"true"}`, err: true},
		{name: "bad date", raw: `{"id":"m","active":true,"employment_start_date":"soon"}`, err: true},
		{name: "bad updated_at", raw: `{"id":"m","active":true,"updated_at":"yesterday"}`, err: true},
		{name: "not an object", raw: `"m"`, err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMember([]byte(tc.raw))
			if tc.err {
				if err == nil {
					t.Fatalf("want error, got %+v", m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, m)
		})
	}
}

func TestHMACVerifier(t *testing.T) {
	secret := []byte("whsec_test")
	body := []byte(`{"id":"evt_1","event_type":"member.profile.updated","data":{"id":"mem_1"}}`)
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	hdr := func(sig, ts string) http.Header {
		h := http.Header{}
		if sig != "" {
			h.Set(SignatureHeader, sig)
		}
		if ts != "" {
			h.Set(SignatureTimestampHeader, ts)
		}
		return h
	}
	good := Sign(secret, ts, body)
	cases := []struct {
		name string
		v    HMACVerifier
		h    http.Header
		body []byte
		want error
	}{
		{"valid", HMACVerifier{Secrets: [][]byte{secret}}, hdr(good, ts), body, nil},
		{"v1= prefix", HMACVerifier{Secrets: [][]byte{secret}}, hdr("v1="+good, ts), body, nil},
		{"sha256= prefix, upper hex", HMACVerifier{Secrets: [][]byte{secret}}, hdr("sha256="+good, ts), body, nil},
		{"second of two secrets (rotation)", HMACVerifier{Secrets: [][]byte{[]byte("old"), secret}}, hdr(good, ts), body, nil},
		{"one of several signatures", HMACVerifier{Secrets: [][]byte{secret}}, hdr("deadbeef,"+good, ts), body, nil},
		{"ISO timestamp", HMACVerifier{Secrets: [][]byte{secret}}, hdr(Sign(secret, now.Format(time.RFC3339), body), now.Format(time.RFC3339)), body, nil},
		{"wrong secret", HMACVerifier{Secrets: [][]byte{[]byte("other")}}, hdr(good, ts), body, hris.ErrBadSignature},
		{"tampered body", HMACVerifier{Secrets: [][]byte{secret}}, hdr(good, ts), append([]byte{' '}, body...), hris.ErrBadSignature},
		{"timestamp swapped", HMACVerifier{Secrets: [][]byte{secret}}, hdr(good, strconv.FormatInt(now.Unix()-1, 10)), body, hris.ErrBadSignature},
		{"missing signature", HMACVerifier{Secrets: [][]byte{secret}}, hdr("", ts), body, hris.ErrBadSignature},
		{"missing timestamp", HMACVerifier{Secrets: [][]byte{secret}}, hdr(good, ""), body, hris.ErrBadSignature},
		{"no secret configured", HMACVerifier{}, hdr(good, ts), body, hris.ErrBadSignature},
		{"stale", HMACVerifier{Secrets: [][]byte{secret}}, hdr(Sign(secret, "1799999000", body), "1799999000"), body, hris.ErrStaleTimestamp},
		{"future", HMACVerifier{Secrets: [][]byte{secret}}, hdr(Sign(secret, "1800001000", body), "1800001000"), body, hris.ErrStaleTimestamp},
		{"inside custom window", HMACVerifier{Secrets: [][]byte{secret}, Tolerance: time.Hour}, hdr(Sign(secret, "1799999000", body), "1799999000"), body, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Verify(tc.h, tc.body, now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseWebhook(t *testing.T) {
	cases := []struct {
		body string
		want hris.WebhookEvent
		err  bool
	}{
		{`{"id":"e1","event_type":"member.profile.created","event_created_at":"2026-11-25T10:00:00Z","data":{"id":"mem_1","active":true}}`,
			hris.WebhookEvent{ID: "e1", Type: hris.EventMemberCreated, ProviderType: "member.profile.created", MemberID: "mem_1", CreatedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}, false},
		{`{"id":"e2","event_type":"member.employment_state.termination_scheduled","data":{"member_id":"mem_2"}}`,
			hris.WebhookEvent{ID: "e2", Type: hris.EventTerminationScheduled, ProviderType: "member.employment_state.termination_scheduled", MemberID: "mem_2"}, false},
		{`{"id":"e3","event_type":"member.employment_state.termination_canceled","data":{"member":{"id":"mem_3"}}}`,
			hris.WebhookEvent{ID: "e3", Type: hris.EventTerminationCanceled, ProviderType: "member.employment_state.termination_canceled", MemberID: "mem_3"}, false},
		{`{"id":"e4","event_type":"department.deleted","data":{"id":"dep_1","name":"X"}}`,
			hris.WebhookEvent{ID: "e4", Type: hris.EventDepartmentChanged, ProviderType: "department.deleted", DepartmentID: "dep_1"}, false},
		{`{"id":"e5","event_type":"payroll.done","data":{}}`,
			hris.WebhookEvent{ID: "e5", Type: hris.EventUnknown, ProviderType: "payroll.done"}, false},
		{`{"id":"e6","event_type":"member.profile.updated","data":{}}`, hris.WebhookEvent{}, true},
		{`{"event_type":"member.profile.updated","data":{"id":"m"}}`, hris.WebhookEvent{}, true},
		{`not json`, hris.WebhookEvent{}, true},
	}
	for _, tc := range cases {
		got, err := ParseWebhook([]byte(tc.body))
		if tc.err != (err != nil) || got != tc.want {
			t.Errorf("%s: got %+v err %v", tc.body, got, err)
		}
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"7": 7 * time.Second, "0": 0, "Wed, 25 Nov 2026 12:00:30 GMT": 30 * time.Second, "Wed, 25 Nov 2026 11:00:00 GMT": 0,
	} {
		if got, ok := retryAfter(in, now); !ok || got != want {
			t.Errorf("%q: %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "soon", "-3"} {
		if _, ok := retryAfter(in, now); ok {
			t.Errorf("%q parsed", in)
		}
	}
}
