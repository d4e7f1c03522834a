package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
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
	if out, _, err := run(t, "version"); err != nil || !strings.HasPrefix(out, Version) ||
		strings.Contains(out, "test build") != TestBuild {
		t.Fatalf("version = %q, %v (test build %v)", out, err, TestBuild)
	}
}

type inventoryOut struct {
	Hostname string `json:"hostname"`
	Hardware struct {
		SerialNumber string `json:"serial_number"`
		SerialSource string `json:"serial_source"`
		HardwareUUID string `json:"hardware_uuid"`
	} `json:"hardware"`
	Posture struct {
		DiskEncryption string `json:"disk_encryption"`
	} `json:"posture"`
}

func inventoryJSON(t *testing.T) (inventoryOut, string) {
	t.Helper()
	out, stderr, err := run(t, "inventory", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var inv inventoryOut
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if inv.Hostname == "" || inv.Posture.DiskEncryption == "" {
		t.Fatalf("inventory %+v", inv)
	}
	return inv, stderr
}

// TestStatusShowsHeldLockAndKnobs: status says the device is held locked
// (from held-lock.json, even with the agent stopped) and which test knobs the
// running agent announced.
func TestStatusShowsHeldLockAndKnobs(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"status", "--config", filepath.Join(dir, "none.json"), "--state-dir", state}
	out, _, _ := run(t, args...)
	if !strings.Contains(out, "locked:") || !strings.Contains(out, "no") {
		t.Fatalf("not locked: %q", out)
	}
	os.WriteFile(filepath.Join(state, "held-lock.json"), []byte(`{"command_id":"cmd-7","locked_at":"2026-01-02T03:04:05Z"}`), 0o600)
	os.WriteFile(filepath.Join(state, "status.json"), []byte(`{"version":"t","dry_run":true,"serial_overridden":true}`), 0o600)
	out, _, _ = run(t, args...)
	if !strings.Contains(out, "yes, by command cmd-7") || !strings.Contains(out, "TEST BUILD: dry-run") ||
		!strings.Contains(out, "serial override") {
		t.Fatalf("status output %q", out)
	}
	js, _, _ := run(t, append(args, "--json")...)
	var st struct {
		Locked   bool `json:"locked"`
		HeldLock struct {
			CommandID string `json:"command_id"`
		} `json:"held_lock"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || !st.Locked || st.HeldLock.CommandID != "cmd-7" {
		t.Fatalf("status --json %s (%v)", js, err)
	}
}
