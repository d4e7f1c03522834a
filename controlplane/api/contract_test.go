package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func TestWrongMethodIs405WithAllow(t *testing.T) {
	h := apitest.New(t, storetest.NewSQLite(t), api.Options{})
	apitest.CheckMethodNotAllowed(t, h)
	// An unknown path stays 404.
	if r := h.Do("DELETE", "/api/v1/no-such-thing", "", nil); r.Status != http.StatusNotFound || r.Header.Get("Allow") != "" {
		t.Errorf("unknown path: %d Allow %q", r.Status, r.Header.Get("Allow"))
	}
	// GET routes answer HEAD too, so Allow names it.
	r := h.Do("DELETE", "/api/v1/devices", "", nil)
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, "HEAD") || !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("DELETE /api/v1/devices: Allow %q", allow)
	}
}

func TestUnauthorizedCarriesBearerChallenge(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := apitest.New(t, db, api.Options{})
		for _, tc := range []struct {
			name, token, want string
		}{
			// RFC 6750 section 3.1: no credentials, no error code.
			{"missing", "", `Bearer realm="lanyard"`},
			{"bad", "lyd_not-a-real-token", `Bearer realm="lanyard", error="invalid_token"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := h.Do("GET", "/api/v1/devices", tc.token, nil)
				if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != tc.want {
					t.Errorf("%d WWW-Authenticate %q, want 401 %q", r.Status, r.Header.Get("WWW-Authenticate"), tc.want)
				}
				if r.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
				}
			})
		}
	})
}

// fakeClock is the limiter's clock, moved by the test instead of waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestFailedAuthRateLimitPerSource(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		const burst = 5
		clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		var logs bytes.Buffer
		reg := prometheus.NewRegistry()
		h := apitest.New(t, db, api.Options{AuthFailureBurst: burst, AuthFailureEvery: time.Minute, Now: clock.Now,
			Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		org := storetest.Org(t, db, domain.PlanPro)
		good := h.Token(org.ID, domain.RoleViewer)
		const bad = "lyd_flood-secret-that-must-not-be-logged"
		a, b := h.FromSource("127.0.0.1"), h.FromSource("127.0.0.2")

		for i := range burst {
			if r := a.Do("GET", "/api/v1/devices", bad, nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("bad token #%d: %d, want 401 within the budget", i+1, r.Status)
			}
		}
		for range 3 {
			r := a.Do("GET", "/api/v1/devices", bad, nil)
			if r.Status != http.StatusTooManyRequests || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("over the budget: %d %s", r.Status, r.Body)
			}
			if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
				t.Errorf("Retry-After %q, want 1..60 seconds", r.Header.Get("Retry-After"))
			}
		}
		// A missing token counts as a failure too: a limited source cannot probe around it.
		if r := a.Do("GET", "/api/v1/devices", "", nil); r.Status != http.StatusTooManyRequests {
			t.Errorf("no token from a limited source: %d, want 429", r.Status)
		}
		// A good token from the same address (an office behind one NAT) still works.
		if r := a.Do("GET", "/api/v1/devices", good, nil); r.Status != http.StatusOK {
			t.Errorf("good token from the limited source: %d %s", r.Status, r.Body)
		}
		// Another source has its own budget.
		if r := b.Do("GET", "/api/v1/devices", bad, nil); r.Status != http.StatusUnauthorized {
			t.Errorf("bad token from another source: %d, want 401", r.Status)
		}
		// The budget refills with time: one failure per AuthFailureEvery.
		clock.Add(time.Minute)
		if r := a.Do("GET", "/api/v1/devices", bad, nil); r.Status != http.StatusUnauthorized {
			t.Errorf("after a refill: %d, want 401", r.Status)
		}
		if r := a.Do("GET", "/api/v1/devices", bad, nil); r.Status != http.StatusTooManyRequests {
			t.Errorf("refill spent: %d, want 429", r.Status)
		}

		want := "lanyard_http_auth_failures_total"
		rejected, limited := counter(t, reg, want, "rejected"), counter(t, reg, want, "limited")
		if rejected != burst+2 || limited != 5 {
			t.Errorf("rejected %v limited %v, want %d and 5", rejected, limited, burst+2)
		}
		if strings.Contains(logs.String(), bad) {
			t.Error("the log carries the bad token")
		}
		// Logged once per episode: when the source crossed the limit, and again after the refill.
		if n := strings.Count(logs.String(), "failed authentications over the limit"); n != 2 {
			t.Errorf("limit logged %d times, want 2:\n%s", n, logs.String())
		}
	})
}

func counter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestTypedParamsAreEnforced(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	tok := h.Token(o.ID, domain.RoleAdmin)
	for _, tc := range []struct {
		query  string
		status int
	}{
		{"", 200},
		{"since=2026-01-01T00:00:00Z&limit=10", 200},
		{"since=yesterday", 400},
		{"limit=0", 400},
		{"limit=201", 400},
		{"limit=ten", 400},
		{"limit=1&limit=2", 400},
	} {
		r := h.Do("GET", "/api/v1/audit?"+tc.query, tok, nil)
		if r.Status != tc.status {
			t.Errorf("?%s: %d %s, want %d", tc.query, r.Status, r.Body, tc.status)
		}
		if tc.status == 400 && r.Map(t)["parameter"] == nil {
			t.Errorf("?%s: the problem does not name the parameter: %s", tc.query, r.Body)
		}
	}
}
