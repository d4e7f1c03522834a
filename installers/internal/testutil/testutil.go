// Package testutil holds helpers shared by the installers tests: a small
// Go program cross-compiled per OS/arch (a stand-in agent binary) and a
// throwaway Authenticode code-signing certificate.
package testutil

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const helloSrc = `package main

import "fmt"

func main() { fmt.Println("lanyard-agent stand-in") }
`

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	dirs    []string
)

// TempDir makes a directory that lives until Cleanup (for artifacts that
// are built once and shared by several tests).
func TempDir() (string, error) {
	d, err := os.MkdirTemp("", "lanyard-installers-")
	if err == nil {
		buildMu.Lock()
		dirs = append(dirs, d)
		buildMu.Unlock()
	}
	return d, err
}

// Cleanup removes what GoBinary and TempDir created; call it from TestMain.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
	dirs = nil
	built = map[string]string{}
}

// GoBinary cross-compiles a tiny program for goos/goarch once per test
// binary run and returns its path. It stands in for cmd/lanyard-agent in
// tests of the package formats.
func GoBinary(t testing.TB, goos, goarch string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := goos + "/" + goarch
	if p, ok := built[key]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "lanyard-installers-bin-")
	if err != nil {
		t.Fatal(err)
	}
	dirs = append(dirs, dir)
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(helloSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello-"+goos+"-"+goarch)
	if goos == "windows" {
		out += ".exe"
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", key, err, b)
	}
	built[key] = out
	return out
}

// CodeSigningCert writes a self-signed RSA code-signing certificate and
// its key as PEM files in dir and returns their paths.
func CodeSigningCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "Lanyard Test Code Signing", Organization: []string{"Lanyard Test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "codesign.pem")
	keyFile = filepath.Join(dir, "codesign.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Tampered writes a copy of path with one byte flipped at the middle and
// returns the copy's path.
func Tampered(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x5a
	out := path + ".tampered"
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// Need skips the test when a command is missing.
func Need(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed (apt-get install rpm cpio libarchive-tools msitools wixl osslsigncode)", c)
		}
	}
}
