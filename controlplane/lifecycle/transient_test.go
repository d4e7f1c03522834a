package lifecycle

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/apps"
)

// TestTransientApp: what retries (grant, revoke and reactivation alike) and what
// becomes a manual task at once.
func TestTransientApp(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		retry bool
		after time.Duration
	}{
		{"429 with Retry-After", &apps.TargetError{App: "a", Status: 429, Kind: apps.ErrUnavailable, RetryAfter: 3 * time.Second}, true, 3 * time.Second},
		{"503", fmt.Errorf("call: %w", &apps.TargetError{App: "a", Status: 503, Kind: apps.ErrUnavailable}), true, 0},
		{"no answer", &apps.TargetError{App: "a", Err: errors.New("connection refused")}, true, 0},
		{"a store error", errors.New("database is locked"), true, 0},
		{"400", &apps.TargetError{App: "a", Status: 400, Kind: apps.ErrRejected}, false, 0},
		{"401", &apps.TargetError{App: "a", Status: 401, Kind: apps.ErrAuth}, false, 0},
		{"Permanent", Permanent(errors.New("no connector")), false, 0},
		{"Permanent 503", Permanent(&apps.TargetError{App: "a", Status: 503, Kind: apps.ErrUnavailable}), false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			retry, after := transientApp(tc.err)
			if retry != tc.retry || after != tc.after {
				t.Fatalf("transientApp(%v) = %v, %s; want %v, %s", tc.err, retry, after, tc.retry, tc.after)
			}
		})
	}
}
