package agentapi

import (
	"net/netip"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    RateLimit
		wantErr bool
	}{
		{in: "1/s,60", want: RateLimit{PerSecond: 1, Burst: 60}},
		{in: " 0.5/s, 10 ", want: RateLimit{PerSecond: 0.5, Burst: 10}},
		{in: "off"},
		{in: ""},
		{in: "60", wantErr: true},
		{in: "1/m,60", wantErr: true},
		{in: "0/s,60", wantErr: true},
		{in: "-1/s,60", wantErr: true},
		{in: "NaN/s,60", wantErr: true},
		{in: "1/s,0", wantErr: true},
		{in: "1/s,x", wantErr: true},
	} {
		got, err := ParseRateLimit(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseRateLimit(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSourceLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("192.0.2.7")
	type call struct {
		addr    string
		at      time.Duration // after t0
		allowed bool
	}
	for _, tc := range []struct {
		name  string
		calls []call
	}{
		{"burst then refused, then one per second", []call{
			{"192.0.2.7", 0, true}, {"192.0.2.7", 0, true}, {"192.0.2.7", 0, true}, {"192.0.2.7", 0, false},
			{"192.0.2.7", 500 * time.Millisecond, false}, {"192.0.2.7", time.Second, true}, {"192.0.2.7", time.Second, false},
		}},
		{"sources are separate", []call{
			{"192.0.2.7", 0, true}, {"192.0.2.7", 0, true}, {"192.0.2.7", 0, true}, {"192.0.2.8", 0, true},
		}},
		{"an IPv6 /64 is one source", []call{
			{"2001:db8::1", 0, true}, {"2001:db8::2", 0, true}, {"2001:db8::ffff:1", 0, true}, {"2001:db8::3", 0, false},
			{"2001:db8:0:1::1", 0, true},
		}},
		{"IPv4-mapped IPv6 is the IPv4 source", []call{
			{"192.0.2.9", 0, true}, {"192.0.2.9", 0, true}, {"::ffff:192.0.2.9", 0, true}, {"192.0.2.9", 0, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newSourceLimiter(RateLimit{PerSecond: 1, Burst: 3})
			for i, c := range tc.calls {
				ok, wait := l.allow(netip.MustParseAddr(c.addr), t0.Add(c.at))
				if ok != c.allowed {
					t.Fatalf("call %d (%s at +%s): allowed %v, want %v", i, c.addr, c.at, ok, c.allowed)
				}
				if !ok && wait <= 0 {
					t.Fatalf("call %d refused without a wait", i)
				}
			}
		})
	}
	t.Run("quiet sources are forgotten", func(t *testing.T) {
		l := newSourceLimiter(RateLimit{PerSecond: 1, Burst: 3})
		l.allow(a, t0)
		l.allow(netip.MustParseAddr("192.0.2.99"), t0.Add(2*time.Minute))
		if _, ok := l.by[sourceOf(a)]; ok || len(l.by) != 1 {
			t.Fatalf("after a quiet minute the map holds %d sources, including the quiet one: %v", len(l.by), ok)
		}
	})
}
