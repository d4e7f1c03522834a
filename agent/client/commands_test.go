package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/inventory"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// testPlanner returns the plans a test scripts and records the commands it
// was asked to plan.
type testPlanner struct {
	mu   sync.Mutex
	cmds []actions.Command
	plan func(actions.Command) (actions.Plan, error)
}

func (p *testPlanner) Plan(_ context.Context, c actions.Command) (actions.Plan, error) {
	p.mu.Lock()
	p.cmds = append(p.cmds, c)
	p.mu.Unlock()
	return p.plan(c)
}

func (p *testPlanner) commands() []actions.Command {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]actions.Command(nil), p.cmds...)
}

// escrowPlanner is a planner of a platform whose lock forces disk recovery.
type escrowPlanner struct {
	*testPlanner
	mu    sync.Mutex
	keys  []actions.RecoveryKey
	reads int
}

func (p *escrowPlanner) RecoveryKeys(context.Context) ([]actions.RecoveryKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads++
	return append([]actions.RecoveryKey(nil), p.keys...), nil
}

func (p *escrowPlanner) readCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads
}

// recRunner records the steps it runs; hook (optional) runs first and its
// error is the step's.
type recRunner struct {
	mu    sync.Mutex
	steps []string
	hook  func(actions.Step) error
}

func (r *recRunner) Run(_ context.Context, s actions.Step) (string, error) {
	r.mu.Lock()
	r.steps = append(r.steps, s.Name)
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		return "", hook(s)
	}
	return "ran " + s.Name, nil
}

func (r *recRunner) ran() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.steps...)
}

func check(name string, ok bool) actions.Check {
	c := actions.Check{Name: name, OK: ok, Expected: "locked", Observed: "locked"}
	if !ok {
		c.Observed = "password usable"
	}
	return c
}

// scripted builds plans from a table keyed by command kind.
func scripted(plans map[actions.Kind]actions.Plan) *testPlanner {
	return &testPlanner{plan: func(c actions.Command) (actions.Plan, error) {
		p, ok := plans[c.Kind]
		if !ok {
			return actions.Plan{}, actions.ErrUnsupported
		}
		return p, nil
	}}
}

func verifies(checks ...actions.Check) func(context.Context) []actions.Check {
	return func(context.Context) []actions.Check { return checks }
}

// states lists the states the server received for id, in order, without
// repeats of the same state in a row (a resend).
func states(results []*agentv1.CommandResult, id string) []agentv1.CommandState {
	var out []agentv1.CommandState
	for _, r := range results {
		if r.GetCommandId() == id && (len(out) == 0 || out[len(out)-1] != r.GetState()) {
			out = append(out, r.GetState())
		}
	}
	return out
}

func countState(results []*agentv1.CommandResult, id string, st agentv1.CommandState) int {
	n := 0
	for _, r := range results {
		if r.GetCommandId() == id && r.GetState() == st {
			n++
		}
	}
	return n
}

// verified checks r's signature the way the server does (identity.VerifyResult
// against the test CA) and returns its evidence.
func (h *harness) verified(t *testing.T, r *agentv1.CommandResult) *agentv1.Evidence {
	t.Helper()
	return verifyWith(t, h.cp, r)
}

func verifyWith(t *testing.T, cp *fakeCP, r *agentv1.CommandResult) *agentv1.Evidence {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(cp.root)
	inter.AddCert(cp.inter)
	agent := identity.Agent{OrgID: "org-1", AgentID: "agent-1"}
	if err := identity.VerifyResult(agent, r.GetCommandId(), r.GetState().String(), r.GetEvidence(), r.GetSignature(),
		r.GetSignerCertificateDer(), roots, inter); err != nil {
		t.Fatalf("result %s %s: signature: %v", r.GetCommandId(), r.GetState(), err)
	}
	// The signature covers the state: the same evidence cannot be passed off as DONE.
	if r.GetState() != agentv1.CommandState_COMMAND_STATE_DONE {
		if err := identity.VerifyResult(agent, r.GetCommandId(), agentv1.CommandState_COMMAND_STATE_DONE.String(), r.GetEvidence(),
			r.GetSignature(), r.GetSignerCertificateDer(), roots, inter); !errors.Is(err, identity.ErrResultSignature) {
			t.Fatalf("a %s result's signature verifies as DONE: %v", r.GetState(), err)
		}
	}
	ev := &agentv1.Evidence{}
	if err := proto.Unmarshal(r.GetEvidence(), ev); err != nil {
		t.Fatalf("evidence: %v", err)
	}
	return ev
}

func serverResults(cp *fakeCP) []*agentv1.CommandResult {
	_, res, _ := cp.snapshot()
	return res
}

func lockCmd(id, target string) *agentv1.Command {
	return &agentv1.Command{Id: id, Type: agentv1.CommandType_COMMAND_TYPE_LOCK, TargetSerial: target,
		ExpiresAt: timestamppb.New(time.Now().Add(time.Hour)), TypedParams: &agentv1.Command_Lock{Lock: &agentv1.LockParams{Message: "bye"}}}
}

// TestCommandStatesAndSignedEvidence: every lock goes received → running →
// terminal on the wire, and its terminal result carries evidence signed with
// the device key that the server's check accepts: done only when the checks
// passed, failed (with what was found) otherwise.
func TestCommandStatesAndSignedEvidence(t *testing.T) {
	for _, tc := range []struct {
		name      string
		plan      actions.Plan
		failStep  string
		want      agentv1.CommandState
		wantError string
		wantOK    []bool // per check
	}{
		{name: "checks pass", want: agentv1.CommandState_COMMAND_STATE_DONE, wantOK: []bool{true, true},
			plan: actions.Plan{Steps: []actions.Step{{Name: "lock-accounts"}, {Name: "end-sessions"}},
				Verify: verifies(check("account-locked:alice", true), check("pam-account-deny", true))}},
		{name: "a check fails", want: agentv1.CommandState_COMMAND_STATE_FAILED, wantError: "account-locked:alice", wantOK: []bool{true, false},
			plan: actions.Plan{Steps: []actions.Step{{Name: "lock-accounts"}},
				Verify: verifies(check("pam-account-deny", true), check("account-locked:alice", false))}},
		{name: "a step fails", failStep: "lock-accounts", want: agentv1.CommandState_COMMAND_STATE_FAILED, wantError: "step lock-accounts",
			wantOK: []bool{false},
			plan: actions.Plan{Steps: []actions.Step{{Name: "lock-accounts"}, {Name: "end-sessions"}},
				Verify: verifies(check("account-locked:alice", false))}},
		{name: "nothing checked", want: agentv1.CommandState_COMMAND_STATE_FAILED, wantError: "checked nothing",
			plan: actions.Plan{Steps: []actions.Step{{Name: "lock-accounts"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			run := &recRunner{hook: func(s actions.Step) error {
				if s.Name == tc.failStep {
					return errors.New("exit status 1")
				}
				return nil
			}}
			_, stop := h.startWith(t, func(o *Options) {
				o.Planner = scripted(map[actions.Kind]actions.Plan{actions.Lock: tc.plan})
				o.Runner = run
			})
			defer stop()
			h.cp.cmdCh <- lockCmd("cmd-1", "SER-1")
			waitFor(t, "terminal result", func() bool { return countState(serverResults(h.cp), "cmd-1", tc.want) > 0 })
			res := serverResults(h.cp)
			if got := states(res, "cmd-1"); !slices.Equal(got, []agentv1.CommandState{agentv1.CommandState_COMMAND_STATE_RECEIVED,
				agentv1.CommandState_COMMAND_STATE_RUNNING, tc.want}) {
				t.Fatalf("states %v", got)
			}
			r := resultFor(res, "cmd-1", tc.want)
			if !strings.Contains(r.GetError(), tc.wantError) {
				t.Fatalf("error %q, want %q", r.GetError(), tc.wantError)
			}
			ev := h.verified(t, r)
			if ev.GetCommandId() != "cmd-1" || ev.GetType() != agentv1.CommandType_COMMAND_TYPE_LOCK || ev.GetSerialNumber() != "SER-1" ||
				ev.GetMode().GetDryRun() || !ev.GetMode().GetSerialOverridden() || ev.GetCheckedAt() == nil {
				t.Fatalf("evidence %v", ev)
			}
			var ok []bool
			for _, c := range ev.GetChecks() {
				ok = append(ok, c.GetOk())
				if c.GetExpected() == "" || c.GetObserved() == "" {
					t.Fatalf("check without what was found/wanted: %v", c)
				}
			}
			if !slices.Equal(ok, tc.wantOK) {
				t.Fatalf("checks %v, want ok %v", ev.GetChecks(), tc.wantOK)
			}
			// RECEIVED and RUNNING are progress, not claims: they carry no evidence.
			for _, p := range res {
				if p.GetState() != tc.want && len(p.GetEvidence()) != 0 {
					t.Fatalf("%s carries evidence", p.GetState())
				}
			}
		})
	}
}

// newOfflineAgent is an agent that never runs: tests call execute directly
// and read the results from its queue. Its identity is serial/hwuuid as if
// the collector had found them, and it signs with a certificate from cp.
func newOfflineAgent(t *testing.T, cp *fakeCP, p actions.Planner, r actions.Runner, serial, hwuuid string) *Agent {
	t.Helper()
	a, err := New(Options{StateDir: t.TempDir(), Collector: &inventory.Collector{}, Planner: p, Runner: r, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	a.inv = &inventory.Inventory{Hardware: inventory.Hardware{SerialNumber: serial, HardwareUUID: hwuuid}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b := cp.issue(&key.PublicKey, time.Hour)
	a.holder.p.Store(&tls.Certificate{Certificate: b.GetChainDer(), PrivateKey: key})
	a.roots = x509.NewCertPool()
	a.roots.AddCert(cp.root)
	return a
}

func queued(t *testing.T, a *Agent, id string) *agentv1.CommandResult {
	t.Helper()
	r, ok := a.queue.Get(id)
	if !ok {
		t.Fatalf("no result for %s", id)
	}
	return r
}

// TestExecuteIdentityAndParams: a device without a firmware serial runs a
// command addressed to its hardware UUID (as the server addresses it) and
// refuses one for another identity; typed parameters reach the planner.
func TestExecuteIdentityAndParams(t *testing.T) {
	cp := startFakeCP(t)
	plan := actions.Plan{Steps: []actions.Step{{Name: "s"}}, Verify: verifies(check("c", true))}
	p := scripted(map[actions.Kind]actions.Plan{actions.Lock: plan, actions.Unlock: plan, actions.Wipe: plan})
	const uuid = "8f3b2a10-5c4d-11ee-8c99-0242ac120002"
	a := newOfflineAgent(t, cp, p, &recRunner{}, "", uuid)
	ctx := context.Background()
	exp := timestamppb.New(time.Now().Add(time.Hour))

	lock := lockCmd("by-uuid", strings.ToUpper(uuid))
	lock.GetLock().EscrowedProtectorIds = []string{"{AAA}", "{BBB}"}
	a.execute(ctx, lock)
	a.execute(ctx, lockCmd("other", "SER-OTHER"))
	a.execute(ctx, &agentv1.Command{Id: "unlock", Type: agentv1.CommandType_COMMAND_TYPE_UNLOCK, TargetSerial: uuid, ExpiresAt: exp})
	a.execute(ctx, cp.confirm(&agentv1.Command{Id: "wipe", Type: agentv1.CommandType_COMMAND_TYPE_WIPE, TargetSerial: uuid, ExpiresAt: exp,
		TypedParams: &agentv1.Command_Wipe{Wipe: &agentv1.WipeParams{ConfirmSerial: uuid, AllowBestEffort: true}}}))

	r := queued(t, a, "by-uuid")
	if r.GetState() != agentv1.CommandState_COMMAND_STATE_DONE {
		t.Fatalf("lock addressed to the hardware UUID: %v %s", r.GetState(), r.GetError())
	}
	if ev := verifyWith(t, cp, r); ev.GetHardwareUuid() != uuid || ev.GetSerialNumber() != "" {
		t.Fatalf("evidence identity %v", ev)
	}
	r = queued(t, a, "other")
	if r.GetState() != agentv1.CommandState_COMMAND_STATE_FAILED || !strings.Contains(r.GetError(), "serial") {
		t.Fatalf("lock for another device: %v %s", r.GetState(), r.GetError())
	}
	if ev := verifyWith(t, cp, r); ev.GetHardwareUuid() != uuid || len(ev.GetChecks()) != 0 {
		t.Fatalf("refusal evidence %v", ev)
	}
	if r := queued(t, a, "unlock"); r.GetState() != agentv1.CommandState_COMMAND_STATE_DONE {
		t.Fatalf("unlock: %v %s", r.GetState(), r.GetError())
	}
	if r := queued(t, a, "wipe"); r.GetState() != agentv1.CommandState_COMMAND_STATE_DONE {
		t.Fatalf("wipe: %v %s", r.GetState(), r.GetError())
	}
	got := map[string]actions.Command{}
	for _, c := range p.commands() {
		got[c.ID] = c
	}
	if c := got["by-uuid"]; c.Kind != actions.Lock || !slices.Equal(c.EscrowedProtectors, []string{"{AAA}", "{BBB}"}) || c.Message != "bye" {
		t.Fatalf("lock command %+v", c)
	}
	if c := got["unlock"]; c.Kind != actions.Unlock {
		t.Fatalf("unlock command %+v", c)
	}
	if c := got["wipe"]; c.Kind != actions.Wipe || !c.AllowBestEffort || !c.Confirmed {
		t.Fatalf("wipe command %+v", c)
	}
}

// TestCommitBeforeFinal: a wipe's DONE result reaches the server, and is
// confirmed, before the power-off runs, and is not delivered a second time;
// with the server gone the power-off still runs once the bound has passed.
func TestCommitBeforeFinal(t *testing.T) {
	wipePlan := actions.Plan{
		Steps:       []actions.Step{{Name: "destroy-keys", Destructive: true}},
		Verify:      verifies(actions.Check{Name: "luks-keyslots-destroyed:/dev/vda3", OK: true, Observed: "0 key slots", Expected: "0 key slots"}),
		Final:       []actions.Step{{Name: "power-off"}},
		FinalAction: "power-off", WipeMethod: actions.WipeCryptoErase,
	}
	plans := map[actions.Kind]actions.Plan{actions.Wipe: wipePlan, actions.Message: {Steps: []actions.Step{{Name: "notify"}}}}
	wipe := func(cp *fakeCP) *agentv1.Command {
		return cp.confirm(&agentv1.Command{Id: "cmd-wipe", Type: agentv1.CommandType_COMMAND_TYPE_WIPE, TargetSerial: "SER-1",
			ExpiresAt:   timestamppb.New(time.Now().Add(time.Hour)),
			TypedParams: &agentv1.Command_Wipe{Wipe: &agentv1.WipeParams{ConfirmSerial: "SER-1"}}})
	}

	t.Run("confirmed", func(t *testing.T) {
		h := newHarness(t)
		var a *Agent
		type seen struct{ serverHasDone, confirmed bool }
		atFinal := make(chan seen, 1)
		run := &recRunner{hook: func(s actions.Step) error {
			if s.Name == "power-off" {
				pending, _ := a.queue.Pending()
				stillPending := slices.ContainsFunc(pending, func(r *agentv1.CommandResult) bool { return r.GetCommandId() == "cmd-wipe" })
				atFinal <- seen{countState(serverResults(h.cp), "cmd-wipe", agentv1.CommandState_COMMAND_STATE_DONE) == 1, !stillPending}
			}
			return nil
		}}
		a, stop := h.startWith(t, func(o *Options) {
			o.Planner, o.Runner, o.CommitTimeout = scripted(plans), run, time.Minute
		})
		defer stop()
		waitFor(t, "connected", func() bool { return a.Status().Connected })
		h.cp.cmdCh <- wipe(h.cp)
		var s seen
		select {
		case s = <-atFinal:
		case <-time.After(30 * time.Second):
			t.Fatal("power-off never ran")
		}
		if !s.serverHasDone || !s.confirmed {
			t.Fatalf("at power-off: server has DONE %v, delivery confirmed %v", s.serverHasDone, s.confirmed)
		}
		// The worker runs one command at a time: once the message is done,
		// the wipe's execution has returned.
		h.cp.cmdCh <- &agentv1.Command{Id: "cmd-msg", Type: agentv1.CommandType_COMMAND_TYPE_MESSAGE, TargetSerial: "SER-1",
			TypedParams: &agentv1.Command_Message{Message: &agentv1.MessageParams{Body: "hi"}}}
		waitFor(t, "message done", func() bool {
			return countState(serverResults(h.cp), "cmd-msg", agentv1.CommandState_COMMAND_STATE_DONE) > 0
		})
		res := serverResults(h.cp)
		if n := countState(res, "cmd-wipe", agentv1.CommandState_COMMAND_STATE_DONE); n != 1 {
			t.Fatalf("wipe DONE delivered %d times", n)
		}
		if got := states(res, "cmd-wipe"); !slices.Equal(got, []agentv1.CommandState{agentv1.CommandState_COMMAND_STATE_RECEIVED,
			agentv1.CommandState_COMMAND_STATE_RUNNING, agentv1.CommandState_COMMAND_STATE_DONE}) {
			t.Fatalf("wipe states %v", got)
		}
		done := resultFor(res, "cmd-wipe", agentv1.CommandState_COMMAND_STATE_DONE)
		ev := h.verified(t, done)
		if ev.GetFinalAction() != "power-off" || ev.GetWipeMethod() != actions.WipeCryptoErase || len(ev.GetChecks()) != 1 {
			t.Fatalf("wipe evidence %v", ev)
		}
		for _, st := range done.GetSteps() {
			if st.GetName() == "power-off" {
				t.Fatal("the committed result claims the power-off ran")
			}
		}
		if got := run.ran(); !slices.Equal(got, []string{"destroy-keys", "power-off", "notify"}) {
			t.Fatalf("steps run %v", got)
		}
	})

	t.Run("server unreachable", func(t *testing.T) {
		h := newHarness(t)
		run := &recRunner{}
		run.hook = func(s actions.Step) error {
			if s.Name == "destroy-keys" {
				h.cp.stopAgentAPI()
			}
			return nil
		}
		a, stop := h.startWith(t, func(o *Options) {
			o.Planner, o.Runner, o.CommitTimeout = scripted(plans), run, 500*time.Millisecond
		})
		defer stop()
		waitFor(t, "connected", func() bool { return a.Status().Connected })
		h.cp.cmdCh <- wipe(h.cp)
		waitFor(t, "power-off after the commit bound", func() bool { return slices.Contains(run.ran(), "power-off") })
		// Unconfirmed, the DONE result stays queued for the next connection.
		r, ok := a.queue.Get("cmd-wipe")
		pending, _ := a.queue.Pending()
		if !ok || r.GetState() != agentv1.CommandState_COMMAND_STATE_DONE || len(pending) == 0 {
			t.Fatalf("queued wipe result %v (pending %d)", r, len(pending))
		}
		verifyWith(t, h.cp, r)
	})
}

// TestHeldLockReassertedAtStart: a DONE lock holds the device; at the next
// start the lock runs again before the agent connects, nothing is reported
// for it, Hello names the holding lock and status shows it; a DONE unlock
// releases the device and the next start re-asserts nothing.
func TestHeldLockReassertedAtStart(t *testing.T) {
	h := newHarness(t)
	var reassertOK = true
	var mu sync.Mutex
	p := &testPlanner{plan: func(c actions.Command) (actions.Plan, error) {
		mu.Lock()
		ok := reassertOK || !c.Reassert
		mu.Unlock()
		return actions.Plan{Steps: []actions.Step{{Name: string(c.Kind) + "-accounts"}},
			Verify: verifies(check("account-locked:alice", ok))}, nil
	}}
	run := &recRunner{}
	start := func(reassert actions.Runner) (*Agent, func()) {
		return h.startWith(t, func(o *Options) { o.Planner, o.Runner, o.ReassertRunner = p, run, reassert })
	}
	a, stop := start(nil)
	waitFor(t, "connected", func() bool { return a.Status().Connected })
	h.cp.cmdCh <- lockCmd("cmd-lock", "SER-1")
	waitFor(t, "lock done", func() bool {
		return countState(serverResults(h.cp), "cmd-lock", agentv1.CommandState_COMMAND_STATE_DONE) > 0
	})
	held, ok, err := ReadHeldLock(h.stateDir)
	if err != nil || !ok || held.CommandID != "cmd-lock" || held.Message != "bye" || held.LockedAt.IsZero() {
		t.Fatalf("held lock after DONE: %+v %v %v", held, ok, err)
	}
	if st := a.Status(); !st.Locked || st.LockedByCommandID != "cmd-lock" {
		t.Fatalf("status after lock %+v", st)
	}
	stop()

	for _, tc := range []struct {
		name      string
		ok        bool
		wantState string
	}{{"checks pass", true, "done"}, {"a check fails", false, "failed"}} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			reassertOK = tc.ok
			mu.Unlock()
			_, _, hellos := h.cp.snapshot()
			before := len(hellos)
			var helloAtReassert atomic.Int64
			helloAtReassert.Store(-1)
			reassert := &recRunner{hook: func(actions.Step) error {
				_, _, hs := h.cp.snapshot()
				helloAtReassert.Store(int64(len(hs)))
				return nil
			}}
			a, stop := start(reassert)
			defer stop()
			waitFor(t, "reconnected", func() bool { return a.Status().Connected })
			if got := reassert.ran(); !slices.Equal(got, []string{"lock-accounts"}) {
				t.Fatalf("re-assert ran %v", got)
			}
			if n := helloAtReassert.Load(); n != int64(before) {
				t.Fatalf("lock re-asserted after connecting (hellos %d, before start %d)", n, before)
			}
			_, res, hellos := h.cp.snapshot()
			if last := hellos[len(hellos)-1]; last.GetLockedByCommandId() != "cmd-lock" {
				t.Fatalf("hello %v", last)
			}
			for _, r := range res {
				if strings.HasPrefix(r.GetCommandId(), "reassert:") {
					t.Fatalf("a result was reported for the re-assert: %v", r)
				}
			}
			st := a.Status()
			if !st.Locked || st.LockedByCommandID != "cmd-lock" || st.LockReassertState != tc.wantState {
				t.Fatalf("status %+v", st)
			}
			if c := p.commands(); !c[len(c)-1].Reassert || c[len(c)-1].TargetSerial != "SER-1" || c[len(c)-1].ID != "reassert:cmd-lock" {
				t.Fatalf("re-assert command %+v", c[len(c)-1])
			}
			if _, ok, _ := ReadHeldLock(h.stateDir); !ok {
				t.Fatal("a re-assert released the device")
			}
		})
	}

	// Unlock releases the device; the next start re-asserts nothing.
	mu.Lock()
	reassertOK = true
	mu.Unlock()
	a, stop = start(nil)
	waitFor(t, "connected", func() bool { return a.Status().Connected })
	h.cp.cmdCh <- &agentv1.Command{Id: "cmd-unlock", Type: agentv1.CommandType_COMMAND_TYPE_UNLOCK, TargetSerial: "SER-1"}
	waitFor(t, "unlock done", func() bool {
		return countState(serverResults(h.cp), "cmd-unlock", agentv1.CommandState_COMMAND_STATE_DONE) > 0
	})
	if _, ok, _ := ReadHeldLock(h.stateDir); ok {
		t.Fatal("held lock still there after a DONE unlock")
	}
	if st := a.Status(); st.Locked {
		t.Fatalf("status after unlock %+v", st)
	}
	stop()
	reassert := &recRunner{}
	a, stop = start(reassert)
	defer stop()
	waitFor(t, "connected", func() bool { return a.Status().Connected })
	_, _, hellos := h.cp.snapshot()
	if len(reassert.ran()) != 0 || hellos[len(hellos)-1].GetLockedByCommandId() != "" {
		t.Fatalf("after unlock: re-assert ran %v, hello %v", reassert.ran(), hellos[len(hellos)-1])
	}
}

// syncBuffer is a log sink safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEscrowRecoveryKeys: the agent sends the recovery keys the server has
// not confirmed (retrying a refused one on the next tick), remembers the
// confirmed protector ids (never the password) across restarts, and sends a
// rotated key again.
func TestEscrowRecoveryKeys(t *testing.T) {
	h := newHarness(t)
	const pw1, pw2 = "111111-222222-333333-444444-555555-666666-777777-888888", "123456-123456-123456-123456-123456-123456-123456-123456"
	p := &escrowPlanner{testPlanner: scripted(nil), keys: []actions.RecoveryKey{
		{Kind: "bitlocker", Volume: "C:", ProtectorID: "{P-C}", Password: pw1},
		{Kind: "bitlocker", Volume: "D:", ProtectorID: "{P-D}", Password: pw2},
	}}
	h.cp.mu.Lock()
	h.cp.failEscrow = 1 // the first request is refused
	h.cp.mu.Unlock()
	logs := &syncBuffer{}
	start := func() (*Agent, func()) {
		return h.startWith(t, func(o *Options) {
			o.Planner, o.Runner = p, &recRunner{}
			o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
	}
	escrows := func() []*agentv1.EscrowRecoveryKeyRequest {
		h.cp.mu.Lock()
		defer h.cp.mu.Unlock()
		return append([]*agentv1.EscrowRecoveryKeyRequest(nil), h.cp.escrows...)
	}
	a, stop := start()
	waitFor(t, "both keys confirmed", func() bool { return len(a.Status().EscrowedProtectors) == 2 })
	got := escrows()
	if len(got) != 3 { // C refused, D, then C again on the next tick
		t.Fatalf("%d escrow requests: %v", len(got), got)
	}
	for _, r := range got {
		if r.GetKind() != "bitlocker" || r.GetVolume() == "" || r.GetRecoveryPassword() == "" {
			t.Fatalf("escrow request %v", r)
		}
	}
	// Three more ticks send nothing new.
	reads := p.readCount()
	waitFor(t, "three more escrow rounds", func() bool { return p.readCount() >= reads+3 })
	if n := len(escrows()); n != 3 {
		t.Fatalf("confirmed keys sent again: %d requests", n)
	}
	stop()

	b, err := os.ReadFile(filepath.Join(h.stateDir, escrowJSON))
	if err != nil || !strings.Contains(string(b), "{P-C}") || strings.Contains(string(b), pw1) || strings.Contains(string(b), pw2) {
		t.Fatalf("escrow record %s (%v)", b, err)
	}

	// Restart: nothing resent. Rotate C's protector: only the new one goes out.
	p.mu.Lock()
	p.keys[0] = actions.RecoveryKey{Kind: "bitlocker", Volume: "C:", ProtectorID: "{P-C2}", Password: pw2}
	p.mu.Unlock()
	a, stop = start()
	defer stop()
	waitFor(t, "rotated key confirmed", func() bool { return slices.Contains(a.Status().EscrowedProtectors, "{P-C2}") })
	got = escrows()
	if len(got) != 4 || got[3].GetProtectorId() != "{P-C2}" {
		t.Fatalf("after restart and rotation: %v", got)
	}
	if ids := a.Status().EscrowedProtectors; !slices.Equal(ids, []string{"{P-C2}", "{P-D}"}) {
		t.Fatalf("confirmed protectors %v (the rotated-away one must be forgotten)", ids)
	}
	if out := logs.String(); strings.Contains(out, pw1) || strings.Contains(out, pw2) || !strings.Contains(out, "recovery key escrowed") {
		t.Fatalf("logs leak a password or say nothing:\n%s", out)
	}
}

// blockingRunner blocks every step until the agent stops.
type blockingRunner struct{ started chan struct{} }

func (b blockingRunner) Run(ctx context.Context, _ actions.Step) (string, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return "", ctx.Err()
}

// TestRestartMidCommand: an agent stopped while a lock runs reports, at its
// next start, FAILED "agent restarted before the command finished" for it.
func TestRestartMidCommand(t *testing.T) {
	h := newHarness(t)
	p := scripted(map[actions.Kind]actions.Plan{actions.Lock: {Steps: []actions.Step{{Name: "lock-accounts"}},
		Verify: verifies(check("account-locked:alice", true))}})
	br := blockingRunner{started: make(chan struct{}, 1)}
	a, stop := h.startWith(t, func(o *Options) { o.Planner, o.Runner = p, br })
	waitFor(t, "connected", func() bool { return a.Status().Connected })
	h.cp.cmdCh <- lockCmd("cmd-1", "SER-1")
	select {
	case <-br.started:
	case <-time.After(15 * time.Second):
		t.Fatal("lock never started")
	}
	waitFor(t, "running at the server", func() bool {
		return countState(serverResults(h.cp), "cmd-1", agentv1.CommandState_COMMAND_STATE_RUNNING) > 0
	})
	stop()
	a, stop = h.startWith(t, func(o *Options) { o.Planner, o.Runner = p, &recRunner{} })
	defer stop()
	waitFor(t, "failed after the restart", func() bool {
		r := resultFor(serverResults(h.cp), "cmd-1", agentv1.CommandState_COMMAND_STATE_FAILED)
		return r != nil && strings.Contains(r.GetError(), "agent restarted before the command finished")
	})
	if n := countState(serverResults(h.cp), "cmd-1", agentv1.CommandState_COMMAND_STATE_DONE); n != 0 {
		t.Fatal("an interrupted lock was reported done")
	}
}
