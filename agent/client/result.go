package client

import (
	"crypto"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// needsEvidence: the kinds whose every terminal result carries evidence, so
// the server can tell what the device found even when it refused or failed.
func needsEvidence(k actions.Kind) bool {
	return k == actions.Lock || k == actions.Unlock || k == actions.Wipe
}

// resultMessage converts a terminal result for the wire and signs its
// evidence with the device key. A lock, unlock or wipe the Executor refused
// before planning (wrong target, expired, no plan) gets evidence without
// checks, naming the identity the device measured: the server then says
// "evidence is for serial X" instead of guessing.
func (a *Agent) resultMessage(kind actions.Kind, r actions.Result) *agentv1.CommandResult {
	out := resultProto(r)
	ev := r.Evidence
	if ev == nil && needsEvidence(kind) {
		ev = &actions.Evidence{CommandID: r.CommandID, Kind: kind, Serial: a.serial(), HardwareUUID: a.hardwareUUID(),
			CheckedAt: r.Finished, Mode: a.mode}
		if ev.CheckedAt.IsZero() {
			ev.CheckedAt = time.Now().UTC()
		}
	}
	if ev == nil {
		return out
	}
	if err := a.sign(out, ev); err != nil {
		// Sent anyway: an unsigned result is recorded failed by the server
		// with the reason, which beats a command that never ends.
		a.log.Error("could not sign the command result; sending it unsigned", "command_id", r.CommandID, "err", err)
	}
	return out
}

// sign serializes ev deterministically into out.Evidence and signs it with
// the current device key; the signer certificate is the leaf that goes with
// that key (renewal swaps both at once in the certHolder).
func (a *Agent) sign(out *agentv1.CommandResult, ev *actions.Evidence) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(evidenceProto(ev))
	if err != nil {
		return fmt.Errorf("client: marshal evidence: %w", err)
	}
	out.Evidence = b
	cert := a.holder.p.Load()
	if cert == nil || len(cert.Certificate) == 0 {
		return errors.New("client: no device certificate loaded")
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return errors.New("client: device key cannot sign")
	}
	sig, err := identity.SignResult(key, out.GetCommandId(), out.GetState().String(), b)
	if err != nil {
		return err
	}
	out.Signature, out.SignerCertificateDer = sig, cert.Certificate[0]
	return nil
}
