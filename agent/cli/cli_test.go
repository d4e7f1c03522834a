package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/agent/client"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestInventoryJSON(t *testing.T) {
	t.Setenv(EnvTestSerial, "CLI-SERIAL")
	out, stderr, err := run(t, "inventory", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var inv struct {
		Hostname string `json:"hostname"`
		Hardware struct {
			SerialNumber string `json:"serial_number"`
			SerialSource string `json:"serial_source"`
		} `json:"hardware"`
		Posture struct {
			DiskEncryption string `json:"disk_encryption"`
		} `json:"posture"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if inv.Hostname == "" || inv.Hardware.SerialNumber != "CLI-SERIAL" || inv.Hardware.SerialSource != "override:test" {
		t.Fatalf("inventory %+v", inv)
	}
	if !strings.Contains(stderr, "TEST ONLY") {
		t.Fatalf("no warning about the serial override: %q", stderr)
	}
}

func TestStatusNotEnrolled(t *testing.T) {
	dir := t.TempDir()
	out, _, err := run(t, "status", "--config", filepath.Join(dir, "none.json"), "--state-dir", filepath.Join(dir, "state"))
	if !errors.Is(err, client.ErrNotEnrolled) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out, "enrolled:") || !strings.Contains(out, "no") {
		t.Fatalf("output %q", out)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"enroll", "--config", filepath.Join(dir, "a.json"), "--state-dir", dir},                       // no URL, no secret
		{"enroll", "--config", filepath.Join(dir, "a.json"), "--url", "https://x", "--state-dir", dir}, // no secret
		{"enroll", "--config", filepath.Join(dir, "a.json"), "--url", "https://x", "--secret", "s", "--ca-fingerprint", "zz"},
	} {
		if _, _, err := run(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if out, _, err := run(t, "version"); err != nil || strings.TrimSpace(out) != Version {
		t.Fatalf("version = %q, %v", out, err)
	}
}
