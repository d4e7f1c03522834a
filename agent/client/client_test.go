package client

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/agent/inventory"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

type harness struct {
	cp       *fakeCP
	cfgPath  string
	stateDir string
	dry      *actions.DryRunner
}

func newHarness(t *testing.T) *harness {
	cp := startFakeCP(t)
	dir := t.TempDir()
	h := &harness{cp: cp, cfgPath: filepath.Join(dir, "etc", "agent.json"), stateDir: filepath.Join(dir, "state"), dry: &actions.DryRunner{}}
	if err := config.Write(h.cfgPath, config.Config{
		GRPCAddress: cp.agentAddr, EnrollmentAddress: cp.enrollAddr,
		CAFingerprintSHA256: Fingerprint(cp.root.Raw), EnrollmentSecret: cp.secret,
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs an agent until the returned stop function is called.
// connected starts the agent (stopped at the end of the test), waits for its stream and
// returns its state store and the credentials it connected with.
func (h *harness) connected(t *testing.T) (*Agent, Store, *Credentials) {
	t.Helper()
	a, stop := h.start(t)
	t.Cleanup(stop)
	waitFor(t, "connected", func() bool { return a.Status().Connected })
	st := Store{Dir: h.stateDir}
	creds, err := st.LoadCredentials()
	if err != nil {
		t.Fatal(err)
	}
	return a, st, creds
}

func samePublic(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func (h *harness) start(t *testing.T) (*Agent, func()) {
	t.Helper()
	return h.startWith(t, nil)
}

// startWith starts an agent whose options edit adjusts (planner, runner, …)
// before New. Without edit: the real planner and the dry-run runner.
func (h *harness) startWith(t *testing.T, edit func(*Options)) (*Agent, func()) {
	t.Helper()
	cfg, err := config.Load(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Config: cfg, ConfigPath: h.cfgPath, StateDir: h.stateDir,
		Collector: &inventory.Collector{AgentVersion: "test", SerialOverride: "SER-1"},
		Planner:   actions.NewPlanner(actions.PlannerOptions{}), Runner: h.dry, Version: "test", Logger: quiet,
		InventoryInterval: 200 * time.Millisecond, HeartbeatInterval: time.Second,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	if edit != nil {
		edit(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	}
}

func resultFor(results []*agentv1.CommandResult, id string, state agentv1.CommandState) *agentv1.CommandResult {
	for _, r := range results {
		if r.GetCommandId() == id && r.GetState() == state {
			return r
		}
	}
	return nil
}

func TestEnrollRunCommandsAndRevocation(t *testing.T) {
	h := newHarness(t)
	a, stop := h.start(t)
	defer stop()

	// Enrolled from the config file; the secret is gone from it, the key is owner-only.
	waitFor(t, "connected", func() bool { return a.Status().Connected })
	cfg, _ := config.Load(h.cfgPath)
	if cfg.EnrollmentSecret != "" || cfg.GRPCAddress != h.cp.agentAddr {
		t.Fatalf("config after enrollment: %+v", cfg)
	}
	st, err := os.Stat(filepath.Join(h.stateDir, identityPEM))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity.pem: %v %v", st, err)
	}
	if st, _ := os.Stat(h.stateDir); st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %o", st.Mode().Perm())
	}

	// The first report is full and carries the serial; no delta follows without a change.
	reports, _, hellos := h.cp.snapshot()
	if len(reports) == 0 || !reports[0].GetFull() || reports[0].GetInventory().GetHardware().GetSerialNumber() != "SER-1" {
		t.Fatalf("first report: %v", reports)
	}
	if hellos[0].GetSerialNumber() != "SER-1" || hellos[0].GetInventoryHash() != reports[0].GetInventoryHash() {
		t.Fatalf("hello %v", hellos[0])
	}
	time.Sleep(700 * time.Millisecond) // several inventory intervals
	reports, _, _ = h.cp.snapshot()
	for _, r := range reports[1:] {
		if r.GetFull() || len(r.GetChangedSections()) == 0 {
			t.Fatalf("unexpected report after the first: full=%v sections=%v", r.GetFull(), r.GetChangedSections())
		}
	}

	// A lock for this device: received, running, then simulated by the dry-run executor (never done).
	exp := timestamppb.New(time.Now().Add(time.Hour))
	h.cp.cmdCh <- &agentv1.Command{Id: "cmd-lock", Type: agentv1.CommandType_COMMAND_TYPE_LOCK, TargetSerial: "SER-1",
		ExpiresAt: exp, TypedParams: &agentv1.Command_Lock{Lock: &agentv1.LockParams{Message: "bye"}}}
	// A lock for another device: refused.
	h.cp.cmdCh <- &agentv1.Command{Id: "cmd-other", Type: agentv1.CommandType_COMMAND_TYPE_LOCK, TargetSerial: "SER-2", ExpiresAt: exp}
	// A wipe without a valid confirmation: refused before any step.
	h.cp.cmdCh <- &agentv1.Command{Id: "cmd-wipe", Type: agentv1.CommandType_COMMAND_TYPE_WIPE, TargetSerial: "SER-1", ExpiresAt: exp,
		TypedParams:  &agentv1.Command_Wipe{Wipe: &agentv1.WipeParams{ConfirmSerial: "SER-1"}},
		Confirmation: &agentv1.Confirmation{Nonce: "n", ExpiresAt: exp, Signature: []byte("forged"), SignerChainDer: [][]byte{h.cp.inter.Raw}}}
	waitFor(t, "three terminal results", func() bool {
		_, res, _ := h.cp.snapshot()
		return resultFor(res, "cmd-lock", agentv1.CommandState_COMMAND_STATE_SIMULATED) != nil &&
			resultFor(res, "cmd-other", agentv1.CommandState_COMMAND_STATE_FAILED) != nil &&
			resultFor(res, "cmd-wipe", agentv1.CommandState_COMMAND_STATE_FAILED) != nil
	})
	_, results, _ := h.cp.snapshot()
	if got := states(results, "cmd-lock"); !slices.Equal(got, []agentv1.CommandState{agentv1.CommandState_COMMAND_STATE_RECEIVED,
		agentv1.CommandState_COMMAND_STATE_RUNNING, agentv1.CommandState_COMMAND_STATE_SIMULATED}) {
		t.Fatalf("lock states %v", got)
	}
	done := resultFor(results, "cmd-lock", agentv1.CommandState_COMMAND_STATE_SIMULATED)
	if len(done.GetSteps()) == 0 {
		t.Fatal("lock result has no steps")
	}
	if ev := h.verified(t, done); !ev.GetMode().GetDryRun() || ev.GetCommandId() != "cmd-lock" || len(ev.GetChecks()) != 0 {
		t.Fatalf("simulated lock evidence %v", ev)
	}
	for _, s := range done.GetSteps() {
		if s.GetStatus() != agentv1.StepStatus_STEP_STATUS_DRY_RUN {
			t.Fatalf("step %s status %s", s.GetName(), s.GetStatus())
		}
	}
	if got := resultFor(results, "cmd-other", agentv1.CommandState_COMMAND_STATE_FAILED); !strings.Contains(got.GetError(), "serial") {
		t.Fatalf("serial mismatch error %q", got.GetError())
	} else if ev := h.verified(t, got); ev.GetSerialNumber() != "SER-1" || len(ev.GetChecks()) != 0 {
		t.Fatalf("refusal evidence %v", ev)
	}
	if got := resultFor(results, "cmd-wipe", agentv1.CommandState_COMMAND_STATE_FAILED); !strings.Contains(got.GetError(), "confirmation") {
		t.Fatalf("forged wipe error %q", got.GetError())
	}
	for _, s := range h.dry.Steps() {
		if s.Destructive {
			t.Fatalf("a destructive step was recorded: %v", s)
		}
	}
	waitFor(t, "results confirmed delivered", func() bool { return a.Status().PendingResults == 0 })

	// A redelivered command id is answered from the queue, not run again.
	before := len(h.dry.Steps())
	h.cp.cmdCh <- &agentv1.Command{Id: "cmd-lock", Type: agentv1.CommandType_COMMAND_TYPE_LOCK, TargetSerial: "SER-1", ExpiresAt: exp}
	waitFor(t, "resent result", func() bool {
		_, res, _ := h.cp.snapshot()
		n := 0
		for _, r := range res {
			if r.GetCommandId() == "cmd-lock" && r.GetState() == agentv1.CommandState_COMMAND_STATE_SIMULATED {
				n++
			}
		}
		return n == 2
	})
	if len(h.dry.Steps()) != before {
		t.Fatal("redelivered command executed twice")
	}

	// Revocation cuts the stream, and the agent cannot reconnect.
	h.cp.revoke()
	waitFor(t, "disconnected after revocation", func() bool {
		s := a.Status()
		return !s.Connected && strings.Contains(s.LastError, "Unauthenticated")
	})
	time.Sleep(500 * time.Millisecond)
	if a.Status().Connected {
		t.Fatal("reconnected after revocation")
	}
}

func TestEnrollPinMismatchStoresNothing(t *testing.T) {
	cp := startFakeCP(t)
	dir := t.TempDir()
	st := Store{Dir: filepath.Join(dir, "state")}
	_, err := Enroll(context.Background(), EnrollOptions{
		Config: config.Config{GRPCAddress: cp.agentAddr, EnrollmentAddress: cp.enrollAddr, EnrollmentSecret: cp.secret,
			CAFingerprintSHA256: strings.Repeat("ab", 32)},
		Store: st, Collector: &inventory.Collector{SerialOverride: "S"}, Logger: quiet})
	if !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("err = %v, want ErrPinMismatch", err)
	}
	if _, err := st.LoadCredentials(); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("credentials stored after a pin mismatch: %v", err)
	}
	// Wrong secret: Unauthenticated from the server, nothing stored.
	_, err = Enroll(context.Background(), EnrollOptions{
		Config: config.Config{GRPCAddress: cp.agentAddr, EnrollmentAddress: cp.enrollAddr, EnrollmentSecret: "wrong",
			CAFingerprintSHA256: Fingerprint(cp.root.Raw)},
		Store: st, Collector: &inventory.Collector{SerialOverride: "S"}, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("wrong secret: %v", err)
	}
}

// TestResultsSurviveRestartWhileOffline: a result whose delivery was never
// confirmed (no heartbeat ack) is kept on disk, survives an agent restart
// and is announced in the next Hello and resent.
func TestResultsSurviveRestartWhileOffline(t *testing.T) {
	h := newHarness(t)
	h.cp.ackHeartbeat = false
	a, stop := h.start(t)
	waitFor(t, "connected", func() bool { return a.Status().Connected })
	h.cp.cmdCh <- &agentv1.Command{Id: "cmd-1", Type: agentv1.CommandType_COMMAND_TYPE_LOCK, TargetSerial: "SER-1",
		ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))}
	waitFor(t, "result sent", func() bool {
		_, res, _ := h.cp.snapshot()
		return resultFor(res, "cmd-1", agentv1.CommandState_COMMAND_STATE_SIMULATED) != nil
	})
	stop()
	q, err := OpenQueue(filepath.Join(h.stateDir, "results"))
	if err != nil {
		t.Fatal(err)
	}
	pending, _ := q.Pending()
	if len(pending) != 1 || pending[0].GetCommandId() != "cmd-1" || pending[0].GetState() != agentv1.CommandState_COMMAND_STATE_SIMULATED {
		t.Fatalf("pending after stop: %v", pending)
	}

	h.cp.mu.Lock()
	h.cp.ackHeartbeat = true
	h.cp.results = nil
	h.cp.mu.Unlock()
	a2, stop2 := h.start(t)
	defer stop2()
	waitFor(t, "resent after restart and confirmed", func() bool {
		_, res, hellos := h.cp.snapshot()
		last := hellos[len(hellos)-1]
		return len(hellos) >= 2 && len(last.GetPendingResultIds()) == 1 && last.GetPendingResultIds()[0] == "cmd-1" &&
			resultFor(res, "cmd-1", agentv1.CommandState_COMMAND_STATE_SIMULATED) != nil && a2.Status().PendingResults == 0
	})
	if r, ok := q.Get("cmd-1"); !ok || r.GetState() != agentv1.CommandState_COMMAND_STATE_SIMULATED {
		t.Fatal("delivered result not kept for deduplication")
	}
}

// TestQueueInterruptedBecomesFailed: a result a previous run left at
// received or running (or an old agent's acknowledged) becomes FAILED at the
// next start, so the command ends instead of hanging; terminal results stay.
func TestQueueInterruptedBecomesFailed(t *testing.T) {
	h := newHarness(t)
	q, err := OpenQueue(filepath.Join(h.stateDir, "results"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ in, want agentv1.CommandState }{
		"x/../y":   {agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED, agentv1.CommandState_COMMAND_STATE_FAILED},
		"received": {agentv1.CommandState_COMMAND_STATE_RECEIVED, agentv1.CommandState_COMMAND_STATE_FAILED},
		"running":  {agentv1.CommandState_COMMAND_STATE_RUNNING, agentv1.CommandState_COMMAND_STATE_FAILED},
		"done":     {agentv1.CommandState_COMMAND_STATE_DONE, agentv1.CommandState_COMMAND_STATE_DONE},
		"sim":      {agentv1.CommandState_COMMAND_STATE_SIMULATED, agentv1.CommandState_COMMAND_STATE_SIMULATED},
	}
	for id, c := range cases {
		if err := q.Put(&agentv1.CommandResult{CommandId: id, State: c.in}); err != nil {
			t.Fatal(err)
		}
	}
	// Running, and the server confirmed the running: the command still never finished.
	cases["confirmed-running"] = struct{ in, want agentv1.CommandState }{agentv1.CommandState_COMMAND_STATE_RUNNING,
		agentv1.CommandState_COMMAND_STATE_FAILED}
	if err := q.Put(&agentv1.CommandResult{CommandId: "confirmed-running", State: agentv1.CommandState_COMMAND_STATE_RUNNING}); err != nil {
		t.Fatal(err)
	}
	if err := q.MarkDelivered("confirmed-running", agentv1.CommandState_COMMAND_STATE_RUNNING); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Config: config.Config{}, StateDir: h.stateDir, Collector: &inventory.Collector{},
		Planner: actions.NewPlanner(actions.PlannerOptions{}), Runner: h.dry, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.recoverInterrupted(); err != nil {
		t.Fatal(err)
	}
	for id, c := range cases {
		r, ok := q.Get(id)
		if !ok || r.GetState() != c.want {
			t.Fatalf("%s after recovery: %v", id, r)
		}
		if c.want == agentv1.CommandState_COMMAND_STATE_FAILED && !strings.Contains(r.GetError(), "agent restarted before the command finished") {
			t.Fatalf("%s error %q", id, r.GetError())
		}
	}
	entries, _ := os.ReadDir(filepath.Join(h.stateDir, "results", "pending"))
	for _, e := range entries {
		if strings.Contains(e.Name(), "..") {
			t.Fatalf("unsafe queue file name %s", e.Name())
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: 2 * time.Second}
	for i := 0; i < 50; i++ {
		d := b.next()
		if d < 50*time.Millisecond || d > 2*time.Second {
			t.Fatalf("attempt %d: %s out of bounds", i, d)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Fatalf("after reset: %s", d)
	}
}

// TestRenewalAtTwoThirds: a certificate of 6 s is renewed after 4 s with a
// new key; key and chain are replaced together and the stream stays usable.
func TestRenewalAtTwoThirds(t *testing.T) {
	h := newHarness(t)
	h.cp.certLife = 6 * time.Second
	a, st, before := h.connected(t)
	id0, _ := st.LoadIdentity()
	if d := id0.RenewAfter.Sub(id0.NotBefore); d < 3*time.Second || d > 5*time.Second {
		t.Fatalf("renew_after %s after not_before", d)
	}
	waitFor(t, "renewal", func() bool {
		h.cp.mu.Lock()
		defer h.cp.mu.Unlock()
		return h.cp.renewals > 0
	})
	waitFor(t, "renewed identity on disk", func() bool {
		id, err := st.LoadIdentity()
		return err == nil && id.NotAfter.Sub(id0.NotAfter) > 30*time.Minute
	})
	after, err := st.LoadCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if samePublic(after.Key.Public(), before.Key.Public()) {
		t.Fatal("renewal did not rotate the key")
	}
	leaf, _ := x509.ParseCertificate(after.Chain[0])
	if !samePublic(leaf.PublicKey, after.Key.Public()) {
		t.Fatal("stored key does not match the stored certificate")
	}
	// install writes the identity before the status: wait for the status, not sample it.
	waitFor(t, "status updated after renewal", func() bool {
		return !a.Status().CertNotAfter.Before(time.Now().Add(30 * time.Minute))
	})
}

// TestRenewalAfterExpiry: a device that could not renew in time (off, or the server
// unreachable) finds its certificate expired; it renews on the enrollment port with the
// same key, proving possession, and connects again without a new enrollment secret.
func TestRenewalAfterExpiry(t *testing.T) {
	h := newHarness(t)
	h.cp.certLife = 3 * time.Second
	h.cp.mu.Lock()
	h.cp.refuseRenew = true
	h.cp.mu.Unlock()
	a, st, before := h.connected(t)
	waitFor(t, "renewal of the expired certificate", func() bool {
		h.cp.mu.Lock()
		defer h.cp.mu.Unlock()
		return h.cp.expiredRenewals > 0
	})
	waitFor(t, "renewed identity on disk", func() bool {
		id, err := st.LoadIdentity()
		return err == nil && id.NotAfter.After(time.Now().Add(30*time.Minute))
	})
	after, err := st.LoadCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if !samePublic(after.Key.Public(), before.Key.Public()) {
		t.Fatal("renewal after expiry changed the key; it must prove possession of the old one")
	}
	h.cp.mu.Lock()
	mtls := h.cp.renewals
	h.cp.mu.Unlock()
	if mtls != 0 {
		t.Fatalf("%d mTLS renewals went through while refused", mtls)
	}
	waitFor(t, "connected with the renewed certificate", func() bool { return a.Status().Connected })
}

// TestEnrollAndConnectSkipDeadReplica: with a dead replica first in both address lists,
// the agent enrolls on the next enrollment address and streams to the live agent address,
// and its identity keeps the whole list.
func TestEnrollAndConnectSkipDeadReplica(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens here: a replica that is gone
	cfg, err := config.Load(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCAddress, cfg.EnrollmentAddress = "", ""
	cfg.GRPCAddresses = []string{dead, h.cp.agentAddr}
	cfg.EnrollmentAddresses = []string{dead, h.cp.enrollAddr}
	if err := config.Write(h.cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	a, _, _ := h.connected(t)
	if got := a.Status().GRPCAddress; got != h.cp.agentAddr {
		t.Errorf("connected to %q, want %q", got, h.cp.agentAddr)
	}
	id, err := (&Store{Dir: h.stateDir}).LoadIdentity()
	if err != nil || len(id.GRPCAddresses) != 2 || id.GRPCAddresses[1] != h.cp.agentAddr {
		t.Errorf("identity addresses %v (%v)", id.GRPCAddresses, err)
	}
}
