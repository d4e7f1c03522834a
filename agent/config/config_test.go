package config

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

const fp = "3F:1C:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD"

func TestWriteLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "lanyard", "agent.json")
	in := Config{
		ControlPlaneURL:     "https://lanyard.example.com",
		GRPCAddress:         "agents.example.com:9443",
		GRPCAddresses:       []string{"a.example.com:9443", "b.example.com:9443"},
		EnrollmentAddresses: []string{"a.example.com:9444", "b.example.com:9444"},
		EnrollmentAddress:   "enroll.example.com:9444",
		CAFingerprintSHA256: fp,
		EnrollmentSecret:    "lyes_secret&<x>",
		StateDir:            "/var/lib/lanyard-test",
	}
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %o, want 600", st.Mode().Perm())
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The documented field names are the contract with installers/.
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"control_plane_url", "grpc_address", "enrollment_address", "ca_fingerprint_sha256", "enrollment_secret", "state_dir"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing in %s", k, raw)
		}
	}
	if !strings.Contains(string(raw), "lyes_secret&<x>") {
		t.Errorf("secret was HTML-escaped: %s", raw)
	}
	out, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.CAFingerprintSHA256 = "3f1c00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("Load = %+v\nwant %+v", out, want)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.json")); !errors.Is(err, ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrNotExist", err)
	}
	cases := map[string]string{
		"bad json":        `{"control_plane_url":`,
		"bad fingerprint": `{"ca_fingerprint_sha256":"abcd"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(p); err == nil {
				t.Fatal("Load succeeded, want error")
			}
		})
	}
	// Unknown fields from a newer installer are tolerated.
	p := filepath.Join(dir, "future.json")
	if err := os.WriteFile(p, []byte(`{"grpc_address":"h:1","future_field":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.GRPCAddress != "h:1" {
		t.Fatalf("Load future = %+v, %v", c, err)
	}
}

func TestRemoveSecret(t *testing.T) {
	for _, tc := range []struct {
		name        string
		keep        bool
		wantChanged bool
		wantSecret  string
	}{
		{"deleted", false, true, ""},
		{"kept", true, false, "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agent.json")
			if err := Write(p, Config{GRPCAddress: "h:1", EnrollmentSecret: "s3cret", KeepSecret: tc.keep}); err != nil {
				t.Fatal(err)
			}
			changed, err := RemoveSecret(p)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.wantChanged {
				t.Fatalf("changed = %v, want %v", changed, tc.wantChanged)
			}
			c, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if c.EnrollmentSecret != tc.wantSecret || c.GRPCAddress != "h:1" {
				t.Fatalf("after RemoveSecret: %+v", c)
			}
			raw, _ := os.ReadFile(p)
			if tc.wantSecret == "" && strings.Contains(string(raw), "s3cret") {
				t.Fatalf("secret still in file: %s", raw)
			}
		})
	}
}

func TestGRPCTargetAndValidate(t *testing.T) {
	cases := []struct {
		name    string
		c       Config
		target  string
		enrollE bool
	}{
		{"explicit", Config{GRPCAddress: "a.example:9000", EnrollmentSecret: "s"}, "a.example:9000", false},
		{"from url", Config{ControlPlaneURL: "https://lanyard.example.com/x", EnrollmentSecret: "s"}, "lanyard.example.com:8443", false},
		{"ipv6 url", Config{ControlPlaneURL: "https://[::1]:443", EnrollmentSecret: "s"}, "[::1]:8443", false},
		{"no endpoint", Config{EnrollmentSecret: "s"}, "", true},
		{"no secret", Config{GRPCAddress: "a:1"}, "a:1", true},
		{"bad address", Config{GRPCAddress: "nohostport", EnrollmentSecret: "s"}, "", true},
		{"ftp url", Config{ControlPlaneURL: "ftp://x", GRPCAddress: "a:1", EnrollmentSecret: "s"}, "a:1", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.GRPCTarget()
			if tc.target == "" && err == nil {
				t.Fatalf("GRPCTarget = %q, want error", got)
			}
			if tc.target != "" && (err != nil || got != tc.target) {
				t.Fatalf("GRPCTarget = %q, %v; want %q", got, err, tc.target)
			}
			if tc.target != "" && err == nil {
				et, err := tc.c.EnrollmentTarget()
				host, _, _ := net.SplitHostPort(tc.target)
				if err != nil || et != net.JoinHostPort(host, DefaultEnrollmentPort) {
					t.Fatalf("EnrollmentTarget = %q, %v", et, err)
				}
			}
			if err := tc.c.ValidateForEnroll(); (err != nil) != tc.enrollE {
				t.Fatalf("ValidateForEnroll err = %v, want error %v", err, tc.enrollE)
			}
		})
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	want := "3f1c00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
	for _, in := range []string{fp, "sha256:" + want, strings.ToUpper(want), " " + want + " "} {
		got, err := NormalizeFingerprint(in)
		if err != nil || got != want {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "zz", want[:62]} {
		if _, err := NormalizeFingerprint(in); err == nil {
			t.Errorf("NormalizeFingerprint(%q) succeeded", in)
		}
	}
}

func TestDefaultPaths(t *testing.T) {
	if !filepath.IsAbs(DefaultPath()) && runtime.GOOS != "windows" {
		t.Fatalf("DefaultPath %q not absolute", DefaultPath())
	}
	if filepath.Base(DefaultPath()) != "agent.json" {
		t.Fatalf("DefaultPath = %q", DefaultPath())
	}
	if (Config{}).StateDirectory() != DefaultStateDir() || (Config{StateDir: "/x"}).StateDirectory() != "/x" {
		t.Fatal("StateDirectory does not honour StateDir")
	}
}

func TestGRPCTargets(t *testing.T) {
	cases := []struct {
		name string
		c    Config
		want []string
	}{
		{"single field", Config{GRPCAddress: "a:1"}, []string{"a:1"}},
		{"list", Config{GRPCAddresses: []string{"a:1", "b:1"}}, []string{"a:1", "b:1"}},
		{"both, without repeats", Config{GRPCAddress: "b:1", GRPCAddresses: []string{"a:1", "b:1", " "}}, []string{"b:1", "a:1"}},
		{"from url", Config{ControlPlaneURL: "https://cp.example"}, []string{"cp.example:8443"}},
		{"bad entry", Config{GRPCAddresses: []string{"a:1", "nohostport"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.GRPCTargets()
			if tc.want == nil {
				if err == nil {
					t.Fatalf("GRPCTargets = %v, want error", got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("GRPCTargets = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	enroll, err := (Config{GRPCAddresses: []string{"a:1"}, EnrollmentAddresses: []string{"a:2", "b:2", "a:2"}}).EnrollmentTargets()
	if err != nil || !reflect.DeepEqual(enroll, []string{"a:2", "b:2"}) {
		t.Errorf("EnrollmentTargets = %v, %v", enroll, err)
	}
	if derived, err := (Config{GRPCAddresses: []string{"a:1"}}).EnrollmentTargets(); err != nil || !reflect.DeepEqual(derived, []string{"a:8444"}) {
		t.Errorf("derived EnrollmentTargets = %v, %v", derived, err)
	}
	if first, err := (Config{GRPCAddresses: []string{"a:1", "b:1"}}).GRPCTarget(); err != nil || first != "a:1" {
		t.Errorf("GRPCTarget of a list = %q, %v", first, err)
	}
}
