package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// ErrPinMismatch: no certificate the server presented matches the pinned
// CA fingerprint.
var ErrPinMismatch = errors.New("client: server's CA does not match ca_fingerprint_sha256")

// pinCheck records how the enrollment server's chain was checked.
type pinCheck struct {
	mu       sync.Mutex
	verified bool     // a presented certificate matched the pin and the chain verified
	observed [][]byte // the presented chain, for the post-enrollment check
	host     string
}

// enrollmentTLS verifies the enrollment server, which has no publicly trusted
// certificate, by the pinned root CA fingerprint. When the server presents
// the pinned certificate in its chain, the chain is verified against it
// during the handshake. When it presents only leaf and intermediate (the
// root is not sent), the handshake is allowed and Enroll verifies the
// recorded chain against the pinned root from the enrollment response
// before it stores anything (finish). Without a pin the chain is trusted on
// first use and a warning is logged.
func enrollmentTLS(addr, pin string, log *slog.Logger) (*tls.Config, *pinCheck, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("client: enrollment address %q: %w", addr, err)
	}
	pc := &pinCheck{host: host}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         host,
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pc.mu.Lock()
			defer pc.mu.Unlock()
			pc.observed = raw
			if pin != "" && !pinIn(pin, raw) {
				return nil // checked by finish against the enrolled roots
			}
			if err := verifyPinned(raw, host, pin, log); err != nil {
				return err
			}
			pc.verified = pin != ""
			return nil
		},
	}, pc, nil
}

// finish completes the pin check after enrollment: roots must contain the
// pinned certificate, and the chain the server presented must verify
// against it.
func (pc *pinCheck) finish(pin string, roots [][]byte) error {
	if pin == "" {
		return nil
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.verified {
		return nil
	}
	for _, der := range roots {
		if Fingerprint(der) != pin {
			continue
		}
		return verifyPinned(append(append([][]byte(nil), pc.observed...), der), pc.host, pin, nil)
	}
	return ErrPinMismatch
}

func verifyPinned(raw [][]byte, host, pin string, log *slog.Logger) error {
	if len(raw) == 0 {
		return errors.New("client: server presented no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("client: parse server certificate: %w", err)
		}
		certs[i] = c
	}
	anchor := -1
	if pin == "" {
		anchor = len(certs) - 1
		if log == nil {
			log = slog.Default()
		}
		log.Warn("no ca_fingerprint_sha256 configured: trusting the enrollment server's chain on first use",
			"anchor_sha256", Fingerprint(raw[anchor]))
	} else {
		for i, der := range raw {
			if Fingerprint(der) == pin {
				anchor = i
			}
		}
		if anchor < 0 {
			return ErrPinMismatch
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(certs[anchor])
	inter := x509.NewCertPool()
	for i := 1; i < anchor; i++ {
		inter.AddCert(certs[i])
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if anchor == 0 {
		// The pinned certificate is the server's own: nothing to chain.
		if err := certs[0].VerifyHostname(host); err != nil {
			return fmt.Errorf("client: enrollment server: %w", err)
		}
		return nil
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return fmt.Errorf("client: enrollment server certificate: %w", err)
	}
	return nil
}

// certHolder lets renewal swap the client certificate under a live
// tls.Config.
type certHolder struct {
	p atomic.Pointer[tls.Certificate]
}

func (h *certHolder) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := h.p.Load()
	if c == nil {
		return nil, errors.New("client: no client certificate")
	}
	return c, nil
}
