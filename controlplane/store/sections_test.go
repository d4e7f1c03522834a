package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

var sectionCases = []struct {
	name, in string
	fast     bool // splitObject takes it (false: encoding/json decides)
}{
	{"empty object", `{}`, true},
	{"stored form", `{"cpu":{"model":"i7","cores":[1,2]},"hostname":"a\"b}","memory_bytes":34359738368,"posture":null,"up":true}`, true},
	{"spaces", " { \"a\" : [ 1 , {\"b\":\"]\"} ] , \"c\" : -1.5e3 } ", true},
	{"nested strings with brackets", `{"a":"{[","b":["}\\\"]"]}`, true},
	{"escaped key", `{"a\u0062":1}`, false},
	{"non-ASCII key", "{\"\x81\":true}", false},
	{"not an object", `[1,2]`, false},
	{"trailing garbage", `{"a":1}x`, false},
	{"unterminated", `{"a":{"b":1}`, false},
	{"missing colon", `{"a" 1}`, false},
	{"empty value", `{"a":}`, false},
	{"duplicate key", `{"a":1,"a":2}`, true},
}

func TestDecodeSectionsMatchesEncodingJSON(t *testing.T) {
	for _, tc := range sectionCases {
		t.Run(tc.name, func(t *testing.T) {
			_, fast := splitObject([]byte(tc.in))
			if fast != tc.fast {
				t.Fatalf("splitObject took it: %v, want %v", fast, tc.fast)
			}
			checkSameAsJSON(t, []byte(tc.in))
		})
	}
}

// checkSameAsJSON: whenever encoding/json accepts the input, decodeSections returns the
// same members (compacted); whenever encoding/json refuses it, decodeSections does too
// unless the fast path took it, and then every member it returns is itself valid JSON.
func checkSameAsJSON(t *testing.T, in []byte) {
	t.Helper()
	var want map[string]json.RawMessage
	wantErr := json.Unmarshal(in, &want)
	got, err := decodeSections(in)
	if wantErr == nil {
		if err != nil {
			t.Fatalf("decodeSections(%q): %v; encoding/json accepts it", in, err)
		}
		if !reflect.DeepEqual(compactAll(got), compactAll(want)) {
			t.Fatalf("decodeSections(%q) = %v, want %v", in, compactAll(got), compactAll(want))
		}
		return
	}
	if _, fast := splitObject(in); !fast && err == nil {
		t.Fatalf("decodeSections(%q) accepted what encoding/json refuses: %v", in, wantErr)
	}
}

func compactAll(m map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(compactJSON(v))
	}
	return out
}

func FuzzDecodeSections(f *testing.F) {
	for _, tc := range sectionCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var want map[string]json.RawMessage
		if json.Unmarshal(in, &want) != nil {
			_, _ = decodeSections(in) // must not panic
			return
		}
		checkSameAsJSON(t, in)
	})
}

func BenchmarkDecodeSections(b *testing.B) {
	in := []byte(`{"agent_version":"1.0.0","boot_time":"2026-11-25T10:00:00Z","cpu":{"model":"13th Gen Intel(R) Core(TM) i7-1365U","physical_cores":10,"logical_cores":12},` +
		`"disks":[{"device":"/dev/mapper/root","mountpoint":"/","fstype":"ext4","total_bytes":"549755813888","free_bytes":"214748364800","encrypted":"POSTURE_STATE_ON"}],` +
		`"hardware":{"serial_number":"SIM-00001","hardware_uuid":"uuid-SIM-00001","vendor":"Dell Inc.","model":"Latitude 7440"},"hostname":"sim-1","memory_bytes":"34359738368",` +
		`"network_interfaces":[{"name":"wlp0s20f3","mac_address":"02:00:00:00:00:01","ip_addresses":["192.0.2.10/24","fe80::1/64"],"up":true}],` +
		`"os":{"platform":"linux","name":"Debian GNU/Linux","version":"12.11","kernel_version":"6.1.0-37-amd64","arch":"amd64","family":"debian"},` +
		`"posture":{"disk_encryption":"POSTURE_STATE_ON","firewall":"POSTURE_STATE_ON","screen_lock":"POSTURE_STATE_UNKNOWN","auto_updates":"POSTURE_STATE_ON","os_version":"12.11"},` +
		`"uptime_seconds":"1000","users":[{"username":"user1","uid":"1000","full_name":"Sim User","home":"/home/u","admin":true,"logged_in":true}]}`)
	b.Run("split", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeSections(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(in, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPostureChecksFastMatchesJSON: the map-free reading of the posture checks gives what
// the encoding/json reading gives, for the stored form and for every odd input, and takes
// the fast path for the protojson form every report carries.
func TestPostureChecksFastMatchesJSON(t *testing.T) {
	cases := []struct {
		name, in string
		fast     bool
	}{
		{"protojson", `{"disk_encryption":"POSTURE_STATE_ON","firewall":"POSTURE_STATE_OFF","screen_lock":"POSTURE_STATE_UNKNOWN","os_version":"12.11"}`, true},
		{"protojson with spaces", `{"disk_encryption":"POSTURE_STATE_ON", "firewall":"POSTURE_STATE_ON", "auto_updates":"POSTURE_STATE_ON"}`, true},
		{"empty object", `{}`, true},
		{"empty", ``, false},
		{"null", `null`, false},
		{"not an object", `["POSTURE_STATE_ON"]`, false},
		{"invalid", `{"firewall":tru}`, false},
		{"null field", `{"firewall":null,"disk_encryption":"POSTURE_STATE_OFF"}`, true},
		{"number field", `{"firewall":1,"screen_lock":{"a":"POSTURE_STATE_ON"}}`, true},
		{"other string", `{"firewall":"maybe","screen_lock":""}`, true},
		{"escaped value", `{"firewall":"POSTURE_STATE_\u004fN"}`, false},
		{"escaped key", `{"fire\u0077all":"POSTURE_STATE_ON"}`, false},
		{"duplicate key", `{"firewall":"POSTURE_STATE_ON","firewall":"POSTURE_STATE_OFF"}`, true},
		{"case differs", `{"Firewall":"POSTURE_STATE_ON"}`, true},
		{"nested lookalike", `{"x":{"firewall":"POSTURE_STATE_OFF"},"y":"\"firewall\":"}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, f, s, fast := postureChecksFast([]byte(tc.in))
			if fast != tc.fast {
				t.Fatalf("fast path took it: %v, want %v", fast, tc.fast)
			}
			wd, wf, ws := postureChecksJSON([]byte(tc.in))
			if fast && (d != wd || f != wf || s != ws) {
				t.Fatalf("fast path read %q %q %q, encoding/json %q %q %q", d, f, s, wd, wf, ws)
			}
			if gd, gf, gs := postureChecks([]byte(tc.in)); gd != wd || gf != wf || gs != ws {
				t.Fatalf("postureChecks read %q %q %q, encoding/json %q %q %q", gd, gf, gs, wd, wf, ws)
			}
		})
	}
	stored := []byte(cases[0].in)
	if n := testing.AllocsPerRun(100, func() { postureChecks(stored) }); n != 0 {
		t.Errorf("postureChecks of the protojson form allocates %v times", n)
	}
}
