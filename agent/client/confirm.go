package client

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// ConfirmationPayload is the byte string the control plane signs for a
// destructive command (identity.ConfirmationPayload; the type name is the
// proto enum name, e.g. COMMAND_TYPE_WIPE).
func ConfirmationPayload(c *agentv1.Command) []byte {
	conf := c.GetConfirmation()
	return identity.ConfirmationPayload(c.GetId(), c.GetType().String(), c.GetTargetSerial(), conf.GetNonce(),
		conf.GetExpiresAt().AsTime())
}

// VerifyConfirmation checks a destructive command's second confirmation:
// not expired, (for a wipe) the admin-typed serial equals the target serial,
// and the signature over ConfirmationPayload is by Lanyard's issuing CA
// chaining to the enrolled roots.
func VerifyConfirmation(c *agentv1.Command, roots *x509.CertPool, now time.Time) error {
	conf := c.GetConfirmation()
	if conf == nil || len(conf.GetSignature()) == 0 {
		return errors.New("client: command carries no confirmation")
	}
	if conf.GetExpiresAt() == nil || now.After(conf.GetExpiresAt().AsTime()) {
		return errors.New("client: confirmation expired")
	}
	if w := c.GetWipe(); w != nil && w.GetConfirmSerial() != c.GetTargetSerial() {
		return errors.New("client: confirm_serial does not equal target_serial")
	}
	return identity.VerifySignature(ConfirmationPayload(c), conf.GetSignature(), conf.GetSignerChainDer(), roots)
}
