package pki

import (
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// TicketPeriod is how long one TLS session-ticket key encrypts new tickets.
const TicketPeriod = 24 * time.Hour

// ticketKeysKept is how many periods' keys still decrypt: a TLS 1.3 ticket lives at most
// 7 days (RFC 8446 §4.6.1), so an agent that connected a week ago still resumes.
const ticketKeysKept = 8

// ErrNoTicketKeys: the intermediate key is not one the keys can be derived from.
var ErrNoTicketKeys = errors.New("pki: session ticket keys need a software intermediate key")

// SessionTicketKeys returns the agent API's TLS session-ticket keys at t: the key of t's
// period first (it encrypts new tickets), then the keys of the periods before it (they
// still decrypt). Every replica derives the same keys from the intermediate key they
// share, so an agent resumes its TLS session on another replica or after a restart
// instead of paying a full handshake, which is most of a reconnect storm's server CPU.
//
// The keys are HKDF outputs under their own label: they reveal nothing about the
// intermediate key. Whoever holds that key can forge tickets, and could already mint
// agent certificates; a resumed identity still goes through the revocation check.
func (ca *CA) SessionTicketKeys(t time.Time) ([][32]byte, error) {
	k, ok := ca.interKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, ErrNoTicketKeys
	}
	secret, err := k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("pki: session ticket keys: %w", err)
	}
	p := TicketPeriodOf(t)
	keys := make([][32]byte, ticketKeysKept)
	for i := range keys {
		b, err := hkdf.Key(sha256.New, secret, nil, fmt.Sprintf("lanyard agent api tls session ticket key, period %d", p-int64(i)), 32)
		if err != nil {
			return nil, fmt.Errorf("pki: session ticket key: %w", err)
		}
		copy(keys[i][:], b)
	}
	return keys, nil
}

// TicketPeriodOf numbers the ticket period that holds t.
func TicketPeriodOf(t time.Time) int64 { return t.Unix() / int64(TicketPeriod/time.Second) }
