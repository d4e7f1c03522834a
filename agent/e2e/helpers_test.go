package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiClient calls the admin API without a *testing.T, so an agent's
// goroutine (the recording power-off step) can use it too.
type apiClient struct{ url, token string }

func (e *env) client() apiClient { return apiClient{url: e.serve.HTTPURL, token: e.token} }

// do sends body as JSON and decodes a 2xx answer into out (may be nil).
func (c apiClient) do(method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %s: %w", method, path, b, err)
		}
	}
	return resp.StatusCode, nil
}

func (c apiClient) must(t *testing.T, method, path string, body, out any) {
	t.Helper()
	if _, err := c.do(method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// waitUntil checks cond every poll until it holds, failing the test after d.
func waitUntil(t *testing.T, what string, d, poll time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(poll)
	}
}

// check is one evidence check as the API shows it.
type check struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Observed string `json:"observed"`
	Expected string `json:"expected"`
}

// action is a device command with its evidence as the API shows it.
type action struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	State       string `json:"state"`
	Error       string `json:"error"`
	ReceivedAt  string `json:"received_at"`
	StartedAt   string `json:"started_at"`
	CompletedAt string `json:"completed_at"`
	Evidence    *struct {
		Verified     bool    `json:"verified"`
		SerialNumber string  `json:"serial_number"`
		Checks       []check `json:"checks"`
		WipeMethod   string  `json:"wipe_method"`
		FinalAction  string  `json:"final_action"`
		Mode         struct {
			DryRun           bool `json:"dry_run"`
			SerialOverridden bool `json:"serial_overridden"`
		} `json:"mode"`
	} `json:"evidence"`
}

func (a action) checkNames() []string {
	if a.Evidence == nil {
		return nil
	}
	var out []string
	for _, c := range a.Evidence.Checks {
		out = append(out, c.Name)
	}
	return out
}

// requireProven fails unless a is done with verified evidence from a real
// (not dry-run, not overridden) agent, every check ok, and checks named
// (or, for a name ending in ":", some check with that prefix).
func requireProven(t *testing.T, what string, a action, names ...string) {
	t.Helper()
	if a.State != "done" || a.Evidence == nil || !a.Evidence.Verified || a.Evidence.Mode.DryRun || a.Evidence.Mode.SerialOverridden {
		t.Fatalf("%s: state %s error %q evidence %+v", what, a.State, a.Error, a.Evidence)
	}
	if len(a.Evidence.Checks) == 0 {
		t.Fatalf("%s: done without checks", what)
	}
	for _, c := range a.Evidence.Checks {
		if !c.OK {
			t.Fatalf("%s: done with a failed check %+v", what, c)
		}
	}
	got := a.checkNames()
	for _, n := range names {
		found := slices.Contains(got, n)
		if p, ok := strings.CutSuffix(n, ":"); ok {
			found = slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, p+":") })
		}
		if !found {
			t.Fatalf("%s: no check %s in %v", what, n, got)
		}
	}
}

// sendAction posts a device action and returns the created command.
func (c apiClient) sendAction(t *testing.T, deviceID string, body map[string]any) action {
	t.Helper()
	var a action
	c.must(t, "POST", "/api/v1/devices/"+deviceID+"/actions", body, &a)
	if a.ID == "" {
		t.Fatalf("no command id in the answer to %v", body)
	}
	return a
}

// waitAction waits until the command is terminal and returns it.
func (c apiClient) waitAction(t *testing.T, id string, d time.Duration) action {
	t.Helper()
	var a action
	waitUntil(t, "command "+id+" to end", d, 100*time.Millisecond, func() bool {
		c.must(t, "GET", "/api/v1/device-actions/"+id, nil, &a)
		return terminal(a.State)
	})
	return a
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
