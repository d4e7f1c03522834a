package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lanyard.yaml")
	if err := os.WriteFile(file, []byte("http-addr: 0.0.0.0:9000\nlog-level: warn\nhr-reconcile-interval: 5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LANYARD_LOG_LEVEL", "debug")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "0.0.0.0:9000" || c.LogLevel != "debug" || c.DataDir != dir || c.HRReconcileInterval != 5*time.Minute {
		t.Fatalf("precedence wrong: %+v", c)
	}
	if c.KeyFile != filepath.Join(dir, "keyring.json") || c.GRPCAddr != "127.0.0.1:8443" {
		t.Fatalf("defaults wrong: %+v", c)
	}
}

func TestInvalid(t *testing.T) {
	tests := map[string]string{
		"LANYARD_DATABASE_URL":          "mysql://x",
		"LANYARD_LOG_LEVEL":             "loud",
		"LANYARD_HR_RECONCILE_INTERVAL": "soon",
		"LANYARD_DEMO":                  "maybe",
	}
	for env, v := range tests {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, v)
			if _, err := Load(nil); err == nil {
				t.Fatalf("%s=%s accepted", env, v)
			}
		})
	}
}

func TestMarkdownListsEverySetting(t *testing.T) {
	md := Markdown()
	for _, f := range fields() {
		if !strings.Contains(md, f.env) {
			t.Errorf("%s missing from the docs table", f.env)
		}
	}
}
