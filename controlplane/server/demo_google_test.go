package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// make run's demo org has Google Workspace connected (an in-process fake): offboarding a
// demo employee shows the access-removal step with Google's result, and the account at
// the fake is suspended and signed out.
func TestDemoOffboardingSuspendsGoogle(t *testing.T) {
	d := startDemo(t)
	s, ctx, org, token, base := d.s, d.ctx, d.org, d.token, d.base
	call := func(method, path string, body any, out any) int {
		t.Helper()
		var rd *bytes.Reader
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}

	emps, _, err := s.DB.ListEmployees(ctx, org.ID, store.EmployeeFilter{Status: domain.StatusActive}, store.Page{Limit: 50})
	if err != nil || len(emps) == 0 {
		t.Fatalf("demo employees: %d %v", len(emps), err)
	}
	var leaver domain.Employee
	for _, e := range emps {
		if strings.HasSuffix(e.HR.WorkEmail, "@"+demoGoogleDomain) {
			leaver = e
			break
		}
	}
	email := strings.ToLower(leaver.HR.WorkEmail)
	if u, ok := s.caps.demoGoogle.User(email); !ok || u.Suspended {
		t.Fatalf("the demo account of %s: %+v %v", email, u, ok)
	}
	var dr lifecycle.DryRun
	if st := call("POST", "/api/v1/employees/"+leaver.ID+"/offboard", map[string]string{"confirm": leaver.ID}, &dr); st != 200 || dr.Existing == nil {
		t.Fatalf("offboard: %d %+v", st, dr)
	}
	var step struct {
		Kind   string          `json:"kind"`
		State  string          `json:"state"`
		Output json.RawMessage `json:"output"`
	}
	ok := poll(30*time.Second, func() bool {
		var wf struct {
			Steps []json.RawMessage `json:"steps"`
		}
		call("GET", "/api/v1/workflows/"+dr.Existing.ID, nil, &wf)
		for _, raw := range wf.Steps {
			_ = json.Unmarshal(raw, &step)
			if step.Kind == string(lifecycle.StepRevokeApps) && step.State == "succeeded" {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("the access step did not succeed: %+v %s", step, step.Output)
	}
	if !strings.Contains(string(step.Output), `"app":"`+demoGoogleApp+`"`) || !strings.Contains(string(step.Output), `"action":"suspended"`) {
		t.Errorf("the step does not show Google's result: %s", step.Output)
	}
	if u, _ := s.caps.demoGoogle.User(email); !u.Suspended || s.caps.demoGoogle.SignOuts(email) == 0 {
		t.Errorf("at Google: suspended %v, sign-outs %d", u.Suspended, s.caps.demoGoogle.SignOuts(email))
	}
}

// runningDemo is `make run` in a test: a demo server listening on loopback, seeded,
// running until the test ends.
type runningDemo struct {
	s     *Server
	ctx   context.Context
	org   domain.Org
	token string
	base  string
}

func startDemo(t *testing.T) runningDemo {
	t.Helper()
	cfg := testConfig(t, "")
	cfg.Demo = true
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, cfg, quietLogger())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	org, token, err := s.SeedDemo(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + addr.String()
	if !poll(10*time.Second, func() bool { r, err := http.Get(base + "/healthz"); return err == nil && r.Body.Close() == nil }) {
		t.Fatal("server not up")
	}
	return runningDemo{s: s, ctx: ctx, org: org, token: token, base: base}
}
