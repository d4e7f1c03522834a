package justworks

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/hris"
)

// FuzzWebhookVerify: a body signed with the current secret and a fresh timestamp is
// accepted; the same signature over any other body, or from another secret, is refused
// as a bad signature; a signature header of any shape never passes unsigned.
func FuzzWebhookVerify(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","event_type":"member.profile.updated","data":{"member_id":"m1"}}`), []byte("whsec"), []byte("x"), "v1=abc, sha256=00")
	f.Add([]byte{}, []byte{0}, []byte{1}, "")
	f.Fuzz(func(t *testing.T, body, secret, other []byte, junkSig string) {
		if len(secret) == 0 {
			return
		}
		now := time.Unix(1_780_000_000, 0)
		ts := strconv.FormatInt(now.Unix(), 10)
		v := HMACVerifier{Secrets: [][]byte{secret}}
		hdr := func(sig string) http.Header {
			h := http.Header{}
			h.Set(SignatureHeader, sig)
			h.Set(SignatureTimestampHeader, ts)
			return h
		}
		sig := Sign(secret, ts, body)
		if err := v.Verify(hdr(sig), body, now); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := v.Verify(hdr("v1="+sig), body, now.Add(DefaultTolerance+time.Second)); !errors.Is(err, hris.ErrStaleTimestamp) {
			t.Fatalf("stale timestamp: %v", err)
		}
		if string(other) != string(body) {
			if err := v.Verify(hdr(sig), other, now); !errors.Is(err, hris.ErrBadSignature) {
				t.Fatalf("signature moved to another body: %v", err)
			}
		}
		// HMAC pads a short key with zero bytes, so "k" and "k\x00" are one key by design;
		// real secrets are printable, so keys with NUL bytes are left out of this check.
		if string(other) != string(secret) && len(other) > 0 && !bytes.ContainsRune(other, 0) && !bytes.ContainsRune(secret, 0) {
			if err := (HMACVerifier{Secrets: [][]byte{other}}).Verify(hdr(sig), body, now); !errors.Is(err, hris.ErrBadSignature) {
				t.Fatalf("another secret accepted: %v", err)
			}
		}
		if junkSig != sig && junkSig != "v1="+sig && junkSig != "sha256="+sig {
			if err := v.Verify(hdr(junkSig), body, now); err == nil {
				// Only a header that carries the real MAC among its parts may pass.
				if !containsMAC(junkSig, sig) {
					t.Fatalf("header %q passed without the MAC", junkSig)
				}
			}
		}
	})
}

// containsMAC: the verifier accepts a comma/space separated list; one part must be the MAC.
func containsMAC(hdr, sig string) bool { return strings.Contains(strings.ToLower(hdr), sig) }

// FuzzParseWebhook: an accepted event has its idempotency key and a known type, and a
// member event always names the member it is about.
func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{
		`{"id":"evt_1","event_type":"member.profile.updated","event_created_at":"2026-01-02T03:04:05Z","data":{"member_id":"m1"}}`,
		`{"id":"evt_2","event_type":"member.employment_state.termination_scheduled","data":{"member":{"id":"m2"}}}`,
		`{"id":"evt_3","event_type":"department.updated","data":{"department":{"id":"d1"}}}`,
		`{"id":"evt_4","event_type":"something.new","data":null}`, `{"id":"","event_type":"x"}`, `[]`, `{"data":{"member_id":7}}`,
	} {
		f.Add([]byte(s))
	}
	known := map[string]bool{hris.EventMemberCreated: true, hris.EventMemberUpdated: true, hris.EventTerminationScheduled: true,
		hris.EventTerminationCanceled: true, hris.EventDepartmentChanged: true, hris.EventUnknown: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseWebhook(body)
		if err != nil {
			return
		}
		if ev.ID == "" || ev.ProviderType == "" || !known[ev.Type] {
			t.Fatalf("accepted %+v", ev)
		}
		switch ev.Type {
		case hris.EventMemberCreated, hris.EventMemberUpdated, hris.EventTerminationScheduled, hris.EventTerminationCanceled:
			if ev.MemberID == "" {
				t.Fatalf("member event without a member: %+v", ev)
			}
		}
		again, err := ParseWebhook(body)
		if err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("not deterministic: %+v / %+v %v", ev, again, err)
		}
	})
}

// FuzzParseMember: an accepted member has its identity key, a member type Lanyard
// knows, civil dates in YYYY-MM-DD and an upper-case country; parsing is deterministic.
func FuzzParseMember(f *testing.F) {
	for _, s := range []string{
		`{"id":"m1","active":true,"type":"international_employee","name":{"given_name":"Ana","family_name":"Ruiz"},"emails":[{"type":"work","address":"ana@acme.example"}],"addresses":[{"country":"mx"}],"employment_start_date":"2026-01-05"}`,
		`{"id":"m2","active":false,"type":"Paid Intern","employment_termination_date":"2026-13-40"}`,
		`{"id":"m3","active":true,"current_employment":{"US":{"employment_type":"part_time"}},"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"id":" ","active":true}`, `{"id":"m4"}`, `{"id":"m5","active":"yes"}`,
	} {
		f.Add([]byte(s))
	}
	types := map[string]bool{hris.TypeFullTime: true, hris.TypePartTime: true, hris.TypeContractor: true, hris.TypeIntern: true, hris.TypeOther: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMember(raw)
		if err != nil {
			if m != nil {
				t.Fatal("a member beside an error")
			}
			return
		}
		if m.ExternalID == "" || !types[m.MemberType] {
			t.Fatalf("accepted %+v", m)
		}
		for _, d := range []string{m.StartDate, m.TerminationDate} {
			if d == "" {
				continue
			}
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				t.Fatalf("date %q accepted: %v", d, err)
			}
		}
		if c := m.Address.Country; c != strings.ToUpper(c) {
			t.Fatalf("country %q", c)
		}
		again, err := ParseMember(raw)
		if err != nil || !reflect.DeepEqual(m, again) {
			t.Fatalf("not deterministic")
		}
	})
}
