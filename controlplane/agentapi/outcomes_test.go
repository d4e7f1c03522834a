package agentapi_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/controlplane/agentapi"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// evidenceFor is what an honest agent measured after running c: its own identity (the
// target), one check per fact, all ok; a wipe names crypto_erase.
func evidenceFor(c *agentv1.Command) *agentv1.Evidence {
	ev := &agentv1.Evidence{CommandId: c.GetId(), Type: c.GetType(), SerialNumber: c.GetTargetSerial(), HardwareUuid: "uuid-x",
		Checks:    []*agentv1.Check{{Name: "account-locked:ada", Ok: true, Observed: "locked", Expected: "locked"}},
		CheckedAt: timestamppb.Now(), Mode: &agentv1.AgentMode{}}
	if c.GetType() == agentv1.CommandType_COMMAND_TYPE_WIPE {
		ev.WipeMethod, ev.FinalAction = "crypto_erase", "power-off"
		ev.Checks = []*agentv1.Check{{Name: "luks-keyslots-destroyed:/dev/sda3", Ok: true, Observed: "0 key slots", Expected: "0 key slots"}}
	}
	return ev
}

// signed is a result in state carrying ev, signed with key as certificate der.
func signed(t testing.TB, id string, state agentv1.CommandState, ev *agentv1.Evidence, key crypto.Signer, der []byte) *agentv1.CommandResult {
	t.Helper()
	raw, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := identity.SignResult(key, id, state.String(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return &agentv1.CommandResult{CommandId: id, State: state, Evidence: raw, Signature: sig, SignerCertificateDer: der, FinishedAt: timestamppb.Now()}
}

func (a enrolledAgent) key() crypto.Signer { return a.Cert.PrivateKey.(crypto.Signer) }
func (a enrolledAgent) der() []byte        { return a.Cert.Certificate[0] }

func res(id string, s agentv1.CommandState) *agentv1.CommandResult {
	return &agentv1.CommandResult{CommandId: id, State: s}
}

// honestResults are a current agent's answers: received, running, then done (with signed
// evidence for lock, unlock and wipe; an old agent's acknowledged + done otherwise).
func honestResults(t testing.TB, ag enrolledAgent, c *agentv1.Command) []*agentv1.CommandResult {
	switch c.GetType() {
	case agentv1.CommandType_COMMAND_TYPE_LOCK, agentv1.CommandType_COMMAND_TYPE_UNLOCK, agentv1.CommandType_COMMAND_TYPE_WIPE:
		return []*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState_COMMAND_STATE_RECEIVED),
			res(c.GetId(), agentv1.CommandState_COMMAND_STATE_RUNNING),
			signed(t, c.GetId(), agentv1.CommandState_COMMAND_STATE_DONE, evidenceFor(c), ag.key(), ag.der())}
	}
	return []*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED),
		{CommandId: c.GetId(), State: agentv1.CommandState_COMMAND_STATE_DONE,
			Steps: []*agentv1.CommandStep{{Name: "show", Status: agentv1.StepStatus_STEP_STATUS_OK}}}}
}

// foreignCA is a CA that is not Lanyard's: a leaf it issues names the right agent.
func foreignCA(t *testing.T, id identity.Agent) (crypto.Signer, []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Not Lanyard"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	leaf := forgeCert(t, id, ca, caKey, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	return leaf.PrivateKey.(crypto.Signer), leaf.Certificate[0]
}

// TestCommandOutcomes drives each way a result can end over a real stream: only a DONE
// whose evidence verifies for this agent, command and device, with every check ok, is
// done; everything else ends failed or simulated with a reason an admin can act on.
func TestCommandOutcomes(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := domain.WithActor(context.Background(), domain.Actor{ID: "token:test"})
		e := newEnv(t, db, domain.PlanPro)
		ag, dev := linkedAgent(t, e, "SN-OUT")
		other, _ := linkedAgent(t, e, "SN-OTHER")
		id := identity.Agent{OrgID: e.org.ID, AgentID: ag.ID}
		forKey, forDER := foreignCA(t, id)
		// A certificate of this agent that Lanyard issued and then revoked (the agent
		// renewed with the same key; the old serial was revoked on its own).
		renewed, err := e.agentClient(&ag.Cert).Renew(ctx, &agentv1.RenewRequest{})
		if err != nil {
			t.Fatal(err)
		}
		oldCert, _ := x509.ParseCertificate(ag.der())
		if err := db.RevokeAgentCert(ctx, pki.SerialHex(oldCert), "superseded", time.Now()); err != nil {
			t.Fatal(err)
		}
		ag.Cert = tls.Certificate{Certificate: renewed.GetCertificate().GetChainDer(), PrivateKey: ag.Cert.PrivateKey}

		done := agentv1.CommandState_COMMAND_STATE_DONE
		mod := func(f func(*agentv1.Evidence)) func(*agentv1.Command) *agentv1.Evidence {
			return func(c *agentv1.Command) *agentv1.Evidence { ev := evidenceFor(c); f(ev); return ev }
		}
		release := &agentv1.Hello{AgentVersion: "1.1.0"}
		tests := []struct {
			name    string
			typ     string
			hello   *agentv1.Hello
			results func(c *agentv1.Command) []*agentv1.CommandResult
			state   string
			reason  string // substring of the command's error
			checks  int    // evidence checks stored (-1: no evidence)
			exact   bool   // reason is the whole error, not a part of it
			verify  bool   // evidence.verified: authentic (this agent, this command and target), whatever it proves
			audit   string // the audit trail's states after sent
		}{
			{name: "received, running, done with signed evidence", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult { return honestResults(t, ag, c) },
				state:   store.CommandDone, checks: 1, verify: true, audit: "received running done"},
			{name: "unlock done with signed evidence", typ: store.CommandUnlock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult { return honestResults(t, ag, c) },
				state:   store.CommandDone, checks: 1, verify: true, audit: "received running done"},
			{name: "done unsigned", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					r := signed(t, c.GetId(), done, evidenceFor(c), ag.key(), ag.der())
					r.Signature, r.SignerCertificateDer = nil, nil
					return []*agentv1.CommandResult{r}
				}, state: store.CommandFailed, reason: "evidence unsigned", checks: 1, audit: "failed"},
			{name: "signed by another agent's certificate", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, evidenceFor(c), other.key(), other.der())}
				}, state: store.CommandFailed, reason: "not this agent's from Lanyard's CA", checks: 1},
			{name: "signed by another CA's certificate", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, evidenceFor(c), forKey, forDER)}
				}, state: store.CommandFailed, reason: "not this agent's from Lanyard's CA", checks: 1},
			{name: "signed by a revoked certificate", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, evidenceFor(c), ag.key(), oldCert.Raw)}
				}, state: store.CommandFailed, reason: "revoked certificate", checks: 1},
			{name: "evidence changed after signing", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					r := signed(t, c.GetId(), done, evidenceFor(c), ag.key(), ag.der())
					ev := evidenceFor(c)
					ev.Checks = append(ev.Checks, &agentv1.Check{Name: "extra", Ok: true})
					r.Evidence, _ = proto.Marshal(ev)
					return []*agentv1.CommandResult{r}
				}, state: store.CommandFailed, reason: "signature does not verify", checks: 2},
			{name: "evidence for another command", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, mod(func(ev *agentv1.Evidence) { ev.CommandId = "cmd-elsewhere" })(c), ag.key(), ag.der())}
				}, state: store.CommandFailed, reason: `evidence is for command "cmd-elsewhere"`, checks: 1},
			{name: "evidence for another serial", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, mod(func(ev *agentv1.Evidence) { ev.SerialNumber = "SN-ELSE" })(c), ag.key(), ag.der())}
				}, state: store.CommandFailed, reason: "evidence is for serial SN-ELSE, command targets SN-OUT", checks: 1},
			{name: "serial in another case and spacing is the same device", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, mod(func(ev *agentv1.Evidence) { ev.SerialNumber = " sn-out " })(c), ag.key(), ag.der())}
				}, state: store.CommandDone, checks: 1, verify: true},
			{name: "a failed check", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, mod(func(ev *agentv1.Evidence) {
						ev.Checks = append(ev.Checks, &agentv1.Check{Name: "pam-account-deny", Ok: false, Observed: "no deny rule", Expected: "deny rule for non-root"})
					})(c), ag.key(), ag.der())}
				}, state: store.CommandFailed, reason: "check pam-account-deny failed: found no deny rule, want deny rule for non-root", checks: 2, verify: true},
			{name: "no checks", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, mod(func(ev *agentv1.Evidence) { ev.Checks = nil })(c), ag.key(), ag.der())}
				}, state: store.CommandFailed, reason: "evidence has no checks", checks: 0, verify: true},
			{name: "failed on the device with its checks", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					r := signed(t, c.GetId(), agentv1.CommandState_COMMAND_STATE_FAILED, mod(func(ev *agentv1.Evidence) {
						ev.Checks[0].Ok, ev.Checks[0].Observed = false, "unlocked"
					})(c), ag.key(), ag.der())
					r.Error = "usermod --lock ada: exit status 1"
					return []*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState_COMMAND_STATE_RECEIVED), r}
				}, state: store.CommandFailed, reason: "usermod --lock ada: exit status 1; check account-locked:ada failed: found unlocked, want locked", checks: 1, verify: true},
			{name: "failed on the device, its error already naming the check", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					r := signed(t, c.GetId(), agentv1.CommandState_COMMAND_STATE_FAILED, mod(func(ev *agentv1.Evidence) {
						ev.Checks[0].Ok, ev.Checks[0].Observed = false, "unlocked"
					})(c), ag.key(), ag.der())
					r.Error = `actions: outcome not verified: account-locked:ada: found "unlocked", want "locked"`
					return []*agentv1.CommandResult{r}
				}, state: store.CommandFailed, reason: `actions: outcome not verified: account-locked:ada: found "unlocked", want "locked"`, exact: true, checks: 1, verify: true},
			{name: "simulated", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState_COMMAND_STATE_SIMULATED)}
				}, state: store.CommandSimulated, reason: "dry-run", checks: -1},
			{name: "dry-run announced, then a valid done", typ: store.CommandLock, hello: &agentv1.Hello{AgentVersion: "1.1.0-test", Mode: &agentv1.AgentMode{DryRun: true}},
				results: func(c *agentv1.Command) []*agentv1.CommandResult { return honestResults(t, ag, c) },
				state:   store.CommandSimulated, reason: "announced dry-run mode", checks: 1, verify: true},
			{name: "serial override announced, then a valid done", typ: store.CommandWipe, hello: &agentv1.Hello{AgentVersion: "1.1.0-test", Mode: &agentv1.AgentMode{SerialOverridden: true}},
				results: func(c *agentv1.Command) []*agentv1.CommandResult { return honestResults(t, ag, c) },
				state:   store.CommandSimulated, reason: "test-override serial", checks: 1, verify: true},
			{name: "evidence says dry-run", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, mod(func(ev *agentv1.Evidence) { ev.Mode.DryRun = true })(c), ag.key(), ag.der())}
				}, state: store.CommandSimulated, reason: "evidence says the agent ran in dry-run mode", checks: 1, verify: true},
			{name: "old agent: acknowledged, done without evidence for a lock", typ: store.CommandLock, hello: &agentv1.Hello{AgentVersion: "0.9.0"},
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED), res(c.GetId(), done)}
				}, state: store.CommandFailed, reason: "the agent sent no evidence (agent version 0.9.0 is too old to prove a lock; update it)", checks: -1,
				audit: "received failed"},
			{name: "old agent: acknowledged, done for a message", typ: store.CommandMessage, hello: &agentv1.Hello{AgentVersion: "0.9.0"},
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED), res(c.GetId(), done)}
				}, state: store.CommandDone, checks: -1, audit: "received done"},
			{name: "wipe crypto-erase done", typ: store.CommandWipe, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult { return honestResults(t, ag, c) },
				state:   store.CommandDone, checks: 1, verify: true},
			{name: "best-effort wipe the org does not allow", typ: store.CommandWipe, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return []*agentv1.CommandResult{signed(t, c.GetId(), done, mod(func(ev *agentv1.Evidence) { ev.WipeMethod = "best_effort" })(c), ag.key(), ag.der())}
				}, state: store.CommandFailed, reason: "wipe_allow_best_effort", checks: 1, verify: true},
			{name: "unknown state, then a late failure after done", typ: store.CommandLock, hello: release,
				results: func(c *agentv1.Command) []*agentv1.CommandResult {
					return append([]*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState(42))}, append(honestResults(t, ag, c),
						res(c.GetId(), agentv1.CommandState_COMMAND_STATE_FAILED), res(c.GetId(), agentv1.CommandState_COMMAND_STATE_RUNNING))...)
				}, state: store.CommandDone, checks: 1, verify: true, audit: "result_ignored received running done"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var last *agentv1.Command
				sim, stop := e.connectWith(t, ag, tc.hello, func(c *agentv1.Command) []*agentv1.CommandResult { last = c; return tc.results(c) })
				defer stop()
				req := agentapi.SubmitRequest{Type: tc.typ}
				switch tc.typ {
				case store.CommandWipe:
					req.Confirm = "SN-OUT"
				case store.CommandMessage:
					req.Params = map[string]string{"body": "hello"}
				}
				cmd, _, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, req)
				if err != nil {
					t.Fatal(err)
				}
				waitTerminal(t, db, e.org.ID, cmd.ID)
				// Whatever the agent sent after the terminal result must not change it.
				sim.sync(t)
				got, err := db.GetDeviceCommand(ctx, e.org.ID, cmd.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != tc.state || !strings.Contains(got.Error, tc.reason) || (tc.exact && got.Error != tc.reason) {
					t.Fatalf("state %s error %q, want %s with %q", got.State, got.Error, tc.state, tc.reason)
				}
				if tc.state == store.CommandDone && got.Error != "" {
					t.Fatalf("done with an error: %q", got.Error)
				}
				if last == nil || last.GetId() != cmd.ID {
					t.Fatalf("delivered %v", last)
				}
				switch {
				case tc.checks < 0 && got.Evidence != nil:
					t.Fatalf("evidence stored: %+v", got.Evidence)
				case tc.checks >= 0 && (got.Evidence == nil || len(got.Evidence.Checks) != tc.checks || got.Evidence.Verified != tc.verify):
					t.Fatalf("evidence %+v, want %d checks verified=%v", got.Evidence, tc.checks, tc.verify)
				}
				if tc.checks > 0 && got.Evidence.Checks[0].Name == "" {
					t.Fatalf("check without a name: %+v", got.Evidence)
				}
				if tc.audit != "" {
					var seen []string
					for _, a := range storetest.AuditActions(t, db, e.org.ID, cmd.ID) {
						switch a {
						case "device_command.queued", "device_command.sent":
						default:
							seen = append(seen, strings.TrimPrefix(a, "device_command."))
						}
					}
					if strings.Join(seen, " ") != tc.audit {
						t.Fatalf("audit %v, want %s", seen, tc.audit)
					}
				}
				// The stream survived whatever the agent sent.
				select {
				case <-sim.done:
					t.Fatalf("stream ended: %v", sim.err)
				default:
				}
			})
		}
	})
}

func waitTerminal(t *testing.T, db *store.DB, orgID, id string) store.DeviceCommand {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := db.GetDeviceCommand(context.Background(), orgID, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Terminal() {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s is still %s", id, c.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReceivedNeverAnswered: an agent that received a lock and never answers ends
// expired, with a reason, when the command's deadline passes.
func TestReceivedNeverAnswered(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		ag, dev := linkedAgent(t, e, "SN-SILENT")
		_, stop := e.connectWith(t, ag, &agentv1.Hello{AgentVersion: "1.1.0"}, func(c *agentv1.Command) []*agentv1.CommandResult {
			return []*agentv1.CommandResult{res(c.GetId(), agentv1.CommandState_COMMAND_STATE_RECEIVED)}
		})
		defer stop()
		cmd, _, err := e.srv.Commands.Submit(ctx, e.org, dev.ID, agentapi.SubmitRequest{Type: store.CommandLock, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, db, e.org.ID, cmd.ID, store.CommandReceived)
		if n, err := db.ExpireDeviceCommands(ctx, time.Now()); err != nil || n != 0 {
			t.Fatalf("expired %d before the deadline (%v)", n, err)
		}
		if n, err := db.ExpireDeviceCommands(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
			t.Fatalf("expired %d (%v)", n, err)
		}
		got, _ := db.GetDeviceCommand(ctx, e.org.ID, cmd.ID)
		if got.State != store.CommandExpired || !strings.Contains(got.Error, "received the command but never reported a result") {
			t.Fatalf("%s %q", got.State, got.Error)
		}
		// A result after the expiry changes nothing.
		tail := storetest.AuditActions(t, db, e.org.ID, cmd.ID)
		if tail[len(tail)-1] != "device_command.expired" {
			t.Fatalf("audit %v", tail)
		}
	})
}

// TestMacWithoutMDMFailsAtOnce: a lock, unlock or wipe for a Mac that has only the agent
// is created failed with the reason, audited, and never sent to the agent.
func TestMacWithoutMDMFailsAtOnce(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		mac := storetest.Device(t, db, e.org.ID, "C02MAC")
		secret, _ := e.secret(e.org.ID, enrollment.Options{})
		ag := e.enroll(secret, "C02MAC", "uuid-mac")
		if _, err := e.agentClient(&ag.Cert).ReportInventory(ctx, inventory("C02MAC")); err != nil {
			t.Fatal(err)
		}
		sim, stop := e.connect(t, ag, true)
		defer stop()
		for _, req := range []agentapi.SubmitRequest{{Type: store.CommandLock}, {Type: store.CommandUnlock}, {Type: store.CommandWipe, Confirm: "C02MAC"}} {
			cmd, created, err := e.srv.Commands.Submit(ctx, e.org, mac.ID, req)
			if err != nil || !created {
				t.Fatalf("%s: %v", req.Type, err)
			}
			if cmd.State != store.CommandFailed || cmd.Error != agentapi.MacNeedsMDM || cmd.CompletedAt == nil {
				t.Fatalf("%s: %s %q", req.Type, cmd.State, cmd.Error)
			}
			if a := storetest.AuditActions(t, db, e.org.ID, cmd.ID); len(a) != 1 || a[0] != "device_command.failed" {
				t.Fatalf("%s: audit %v", req.Type, a)
			}
		}
		// A message still goes to the agent; nothing else was delivered.
		msg, _, err := e.srv.Commands.Submit(ctx, e.org, mac.ID, agentapi.SubmitRequest{Type: store.CommandMessage, Params: map[string]string{"body": "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := <-sim.cmds; got.GetId() != msg.ID {
			t.Fatalf("the agent got %s (%s)", got.GetId(), got.GetType())
		}
		waitState(t, db, e.org.ID, msg.ID, store.CommandDone)
	})
}

// TestUnknownCommandResultRefused: a result for a command the agent was never given is
// refused (PermissionDenied) and changes nothing; the command of another device stays.
func TestUnknownCommandResultRefused(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, domain.PlanPro)
		ag, _ := linkedAgent(t, e, "SN-A1")
		_, devB := linkedAgent(t, e, "SN-B1")
		cmd, _, err := e.srv.Commands.Submit(ctx, e.org, devB.ID, agentapi.SubmitRequest{Type: store.CommandLock})
		if err != nil {
			t.Fatal(err)
		}
		sim, stop := e.connectWith(t, ag, &agentv1.Hello{AgentVersion: "1.1.0"}, nil)
		defer stop()
		_ = sim.send(signed(t, cmd.ID, agentv1.CommandState_COMMAND_STATE_DONE, &agentv1.Evidence{CommandId: cmd.ID, SerialNumber: "SN-B1",
			Checks: []*agentv1.Check{{Name: "x", Ok: true}}}, ag.key(), ag.der()))
		<-sim.done
		wantCode(t, sim.err, codes.PermissionDenied)
		if c, _ := db.GetDeviceCommand(ctx, e.org.ID, cmd.ID); c.Terminal() {
			t.Fatalf("another device's agent finished the command: %s", c.State)
		}
	})
}
