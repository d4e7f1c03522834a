package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/server"
)

// redoclyVersion is the pinned linter (Makefile `tools` installs it).
const redoclyVersion = "2.77.0"

// redocly finds the pinned linter: $LANYARD_REDOCLY, else where `make tools` puts it.
func redocly(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LANYARD_REDOCLY"); p != "" {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "tools", "redocly", "node_modules", ".bin", "redocly")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the OpenAPI linter is not installed and CI is set: run `make tools`")
	}
	t.Skip("the OpenAPI linter (@redocly/cli " + redoclyVersion + ") is not installed; `make tools` installs it")
	return ""
}

// The document a fully wired server serves passes the pinned third-party linter with no
// error and no warning: generated docs drift in ways our own checks do not think of.
func TestOpenAPILint(t *testing.T) {
	if mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile")); err != nil || !strings.Contains(string(mk), "REDOCLY_VERSION := "+redoclyVersion+"\n") {
		t.Fatalf("the Makefile must pin REDOCLY_VERSION := %s, the version this test expects (%v)", redoclyVersion, err)
	}
	bin := redocly(t)
	if out, err := exec.Command(bin, "--version").Output(); err != nil || strings.TrimSpace(string(out)) != redoclyVersion {
		t.Fatalf("redocly --version: %q (%v); want %s: run `make tools`", out, err, redoclyVersion)
	}
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.KeyFile, cfg.DatabaseURL = dir, filepath.Join(dir, "keyring.json"), ""
	s, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	b, err := json.MarshalIndent(s.API.OpenAPI(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "openapi.json")
	if err := os.WriteFile(doc, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("LANYARD_OPENAPI_OUT"); p != "" {
		_ = os.WriteFile(p, b, 0o644)
	}
	cmd := exec.Command(bin, "lint", "--config", filepath.Join("..", "..", "redocly.yaml"), "--format", "json", doc)
	// No telemetry or update check from a test run.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var report struct {
		Totals   struct{ Errors, Warnings int }
		Problems []struct {
			RuleID, Severity, Message string
			Location                  []struct{ Pointer string }
		}
	}
	if jerr := json.Unmarshal(out, &report); jerr != nil {
		t.Fatalf("redocly lint (%v): unreadable report (%v):\n%s\n%s", err, jerr, out, stderr.String())
	}
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
	}
	if report.Totals.Errors+report.Totals.Warnings > 0 || err != nil {
		t.Fatalf("redocly lint: %d errors, %d warnings (%v)", report.Totals.Errors, report.Totals.Warnings, err)
	}
}
