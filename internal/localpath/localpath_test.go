package localpath

import "testing"

func TestSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/devices", "/devices"},
		{"/people/1?x=2", "/people/1?x=2"},
		{"/devices/d1/secrets?reveal=1#pin", "/devices/d1/secrets?reveal=1#pin"},
		{"", "/"},
		{"//evil.example/", "/"},
		{"https://evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/signin?next=/x", "/"},
		{"/signout", "/"},
		{"/a\r\nSet-Cookie: x=1", "/"},
		{"relative/path", "/"},
	} {
		if got := Safe(c.in); got != c.want {
			t.Errorf("Safe(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
