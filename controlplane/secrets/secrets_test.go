package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	old := NewKey()
	kr, err := New(old)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := kr.Seal([]byte("pin 123456"), "org:1:pin")
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := New(NewKey(), old)
	tests := []struct {
		name    string
		kr      *Keyring
		aad     string
		in      string
		wantErr bool
	}{
		{"same key", kr, "org:1:pin", sealed, false},
		{"after rotation old key still opens", rotated, "org:1:pin", sealed, false},
		{"wrong aad", kr, "org:2:pin", sealed, true},
		{"tampered", kr, "org:1:pin", sealed[:len(sealed)-2] + "AA", true},
		{"malformed", kr, "org:1:pin", "garbage", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.kr.Open(tc.in, tc.aad)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && string(pt) != "pin 123456" {
				t.Fatalf("plaintext %q", pt)
			}
		})
	}
	fresh, _ := New(NewKey())
	if _, err := fresh.Open(sealed, "org:1:pin"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestLoadOrCreateAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "keyring.json")
	kr, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	sealed, _ := kr.Seal([]byte("x"), "a")
	k, err := Rotate(path)
	if err != nil {
		t.Fatal(err)
	}
	kr2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if kr2.ActiveKeyID() != k.ID {
		t.Fatalf("active key %s, want rotated %s", kr2.ActiveKeyID(), k.ID)
	}
	if _, err := kr2.Open(sealed, "a"); err != nil {
		t.Fatalf("old ciphertext after rotation: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path); err == nil {
		t.Fatal("world-readable key file accepted")
	}
}
