package rest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		if got := RetryAfter(h, now); got != tt.want {
			t.Errorf("Retry-After %q = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"n":1}`))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/bad":
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`not json`))
		default:
			w.WriteHeader(http.StatusConflict)
		}
	}))
	defer srv.Close()
	c := &Client{App: "x", Base: srv.URL, HC: srv.Client(), Auth: Bearer("tok")}
	tests := []struct {
		path string
		kind error
	}{
		{"/ok", nil}, {"/empty", nil}, {"/bad", apps.ErrRejected}, {"/conflict", apps.ErrRejected},
		// A next-page link to another origin would carry the token there.
		{"http://203.0.113.9/steal", apps.ErrRejected},
		{srv.URL + "/ok", nil},
	}
	for _, tt := range tests {
		var out struct{ N int }
		_, err := c.Do(context.Background(), "test", http.MethodGet, tt.path, nil, &out)
		if (tt.kind == nil) != (err == nil) || (tt.kind != nil && !errors.Is(err, tt.kind)) {
			t.Errorf("%s: err = %v, want %v", tt.path, err, tt.kind)
		}
	}
	srv.Close()
	_, err := c.Do(context.Background(), "test", http.MethodGet, "/ok", nil, nil)
	if !apps.IsTransient(err) {
		t.Fatalf("unreachable server: %v is not transient", err)
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct {
		name  string
		links []string
		want  string
	}{
		{name: "GitHub: one header, comma-separated", links: []string{`<https://x/m?page=2>; rel="next", <https://x/m?page=5>; rel="last"`}, want: "https://x/m?page=2"},
		{name: "Okta: one header per link", links: []string{`<https://o/u?limit=2>; rel="self"`, `<https://o/u?after=00u1&limit=2>; rel="next"`}, want: "https://o/u?after=00u1&limit=2"},
		{name: "last page", links: []string{`<https://o/u?limit=2>; rel="self"`}},
		{name: "no header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextLink(http.Header{"Link": tt.links}); got != tt.want {
				t.Fatalf("NextLink = %q, want %q", got, tt.want)
			}
		})
	}
}
