package pkg

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/installers/internal/testutil"
	"github.com/lanyardhq/lanyard/installers/pkg/xar"
)

func TestSignVerify(t *testing.T) {
	var buf bytes.Buffer
	if err := Build(&buf, Input{Version: "1.0.0", Archs: []string{"arm64"}, Binary: []byte("bin"),
		Config: []byte(`{"enrollment_secret":"x"}`), Mtime: time.Unix(1764000000, 0)}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := testutil.CodeSigningCert(t, dir)
	signed, err := Sign(context.Background(), buf.Bytes(), Signing{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := os.ReadFile(certFile)
	blk, _ := pem.Decode(pemBytes)
	ca, _ := x509.ParseCertificate(blk.Bytes)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	leaf, err := Verify(signed, roots)
	if err != nil {
		t.Fatalf("signed package does not verify: %v", err)
	}
	if leaf.Subject.CommonName != "Lanyard Test Code Signing" {
		t.Errorf("signer = %q", leaf.Subject.CommonName)
	}
	if _, err := Verify(buf.Bytes(), roots); err == nil {
		t.Error("unsigned package verified")
	}
	if _, err := Verify(signed, x509.NewCertPool()); err == nil {
		t.Error("package verified against an unrelated root")
	}
	// Tampering with the payload breaks the per-file checksums.
	bad := append([]byte(nil), signed...)
	bad[len(bad)-10] ^= 0xff
	if _, err := Verify(bad, roots); err == nil {
		t.Error("tampered package verified")
	}
	// Our own reader and bsdtar still read the signed archive.
	if _, toc, err := xar.Read(signed); err != nil || !strings.Contains(toc, "<signature") {
		t.Errorf("xar.Read of the signed package: %v (signature in TOC: %v)", err, strings.Contains(toc, "<signature"))
	}
	if _, err := exec.LookPath("bsdtar"); err == nil {
		p := filepath.Join(dir, "signed.pkg")
		_ = os.WriteFile(p, signed, 0o644)
		if out, err := exec.Command("bsdtar", "-tf", p).CombinedOutput(); err != nil || !strings.Contains(string(out), "base.pkg/Payload") {
			t.Errorf("bsdtar -tf signed.pkg: %v\n%s", err, out)
		}
	}
}
