package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// `make run` listens where LANYARD_HTTP_ADDR or HTTP_ADDR says (it used to
// pass a hard-coded --http-addr, which beats the environment), and builds
// the agents and lanyardctl first.
func TestMakeRunHonoursTheAddress(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dryRun := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-n", "-C", "../..", "run"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n run: %v\n%s", err, out)
		}
		return string(out)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		want []string
	}{
		{nil, nil, []string{"--http-addr 127.0.0.1:8080", "--public-url http://localhost:8080"}},
		{[]string{"LANYARD_HTTP_ADDR=127.0.0.1:9191"}, nil, []string{"--http-addr 127.0.0.1:9191", "--public-url http://localhost:9191"}},
		{nil, []string{"HTTP_ADDR=127.0.0.1:9292", "GRPC_ADDR=127.0.0.1:9443"}, []string{"--http-addr 127.0.0.1:9292", "--grpc-addr 127.0.0.1:9443", "--agent-url localhost:9443"}},
	} {
		out := dryRun(tc.env, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("env %v args %v: %q missing from\n%s", tc.env, tc.args, w, out)
			}
		}
		for _, w := range []string{"GOOS=$os GOARCH=$arch", "-o bin/lanyardctl"} {
			if !strings.Contains(out, w) {
				t.Errorf("make run does not build %s first", w)
			}
		}
	}
}

// The demo banner's installer line knows the platforms the Makefile builds,
// and says when downloads would answer 503.
func TestAgentStatusMatchesMakefile(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "AGENT_TARGETS := "); ok {
			targets = strings.Fields(v)
		}
	}
	var ours []string
	for _, t := range agentTargets {
		ours = append(ours, t[0]+"/"+t[1])
	}
	if strings.Join(targets, " ") != strings.Join(ours, " ") {
		t.Fatalf("Makefile AGENT_TARGETS %v, banner knows %v", targets, ours)
	}
	// The test binary has no agents beside it.
	if s := agentStatus(); !strings.Contains(s, "503") || !strings.Contains(s, "make build-agents") {
		t.Fatalf("status %q", s)
	}
}
