package pkg

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"

	"github.com/sassoftware/relic/v7/lib/binpatch"
	"github.com/sassoftware/relic/v7/lib/certloader"
	relicxar "github.com/sassoftware/relic/v7/lib/fruit/xar"
)

// Signing configures product signing of the .pkg with relic (v7.6.2):
// CertFile is the PEM certificate chain (an Apple "Developer ID Installer"
// certificate for distribution) and KeyFile its PEM private key.
//
// The TOC is signed with SHA-1 (xar's classic checksum), the variant bsdtar
// still reads; whether macOS accepts a relic-signed package has not been
// checked on a Mac yet. Notarization needs Apple's web service and is a
// release step, not done here.
type Signing struct {
	CertFile string
	KeyFile  string
}

// Sign returns a signed copy of a .pkg built by Build.
func Sign(ctx context.Context, pkgBytes []byte, s Signing) ([]byte, error) {
	cert, err := certloader.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("pkg: load signing certificate: %w", err)
	}
	patch, _, err := relicxar.Sign(ctx, bytes.NewReader(pkgBytes), cert, crypto.SHA1)
	if err != nil {
		return nil, fmt.Errorf("pkg: sign: %w", err)
	}
	return applyPatch(pkgBytes, patch)
}

// applyPatch applies a relic patch set in memory (relic applies it to files).
func applyPatch(in []byte, p *binpatch.PatchSet) ([]byte, error) {
	idx := make([]int, len(p.Patches))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return p.Patches[idx[a]].Offset < p.Patches[idx[b]].Offset })
	var out bytes.Buffer
	pos := int64(0)
	for _, i := range idx {
		h := p.Patches[i]
		if h.Offset < pos || h.Offset+int64(h.OldSize) > int64(len(in)) || int(h.NewSize) != len(p.Blobs[i]) {
			return nil, errors.New("pkg: malformed signature patch")
		}
		out.Write(in[pos:h.Offset])
		out.Write(p.Blobs[i])
		pos = h.Offset + int64(h.OldSize)
	}
	out.Write(in[pos:])
	return out.Bytes(), nil
}

// Verify checks a signed .pkg: the TOC signature, every file's checksum,
// and that the signer chains to roots. It returns the signing certificate.
func Verify(pkgBytes []byte, roots *x509.CertPool) (*x509.Certificate, error) {
	x, err := relicxar.Open(bytes.NewReader(pkgBytes), int64(len(pkgBytes)))
	if err != nil {
		return nil, fmt.Errorf("pkg: open: %w", err)
	}
	sig, err := x.Verify(false)
	if err != nil {
		return nil, fmt.Errorf("pkg: verify: %w", err)
	}
	leaf := sig.Signature.Certificate
	inter := x509.NewCertPool()
	for _, c := range sig.Signature.Intermediates {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("pkg: signer %q: %w", leaf.Subject.CommonName, err)
	}
	return leaf, nil
}
