package justworks

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris"
)

// The fuzz targets of this package. Seeds: the f.Add calls below and the files
// under testdata/fuzz/<Target>/ (plain `go test` runs both). See docs/dev/fuzzing.md.

// FuzzWebhookVerify checks the HMAC verifier against its own signer: a signature
// Sign made is accepted at its timestamp, and any one-character change to it, a
// different body or a different secret is refused.
func FuzzWebhookVerify(f *testing.F) {
	f.Add([]byte("whsec_1"), "1767225600", []byte(`{"id":"evt_1","event_type":"member.profile.updated","data":{"member_id":"mem_1"}}`), uint(0))
	f.Add([]byte("k"), "2026-09-01T12:00:00Z", []byte(""), uint(63))
	f.Add([]byte(""), "1767225600123", []byte("x"), uint(7))
	f.Add([]byte("s"), " 17 ", []byte("{}"), uint(1))
	f.Fuzz(func(t *testing.T, secret []byte, ts string, body []byte, pos uint) {
		ts = strings.TrimSpace(ts)
		when, tsErr := parseWebhookTime(ts)
		sig := Sign(secret, ts, body)
		v := HMACVerifier{Secrets: [][]byte{[]byte("other-secret"), secret}}
		hdr := func(sig string) http.Header {
			h := http.Header{}
			h.Set(SignatureHeader, sig)
			h.Set(SignatureTimestampHeader, ts)
			return h
		}
		err := v.Verify(hdr(sig), body, when)
		switch {
		case ts == "" || tsErr != nil:
			if err == nil {
				t.Fatalf("timestamp %q does not parse (%v), yet Verify accepted it", ts, tsErr)
			}
			return
		case err != nil:
			t.Fatalf("Verify(Sign(x)) = %v, want nil (ts %q)", err, ts)
		}
		if err := v.Verify(hdr("v1="+sig), body, when); err != nil {
			t.Fatalf("a v1= prefixed signature was refused: %v", err)
		}
		// One hex digit changed to another hex digit: still well-formed, must fail.
		b := []byte(sig)
		i := int(pos % uint(len(b)))
		b[i] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", b[i])+1)%16]
		if err := v.Verify(hdr(string(b)), body, when); !errors.Is(err, hris.ErrBadSignature) {
			t.Fatalf("mutated signature %s (of %s) gave %v, want ErrBadSignature", b, sig, err)
		}
		if err := v.Verify(hdr(sig), append(append([]byte{}, body...), 'x'), when); !errors.Is(err, hris.ErrBadSignature) {
			t.Fatalf("signature accepted for another body: %v", err)
		}
		if string(secret) != "wrong" {
			w := HMACVerifier{Secrets: [][]byte{[]byte("wrong")}}
			if err := w.Verify(hdr(sig), body, when); !errors.Is(err, hris.ErrBadSignature) {
				t.Fatalf("signature accepted under another secret: %v", err)
			}
		}
		if err := v.Verify(hdr(sig), body, when.Add(DefaultTolerance+time.Second)); !errors.Is(err, hris.ErrStaleTimestamp) {
			t.Fatalf("stale timestamp gave %v, want ErrStaleTimestamp", err)
		}
	})
}

// FuzzWebhookSignatureHeader feeds arbitrary signature headers: Verify may only
// accept one that carries the right signature.
func FuzzWebhookSignatureHeader(f *testing.F) {
	body := []byte(`{"id":"evt_1"}`)
	const ts = "1767225600"
	good := Sign([]byte("s"), ts, body)
	f.Add(good)
	f.Add("v1=" + strings.ToUpper(good))
	f.Add("sha256=00, v1=" + good)
	f.Add(",,, ")
	f.Add("v1=v1=" + good)
	f.Fuzz(func(t *testing.T, sigHdr string) {
		h := http.Header{}
		h.Set(SignatureHeader, sigHdr)
		h.Set(SignatureTimestampHeader, ts)
		when, _ := parseWebhookTime(ts)
		err := HMACVerifier{Secrets: [][]byte{[]byte("s")}}.Verify(h, body, when)
		if err == nil && !strings.Contains(strings.ToLower(sigHdr), good) {
			t.Fatalf("header %q accepted without the signature %s", sigHdr, good)
		}
		if err != nil && !errors.Is(err, hris.ErrBadSignature) {
			t.Fatalf("Verify error %v is not ErrBadSignature", err)
		}
	})
}

// FuzzParseWebhook: an accepted envelope always has an id, a provider type and
// a mapped type; member events always name a member and department events
// never do; parsing is deterministic.
func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{
		`{"id":"evt_1","event_type":"member.profile.created","event_created_at":"2026-09-01T12:00:00Z","data":{"member_id":"mem_1"}}`,
		`{"id":"evt_2","event_type":"member.employment_state.termination_scheduled","data":{"member":{"id":"mem_2"}}}`,
		`{"id":"evt_3","event_type":"member.profile.updated","data":{"id":12345}}`,
		`{"id":"evt_4","event_type":"department.updated","data":{"department":{"id":"dep_1"}}}`,
		`{"id":"evt_5","event_type":"payroll.run","data":null}`,
		`{"id":"","event_type":"x"}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseWebhook(body)
		if err != nil {
			if ev != (hris.WebhookEvent{}) {
				t.Fatalf("error %v came with a non-zero event %+v", err, ev)
			}
			return
		}
		if ev.ID == "" || ev.ProviderType == "" {
			t.Fatalf("accepted an event without id or type: %+v", ev)
		}
		switch ev.Type {
		case hris.EventMemberCreated, hris.EventMemberUpdated, hris.EventTerminationScheduled, hris.EventTerminationCanceled:
			if ev.MemberID == "" {
				t.Fatalf("member event without a member id: %+v", ev)
			}
		case hris.EventDepartmentChanged, hris.EventUnknown:
			if ev.MemberID != "" {
				t.Fatalf("%s event carries member id %q", ev.Type, ev.MemberID)
			}
		default:
			t.Fatalf("unmapped event type %q", ev.Type)
		}
		if !ev.CreatedAt.IsZero() && ev.CreatedAt.Location() != time.UTC {
			t.Fatalf("created_at not in UTC: %v", ev.CreatedAt)
		}
		if again, err := ParseWebhook(body); err != nil || again != ev {
			t.Fatalf("second parse differs: %+v, %v", again, err)
		}
	})
}

// FuzzParseMember: an accepted member has an id, a known member type, trimmed
// names, an upper-case country and valid dates; its stable fields, written
// back in the wire shape, parse to the same values.
func FuzzParseMember(f *testing.F) {
	for _, s := range []string{
		`{"id":"mem_1","company_id":"co_1","active":true,"type":"employee","name":{"given_name":" Ada ","family_name":"Lovelace"},"emails":[{"type":"WORK","address":"ada@acme.com"}],"addresses":[{"country":"us"}],"employment_start_date":"2026-09-01","current_employment":{"US":{"employment_type":"part_time"}},"created_at":"2026-08-01T12:00:00.5+02:00"}`,
		`{"id":"m","active":false,"type":"International Contractor","employment_termination_date":"2026-10-01T00:00:00Z"}`,
		`{"id":"m","active":true,"type":"vendor","phones":[{"number":5551234}],"department":{"id":7}}`,
		`{"id":" ","active":true}`,
		`{"id":"m"}`,
		`{"id":"m","active":true,"employment_start_date":"01/02/2026"}`,
	} {
		f.Add([]byte(s))
	}
	types := map[string]bool{hris.TypeFullTime: true, hris.TypePartTime: true, hris.TypeContractor: true, hris.TypeIntern: true, hris.TypeOther: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMember(raw)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v came with member %+v", err, m)
			}
			return
		}
		if m == nil || strings.TrimSpace(m.ExternalID) == "" {
			t.Fatalf("accepted a member without an id: %+v", m)
		}
		if !types[m.MemberType] {
			t.Fatalf("member type %q is not one of the hris types", m.MemberType)
		}
		for name, v := range map[string]string{"first": m.FirstName, "last": m.LastName, "preferred": m.PreferredName, "title": m.Title} {
			if v != strings.TrimSpace(v) {
				t.Fatalf("%s name %q is not trimmed", name, v)
			}
		}
		if m.Address.Country != strings.ToUpper(m.Address.Country) {
			t.Fatalf("country %q is not upper case", m.Address.Country)
		}
		for _, d := range []string{m.StartDate, m.TerminationDate} {
			if _, err := time.Parse(time.DateOnly, d); d != "" && err != nil {
				t.Fatalf("date %q is not YYYY-MM-DD", d)
			}
		}
		// Round trip of the stable fields.
		wire := map[string]any{
			"id": m.ExternalID, "company_id": m.CompanyID, "work_id": m.WorkID, "active": m.Active,
			"type": m.ProviderType, "job_title": m.Title,
			"name":                        map[string]string{"given_name": m.FirstName, "family_name": m.LastName, "preferred_name": m.PreferredName},
			"employment_start_date":       m.StartDate,
			"employment_termination_date": m.TerminationDate,
		}
		if !m.CreatedAt.IsZero() {
			wire["created_at"] = m.CreatedAt.Format(time.RFC3339Nano)
		}
		if !m.UpdatedAt.IsZero() {
			wire["updated_at"] = m.UpdatedAt.Format(time.RFC3339Nano)
		}
		enc, err := json.Marshal(wire)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMember(enc)
		if err != nil {
			t.Fatalf("re-encoded member %s does not parse: %v", enc, err)
		}
		stable := func(m *hris.Member) [13]string {
			return [13]string{m.ExternalID, m.CompanyID, m.WorkID, m.FirstName, m.LastName, m.PreferredName, m.Title,
				m.ProviderType, m.StartDate, m.TerminationDate, m.CreatedAt.String(), m.UpdatedAt.String(), strconv.FormatBool(m.Active)}
		}
		if stable(m) != stable(m2) {
			t.Fatalf("round trip changed stable fields:\n got %q\nwant %q\nwire %s", stable(m2), stable(m), enc)
		}
	})
}
