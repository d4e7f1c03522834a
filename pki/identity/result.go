package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ResultPayload is the exact byte string an agent signs for a command result that carries
// evidence (see CommandResult in agent.proto): the state is the enum value name
// (COMMAND_STATE_DONE) and evidence the serialized Evidence message, hashed as sent.
func ResultPayload(commandID, state string, evidence []byte) []byte {
	sum := sha256.Sum256(evidence)
	return []byte("lanyard-result-v1\n" + commandID + "\n" + state + "\n" + hex.EncodeToString(sum[:]))
}

// SignResult signs ResultPayload with the device key (ECDSA P-256, SHA-256, ASN.1).
func SignResult(key crypto.Signer, commandID, state string, evidence []byte) ([]byte, error) {
	sum := sha256.Sum256(ResultPayload(commandID, state, evidence))
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("identity: sign result: %w", err)
	}
	return sig, nil
}

// Errors of VerifyResult.
var (
	ErrResultUnsigned  = errors.New("identity: result carries no signature")
	ErrResultSigner    = errors.New("identity: result signer is not this agent's certificate from Lanyard's CA")
	ErrResultSignature = errors.New("identity: result signature does not verify")
)

// VerifyResult checks an agent's signature over a result: signerDER must be a leaf issued
// by Lanyard's CA (chaining to roots through intermediates) naming agent, and its key must
// have made sig over ResultPayload. The certificate may have expired since it signed
// (results wait in the agent's queue while it is offline), so validity is checked at its
// own NotBefore; revocation is the caller's business.
func VerifyResult(agent Agent, commandID, state string, evidence, sig, signerDER []byte, roots, intermediates *x509.CertPool) error {
	if len(sig) == 0 || len(signerDER) == 0 {
		return ErrResultUnsigned
	}
	cert, err := x509.ParseCertificate(signerDER)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrResultSigner, err)
	}
	at := cert.NotBefore.Add(time.Second)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("%w: %v", ErrResultSigner, err)
	}
	id, err := FromCertificate(cert)
	if err != nil || id != agent {
		return fmt.Errorf("%w: it names %v", ErrResultSigner, id)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: key is not ECDSA", ErrResultSigner)
	}
	sum := sha256.Sum256(ResultPayload(commandID, state, evidence))
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return ErrResultSignature
	}
	return nil
}
