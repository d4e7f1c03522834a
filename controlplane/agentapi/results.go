package agentapi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// streamInfo is what an agent's Hello announced on the stream a result arrives on.
type streamInfo struct {
	deviceID string
	version  string
	mode     store.AgentMode
}

// needsProof: command types whose done must rest on the device's verified evidence.
func needsProof(t string) bool {
	return t == store.CommandLock || t == store.CommandUnlock || t == store.CommandWipe
}

// maxResultJSON caps the raw result stored on a command.
const maxResultJSON = 64 << 10

// openStates are the states an agent's result may move a command out of.
var openStates = []string{store.CommandQueued, store.CommandSent, store.CommandReceived, store.CommandRunning}

// applyResult records an agent's result for a command:
//
//   - ACKNOWLEDGED (agents before RECEIVED existed) and RECEIVED → received, RUNNING → running;
//   - SIMULATED, or any terminal result on a stream whose Hello announced a test knob
//     (dry-run, serial override) → simulated, with the reason;
//   - DONE for lock, unlock and wipe → done only when the evidence verifies (see
//     verifyEvidence), else failed with the precise reason; DONE for message and
//     collect_inventory needs no evidence;
//   - FAILED → failed with the device's error and the checks that failed.
//
// Every transition is audited (TransitionDeviceCommand); a result the command already
// moved past (duplicate, late) is ignored. A result for a command of another org or
// another device is refused with PermissionDenied and writes nothing; any other
// well-formed result, however unexpected, never ends the stream.
func (c *Commands) applyResult(ctx context.Context, agent identity.Agent, si streamInfo, r *agentv1.CommandResult) error {
	cmd, err := c.db.GetDeviceCommand(ctx, agent.OrgID, r.GetCommandId())
	if errors.Is(err, store.ErrNotFound) {
		return status.Error(codes.PermissionDenied, "no such command for this agent")
	}
	if err != nil {
		return grpcError(err)
	}
	if cmd.Channel != store.ChannelAgent || (cmd.AgentID != agent.AgentID && cmd.DeviceID != si.deviceID) {
		return status.Error(codes.PermissionDenied, "no such command for this agent")
	}
	ctx = domain.WithActor(ctx, domain.Actor{ID: "agent:" + agent.AgentID})
	u := store.CommandUpdate{AgentID: agent.AgentID}
	deviceErr := strings.TrimSpace(r.GetError())
	state := r.GetState()
	switch state {
	case agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED, agentv1.CommandState_COMMAND_STATE_RECEIVED:
		u.From, u.To = []string{store.CommandQueued, store.CommandSent}, store.CommandReceived
	case agentv1.CommandState_COMMAND_STATE_RUNNING:
		u.From, u.To = []string{store.CommandQueued, store.CommandSent, store.CommandReceived}, store.CommandRunning
	case agentv1.CommandState_COMMAND_STATE_SIMULATED, agentv1.CommandState_COMMAND_STATE_DONE, agentv1.CommandState_COMMAND_STATE_FAILED:
		u.From = openStates
		c.judge(ctx, agent, si, cmd, r, &u)
		u.Result = resultJSONFor(r)
	default:
		// A state this server does not know (a newer agent) or none: nothing to record,
		// but the admin can see that the device said something.
		c.cfg.Logger.Warn("command result with an unknown state ignored", "command_id", cmd.ID, "agent_id", agent.AgentID, "state", state.String())
		if err := store.WriteAudit(ctx, c.db.SQL, store.AuditFor(ctx, agent.OrgID, "device_command.result_ignored", "device_command", cmd.ID, nil,
			map[string]any{"state": state.String(), "reason": "unknown result state", "agent_id": agent.AgentID})); err != nil {
			return grpcError(err)
		}
		return nil
	}
	if u.Error == "" && deviceErr != "" {
		u.Error = deviceErr
	}
	u.Error = truncate(u.Error, 2000)
	_, err = c.db.TransitionDeviceCommand(ctx, agent.OrgID, cmd.ID, u)
	if errors.Is(err, store.ErrCommandState) {
		return nil // duplicate or late result: the command already moved on
	}
	if err != nil {
		return grpcError(err)
	}
	return nil
}

// judge decides the terminal state of a command from an agent's terminal result.
func (c *Commands) judge(ctx context.Context, agent identity.Agent, si streamInfo, cmd store.DeviceCommand, r *agentv1.CommandResult, u *store.CommandUpdate) {
	state := r.GetState()
	ev, authentic, evErr := c.checkEvidence(ctx, agent, si, cmd, r)
	if ev != nil {
		u.Evidence = evidenceView(ev, authentic)
	}
	deviceErr := strings.TrimSpace(r.GetError())
	switch {
	case state == agentv1.CommandState_COMMAND_STATE_SIMULATED:
		u.To, u.Error = store.CommandSimulated, "simulated: the agent is in dry-run mode (a test build) and ran nothing"
		return
	case si.mode.DryRun:
		u.To, u.Error = store.CommandSimulated, fmt.Sprintf("simulated: the agent announced dry-run mode (a test build), so its %s result does not count", stateWord(state))
		return
	case si.mode.SerialOverridden:
		u.To, u.Error = store.CommandSimulated, fmt.Sprintf("simulated: the agent reports a test-override serial number (a test build), so its %s result does not count", stateWord(state))
		return
	case ev != nil && ev.GetMode().GetDryRun():
		u.To, u.Error = store.CommandSimulated, "simulated: the evidence says the agent ran in dry-run mode"
		return
	case ev != nil && ev.GetMode().GetSerialOverridden():
		u.To, u.Error = store.CommandSimulated, "simulated: the evidence says the agent's serial number is a test override"
		return
	}
	if state == agentv1.CommandState_COMMAND_STATE_FAILED {
		u.To = store.CommandFailed
		msg := deviceErr
		if msg == "" {
			msg = strings.TrimSpace(r.GetMessage())
		}
		if msg == "" {
			msg = "failed on the device"
		}
		if ev != nil {
			if f := failedChecks(ev, msg); f != "" {
				msg += "; " + f
			}
		}
		u.Error = msg
		return
	}
	// DONE.
	if !needsProof(cmd.Type) {
		u.To = store.CommandDone
		return
	}
	if evErr != nil {
		u.To, u.Error = store.CommandFailed, evErr.Error()
		return
	}
	u.To = store.CommandDone
}

func stateWord(s agentv1.CommandState) string {
	switch s {
	case agentv1.CommandState_COMMAND_STATE_DONE:
		return "done"
	case agentv1.CommandState_COMMAND_STATE_FAILED:
		return "failed"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "COMMAND_STATE_"))
}

// errEvidence is a reason evidence does not prove a command, in words for the admin.
type errEvidence string

func (e errEvidence) Error() string { return string(e) }

// checkEvidence decodes and verifies a result's evidence for cmd. It returns the decoded
// evidence (nil when there is none or it does not decode) and why it does not prove the
// command (nil: it does). The checks, in order: there is evidence; it is signed by this
// agent's certificate from Lanyard's CA (identity.VerifyResult), not revoked; it
// decodes; it names this command and the command's target (serial, or hardware UUID for
// a device without one); it has at least one check and every check is ok; a wipe names
// a method the org allows.
//
// authentic reports the first part alone (signed by this agent, unrevoked, for this
// command and target): the API shows it as evidence.verified, also on a failed command
// whose authentic evidence shows a check that did not pass.
func (c *Commands) checkEvidence(ctx context.Context, agent identity.Agent, si streamInfo, cmd store.DeviceCommand, r *agentv1.CommandResult) (ev *agentv1.Evidence, authentic bool, err error) {
	ev, err = c.authenticEvidence(ctx, agent, si, cmd, r)
	if err != nil {
		return ev, false, err
	}
	return ev, true, proves(cmd, ev)
}

// authenticEvidence decodes the evidence and checks who made it and what it is about.
func (c *Commands) authenticEvidence(ctx context.Context, agent identity.Agent, si streamInfo, cmd store.DeviceCommand, r *agentv1.CommandResult) (*agentv1.Evidence, error) {
	raw := r.GetEvidence()
	if len(raw) == 0 {
		v := strings.TrimSpace(si.version)
		if v == "" {
			v = c.agentVersion(ctx, agent)
		}
		if v == "" {
			v = "unknown"
		}
		return nil, errEvidence(fmt.Sprintf("the agent sent no evidence (agent version %s is too old to prove %s; update it)", v, article(cmd.Type)))
	}
	ev := new(agentv1.Evidence)
	decodeErr := proto.Unmarshal(raw, ev)
	if decodeErr != nil {
		ev = nil
	}
	err := identity.VerifyResult(agent, cmd.ID, r.GetState().String(), raw, r.GetSignature(), r.GetSignerCertificateDer(),
		c.ca.RootPool(), c.ca.IntermediatePool())
	switch {
	case errors.Is(err, identity.ErrResultUnsigned):
		return ev, errEvidence("evidence unsigned")
	case errors.Is(err, identity.ErrResultSigner):
		return ev, errEvidence("evidence signed by a certificate that is not this agent's from Lanyard's CA")
	case errors.Is(err, identity.ErrResultSignature):
		return ev, errEvidence("evidence signature does not verify")
	case err != nil:
		return ev, errEvidence("evidence not verified: " + err.Error())
	}
	if revoked, err := c.signerRevoked(ctx, r.GetSignerCertificateDer()); err != nil {
		return ev, errEvidence("evidence signer could not be checked for revocation: " + err.Error())
	} else if revoked {
		return ev, errEvidence("evidence signed by a revoked certificate")
	}
	if decodeErr != nil {
		return nil, errEvidence("evidence does not decode: " + decodeErr.Error())
	}
	if ev.GetCommandId() != cmd.ID {
		return ev, errEvidence(fmt.Sprintf("evidence is for command %q, not %s", ev.GetCommandId(), cmd.ID))
	}
	if want := commandTypes[cmd.Type]; ev.GetType() != agentv1.CommandType_COMMAND_TYPE_UNSPECIFIED && ev.GetType() != want {
		return ev, errEvidence(fmt.Sprintf("evidence is for a %s, the command is a %s", typeWord(ev.GetType()), cmd.Type))
	}
	if measured := identityOf(ev.GetSerialNumber(), ev.GetHardwareUuid()); !sameIdentity(measured, cmd.TargetSerial) {
		what := "serial"
		if strings.TrimSpace(ev.GetSerialNumber()) == "" {
			what = "hardware UUID"
		}
		if measured == "" {
			return ev, errEvidence(fmt.Sprintf("evidence names no serial or hardware UUID, command targets %s", cmd.TargetSerial))
		}
		return ev, errEvidence(fmt.Sprintf("evidence is for %s %s, command targets %s", what, measured, cmd.TargetSerial))
	}
	return ev, nil
}

// proves reports why authentic evidence does not prove cmd (nil: it does): a lock, unlock
// or wipe needs at least one check, every check ok, and a wipe a method the org allows.
func proves(cmd store.DeviceCommand, ev *agentv1.Evidence) error {
	if !needsProof(cmd.Type) {
		return nil
	}
	if len(ev.GetChecks()) == 0 {
		return errEvidence(fmt.Sprintf("evidence has no checks: nothing proves the %s", cmd.Type))
	}
	if f := failedChecks(ev, ""); f != "" {
		return errEvidence(f)
	}
	if cmd.Type == store.CommandWipe {
		switch ev.GetWipeMethod() {
		case "crypto_erase", "remote_wipe_csp":
		case "best_effort":
			if cmd.Params["allow_best_effort"] != "true" {
				return errEvidence("wipe method best_effort, which the organization does not allow (setting wipe_allow_best_effort)")
			}
		case "":
			return errEvidence("evidence names no wipe method")
		default:
			return errEvidence(fmt.Sprintf("unknown wipe method %q", ev.GetWipeMethod()))
		}
	}
	return nil
}

// signerRevoked reports whether Lanyard revoked the certificate that signed a result.
func (c *Commands) signerRevoked(ctx context.Context, der []byte) (bool, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return false, err
	}
	return c.db.IsAgentCertRevoked(ctx, pki.SerialHex(cert))
}

func (c *Commands) agentVersion(ctx context.Context, agent identity.Agent) string {
	a, err := c.db.GetAgent(ctx, agent.OrgID, agent.AgentID)
	if err != nil {
		return ""
	}
	return a.AgentVersion
}

func article(t string) string {
	switch t {
	case store.CommandUnlock:
		return "an unlock"
	case store.CommandWipe:
		return "a wipe"
	}
	return "a " + t
}

func typeWord(t agentv1.CommandType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "COMMAND_TYPE_"))
}

// identityOf and sameIdentity mirror the agent's comparison (agent/actions.Targets): the
// firmware serial, else the hardware UUID; case and surrounding space ignored; two empty
// identities never match.
func identityOf(serial, hardwareUUID string) string {
	if s := strings.TrimSpace(serial); s != "" {
		return s
	}
	return strings.TrimSpace(hardwareUUID)
}

func sameIdentity(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return a != "" && strings.EqualFold(a, b)
}

// failedChecks names every check that failed ("" when none did).
func failedChecks(ev *agentv1.Evidence, said string) string {
	var out []string
	for _, ch := range ev.GetChecks() {
		if ch.GetOk() || (said != "" && strings.Contains(said, ch.GetName()+":")) {
			continue // passed, or the device's own error already names it
		}
		found, want := strings.TrimSpace(ch.GetObserved()), strings.TrimSpace(ch.GetExpected())
		if found == "" {
			found = "nothing"
		}
		s := fmt.Sprintf("check %s failed: found %s", ch.GetName(), found)
		if want != "" {
			s += ", want " + want
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// evidenceView is the evidence as the API shows it.
func evidenceView(ev *agentv1.Evidence, verified bool) *store.CommandEvidence {
	v := &store.CommandEvidence{Verified: verified, SerialNumber: ev.GetSerialNumber(), HardwareUUID: ev.GetHardwareUuid(),
		Checks: []store.CommandCheck{}, WipeMethod: ev.GetWipeMethod(), FinalAction: ev.GetFinalAction(),
		Mode: store.AgentMode{DryRun: ev.GetMode().GetDryRun(), SerialOverridden: ev.GetMode().GetSerialOverridden()}}
	for _, ch := range ev.GetChecks() {
		v.Checks = append(v.Checks, store.CommandCheck{Name: truncate(ch.GetName(), 200), OK: ch.GetOk(),
			Observed: truncate(ch.GetObserved(), 1000), Expected: truncate(ch.GetExpected(), 1000)})
	}
	if ev.GetCheckedAt() != nil {
		t := ev.GetCheckedAt().AsTime().UTC()
		v.CheckedAt = &t
	}
	return v
}

// resultJSONFor is the raw result to keep on the command, within maxResultJSON: step
// outputs go first, then the steps, so the signed evidence stays for a later audit.
func resultJSONFor(r *agentv1.CommandResult) []byte {
	b, err := resultJSON.Marshal(r)
	if err == nil && len(b) <= maxResultJSON {
		return b
	}
	slim := proto.Clone(r).(*agentv1.CommandResult)
	for _, s := range slim.GetSteps() {
		s.Output = truncate(s.GetOutput(), 200)
	}
	if b, err := resultJSON.Marshal(slim); err == nil && len(b) <= maxResultJSON {
		return b
	}
	slim.Steps = nil
	if b, err := resultJSON.Marshal(slim); err == nil && len(b) <= maxResultJSON {
		return b
	}
	return []byte(`{"truncated":true}`)
}
