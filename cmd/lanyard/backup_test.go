package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/secrets"
)

// The admin backup and restore commands: required flags, the keyring warning, refusals,
// and a restored data dir the other admin commands open.
func TestAdminBackupRestore(t *testing.T) {
	data := t.TempDir()
	if out, err := runLanyard(t, "--data-dir", data, "admin", "create-org", "Acme", "--owner-email", "alex@acme.example"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Before the first `serve` there is no keyring and nothing sealed: the backup says so.
	if out, err := runLanyard(t, "--data-dir", data, "admin", "backup", "--out", filepath.Join(t.TempDir(), "fresh.tar.gz")); err != nil || !strings.Contains(out, "nothing in the database is sealed yet") {
		t.Fatalf("backup before the first start: %v\n%s", err, out)
	}
	kr, err := secrets.LoadOrCreate(filepath.Join(data, "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain, withKeys := filepath.Join(dir, "plain.tar.gz"), filepath.Join(dir, "keys.tar.gz")
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantOut string
	}{
		{"backup needs --out", []string{"--data-dir", data, "admin", "backup"}, "--out is required", ""},
		{"postgres is backed up with pg_dump", []string{"--data-dir", data, "--database-url", "postgres://127.0.0.1:1/x", "admin", "backup", "--out", plain}, "pg_dump", ""},
		{"backup", []string{"--data-dir", data, "admin", "backup", "--out", plain}, "", "keyring is NOT in the backup"},
		{"backup with the keyring", []string{"--data-dir", data, "admin", "backup", "--out", withKeys, "--include-keyring"}, "", "WARNING: " + withKeys + " contains the keyring (keys " + kr.ActiveKeyID()},
		{"restore needs --in", []string{"--data-dir", filepath.Join(dir, "a"), "admin", "restore"}, "--in is required", ""},
		{"restore refuses a non-empty dir", []string{"--data-dir", data, "admin", "restore", "--in", plain}, "not empty", ""},
		{"restore", []string{"--data-dir", filepath.Join(dir, "restored"), "admin", "restore", "--in", withKeys}, "", "restored the backup"},
		{"the restored dir serves the org", []string{"--data-dir", filepath.Join(dir, "restored"), "admin", "orgs"}, "", "Acme"},
		{"move needs a database url", []string{"--data-dir", data, "admin", "move-to-postgres"}, "--database-url is required", ""},
	}
	for _, tc := range tests { // in order: later steps use the archives earlier ones wrote
		t.Run(tc.name, func(t *testing.T) {
			out, err := runLanyard(t, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q\n%s", err, tc.wantErr, out)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("err %v, want output containing %q:\n%s", err, tc.wantOut, out)
			}
		})
	}
}
