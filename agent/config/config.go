// Package config reads and writes the device agent's configuration file.
//
// The file is JSON, readable by root/SYSTEM only, at a per-OS path
// (DefaultPath):
//
//	Linux    /etc/lanyard/agent.json
//	macOS    /Library/Application Support/Lanyard/agent.json
//	Windows  C:\ProgramData\Lanyard\agent.json
//
// Field names (all optional in the file; Validate says what a given use needs):
//
//	{
//	  "control_plane_url":     "https://lanyard.example.com",  // admin/web URL of the control plane
//	  "grpc_address":          "lanyard.example.com:8443",     // agent gRPC endpoint, mTLS (host:port); default: host of control_plane_url, port 8443
//	  "grpc_addresses":        ["a.example.com:8443", "b.example.com:8443"], // control-plane replicas; the agent fails over between them (grpc_address, when set, is tried with them)
//	  "enrollment_address":    "lanyard.example.com:8444",     // enrollment gRPC endpoint, server TLS only; default: host of grpc_address/control_plane_url, port 8444
//	  "enrollment_addresses":  ["a.example.com:8444", "b.example.com:8444"], // every replica's enrollment endpoint, tried in turn
//	  "ca_fingerprint_sha256": "3f1c…(64 hex)",                // SHA-256 of the control plane's root CA certificate (DER); colons and case ignored
//	  "enrollment_secret":     "lyes_…",                       // per-org enrollment secret; deleted from the file after enrolling unless keep_secret
//	  "keep_secret":           false,                          // keep enrollment_secret after enrolling (to re-enroll later)
//	  "state_dir":             ""                              // override of the state directory (key, certificate, queue)
//	}
//
// Installers build the file with Marshal (or Write) and ship it with mode
// 0600 (Windows: SYSTEM/Administrators only). The agent enrolls from it on
// first start and then calls RemoveSecret.
//
// This package is imported by installers/ and by the agent; it depends only
// on the standard library and agent/internal/securefs.
package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/lanyardhq/lanyard/agent/internal/securefs"
)

// DefaultGRPCPort is the port of the agent gRPC API when grpc_address is
// not set.
const DefaultGRPCPort = "8443"

// DefaultEnrollmentPort is the port of the enrollment service when
// enrollment_address is not set.
const DefaultEnrollmentPort = "8444"

// Config is the agent's configuration file.
type Config struct {
	// ControlPlaneURL is the control plane's base URL, e.g. https://lanyard.example.com.
	ControlPlaneURL string `json:"control_plane_url,omitempty"`
	// GRPCAddress is the agent API endpoint as host:port.
	GRPCAddress string `json:"grpc_address,omitempty"`
	// GRPCAddresses are the agent API endpoints of every control-plane replica (or load
	// balancer). The agent keeps one stream and moves to another address when its replica
	// goes away. Every address must present a certificate that chains to the enrolled CA
	// and names its host, so editing the list on a device cannot point the agent at a
	// server outside the control plane.
	GRPCAddresses []string `json:"grpc_addresses,omitempty"`
	// EnrollmentAddress is the enrollment endpoint as host:port.
	EnrollmentAddress string `json:"enrollment_address,omitempty"`
	// EnrollmentAddresses are the enrollment endpoints of every replica; enrollment tries
	// them in turn (EnrollmentAddress, when set, first).
	EnrollmentAddresses []string `json:"enrollment_addresses,omitempty"`
	// CAFingerprintSHA256 pins the root CA: hex SHA-256 of its DER encoding.
	CAFingerprintSHA256 string `json:"ca_fingerprint_sha256,omitempty"`
	// EnrollmentSecret is the per-org secret exchanged once for a device certificate.
	EnrollmentSecret string `json:"enrollment_secret,omitempty"`
	// KeepSecret keeps EnrollmentSecret in the file after a successful enrollment.
	KeepSecret bool `json:"keep_secret,omitempty"`
	// StateDir overrides DefaultStateDir().
	StateDir string `json:"state_dir,omitempty"`
}

// ErrNotExist is returned by Load when the file does not exist.
var ErrNotExist = errors.New("config: file does not exist")

// Load reads and parses the file at path. Unknown fields are ignored so an
// older agent can read a newer installer's file. The fingerprint is
// normalized (lower-case hex, no colons).
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("%w: %s", ErrNotExist, path)
	}
	if err != nil {
		return Config{}, fmt.Errorf("config: read %s: %w", path, err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("config: parse %s: %w", path, err)
	}
	if c.CAFingerprintSHA256 != "" {
		fp, err := NormalizeFingerprint(c.CAFingerprintSHA256)
		if err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
		c.CAFingerprintSHA256 = fp
	}
	return c, nil
}

// Marshal renders cfg as the file's bytes (indented JSON, trailing newline).
// Installers use it to embed the file in packages.
func Marshal(cfg Config) ([]byte, error) {
	if cfg.CAFingerprintSHA256 != "" {
		fp, err := NormalizeFingerprint(cfg.CAFingerprintSHA256)
		if err != nil {
			return nil, err
		}
		cfg.CAFingerprintSHA256 = fp
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes cfg to path atomically with owner-only permissions (0600;
// Windows: protected DACL for SYSTEM and Administrators). The parent
// directory is created if missing.
func Write(path string, cfg Config) error {
	b, err := Marshal(cfg)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := securefs.MkdirAll(dir); err != nil {
			return err
		}
	}
	return securefs.WriteFile(path, b)
}

// RemoveSecret deletes enrollment_secret from the file at path unless the
// file sets keep_secret. It reports whether the file was changed.
func RemoveSecret(path string) (bool, error) {
	c, err := Load(path)
	if err != nil {
		return false, err
	}
	if c.KeepSecret || c.EnrollmentSecret == "" {
		return false, nil
	}
	c.EnrollmentSecret = ""
	if err := Write(path, c); err != nil {
		return false, err
	}
	return true, nil
}

// NormalizeFingerprint accepts a SHA-256 fingerprint as hex with optional
// colons or spaces and an optional "sha256:" prefix and returns 64
// lower-case hex digits.
func NormalizeFingerprint(fp string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(fp))
	s = strings.TrimPrefix(s, "sha256:")
	s = strings.NewReplacer(":", "", " ", "", "-", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("config: ca_fingerprint_sha256 must be 32 bytes of hex, got %q", fp)
	}
	return s, nil
}

// GRPCTarget returns the host:port of the agent API: GRPCAddress, else the first of
// GRPCAddresses, else the host of ControlPlaneURL with DefaultGRPCPort.
func (c Config) GRPCTarget() (string, error) {
	if c.GRPCAddress == "" && len(c.GRPCAddresses) > 0 {
		c.GRPCAddress = c.GRPCAddresses[0]
	}
	if c.GRPCAddress != "" {
		if _, _, err := net.SplitHostPort(c.GRPCAddress); err != nil {
			return "", fmt.Errorf("config: grpc_address %q: %w", c.GRPCAddress, err)
		}
		return c.GRPCAddress, nil
	}
	if c.ControlPlaneURL == "" {
		return "", errors.New("config: neither grpc_address nor control_plane_url is set")
	}
	u, err := url.Parse(c.ControlPlaneURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("config: control_plane_url %q is not an absolute URL", c.ControlPlaneURL)
	}
	return net.JoinHostPort(u.Hostname(), DefaultGRPCPort), nil
}

// GRPCTargets returns every agent API endpoint: GRPCAddress (when set) then
// GRPCAddresses, without repeats; with neither, the one GRPCTarget derives from
// ControlPlaneURL.
func (c Config) GRPCTargets() ([]string, error) {
	return targets("grpc", c.GRPCAddress, c.GRPCAddresses, c.GRPCTarget)
}

// EnrollmentTargets returns every enrollment endpoint: EnrollmentAddress (when set) then
// EnrollmentAddresses, without repeats; with neither, the one EnrollmentTarget derives.
func (c Config) EnrollmentTargets() ([]string, error) {
	return targets("enrollment", c.EnrollmentAddress, c.EnrollmentAddresses, c.EnrollmentTarget)
}

func targets(what, one string, list []string, derive func() (string, error)) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, a := range append([]string{one}, list...) {
		a = strings.TrimSpace(a)
		if a == "" || seen[a] {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("config: %s address %q: %w", what, a, err)
		}
		seen[a] = true
		out = append(out, a)
	}
	if len(out) > 0 {
		return out, nil
	}
	t, err := derive()
	if err != nil {
		return nil, err
	}
	return []string{t}, nil
}

// HasGRPCAddresses reports whether the file names agent API endpoints itself (rather
// than leaving the agent to use the ones it enrolled with).
func (c Config) HasGRPCAddresses() bool {
	return strings.TrimSpace(c.GRPCAddress) != "" || len(c.GRPCAddresses) > 0
}

// EnrollmentTarget returns the host:port of the enrollment service:
// EnrollmentAddress, else the host of GRPCTarget with DefaultEnrollmentPort.
func (c Config) EnrollmentTarget() (string, error) {
	if c.EnrollmentAddress == "" && len(c.EnrollmentAddresses) > 0 {
		c.EnrollmentAddress = c.EnrollmentAddresses[0]
	}
	if c.EnrollmentAddress != "" {
		if _, _, err := net.SplitHostPort(c.EnrollmentAddress); err != nil {
			return "", fmt.Errorf("config: enrollment_address %q: %w", c.EnrollmentAddress, err)
		}
		return c.EnrollmentAddress, nil
	}
	t, err := c.GRPCTarget()
	if err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(t)
	return net.JoinHostPort(host, DefaultEnrollmentPort), nil
}

// ValidateForEnroll checks that the file has what enrolling needs: an
// endpoint and a secret (and a well-formed fingerprint when one is set).
func (c Config) ValidateForEnroll() error {
	if _, err := c.EnrollmentTargets(); err != nil {
		return err
	}
	if c.EnrollmentSecret == "" {
		return errors.New("config: enrollment_secret is empty")
	}
	if c.ControlPlaneURL != "" {
		u, err := url.Parse(c.ControlPlaneURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("config: control_plane_url %q must be an http(s) URL", c.ControlPlaneURL)
		}
	}
	if c.CAFingerprintSHA256 != "" {
		if _, err := NormalizeFingerprint(c.CAFingerprintSHA256); err != nil {
			return err
		}
	}
	return nil
}

// StateDirectory returns StateDir or DefaultStateDir().
func (c Config) StateDirectory() string {
	if c.StateDir != "" {
		return c.StateDir
	}
	return DefaultStateDir()
}
