package identity

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ConfirmationPayload is the exact byte string the control plane signs for a destructive
// command's second confirmation (see Confirmation in agent.proto).
func ConfirmationPayload(commandID, commandType, targetSerial, nonce string, expiresAt time.Time) []byte {
	return []byte("lanyard-command-v1\n" + commandID + "\n" + commandType + "\n" + targetSerial + "\n" + nonce + "\n" +
		strconv.FormatInt(expiresAt.Unix(), 10))
}

// VerifySignature checks an ECDSA P-256/SHA-256 signature over data by the first
// certificate of chain (DER), which must chain to roots and be a CA certificate issued by
// Lanyard's CA (the intermediate).
func VerifySignature(data, sig []byte, chain [][]byte, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("identity: no signer certificate")
	}
	signer, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("identity: parse signer: %w", err)
	}
	inter := x509.NewCertPool()
	for _, der := range chain[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("identity: parse chain: %w", err)
		}
		inter.AddCert(c)
	}
	if !signer.IsCA {
		return errors.New("identity: signer is not Lanyard's issuing CA")
	}
	if _, err := signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("identity: signer does not chain to the enrolled root: %w", err)
	}
	pub, ok := signer.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("identity: signer key is not ECDSA")
	}
	sum := sha256.Sum256(data)
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return errors.New("identity: bad signature")
	}
	return nil
}
