package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	cpconfig "github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// TestAuditVerifyLiveDemo is issue 14's "done when" for the audit log, on both stores: a
// running demo server takes a few API writes and signs a checkpoint; `lanyard admin audit
// verify` (and GET /api/v1/audit/verify) pass, also with the exported public key; after a
// direct UPDATE of one row in the database, both name that row and the CLI exits non-zero
// with one line.
func TestAuditVerifyLiveDemo(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			dir := t.TempDir()
			global := []string{"--data-dir", filepath.Join(dir, "data"), "--log-level", "warn", "--demo"}
			if dialect == "postgres" {
				global = append(global, "--database-url", storetest.PostgresURL(t))
			}
			root := newRootCmd()
			if err := root.PersistentFlags().Parse(global); err != nil {
				t.Fatal(err)
			}
			cfg, err := cpconfig.Load(root.PersistentFlags())
			if err != nil {
				t.Fatal(err)
			}
			cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
			ctx, cancel := context.WithCancel(context.Background())
			s, err := server.New(ctx, cfg, server.NewLogger(cfg))
			if err != nil {
				t.Fatal(err)
			}
			addr, err := s.Listen()
			if err != nil {
				t.Fatal(err)
			}
			org, token, err := s.SeedDemo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ran := make(chan error, 1)
			go func() { ran <- s.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				<-ran
			})
			base := "http://" + addr.String()
			call := func(method, path string, body any) (int, []byte) {
				t.Helper()
				var rd io.Reader
				if body != nil {
					b, _ := json.Marshal(body)
					rd = bytes.NewReader(b)
				}
				req, _ := http.NewRequest(method, base+path, rd)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, b
			}
			var target string
			for i := 0; i < 3; i++ {
				st, b := call("POST", "/api/v1/devices", map[string]string{"serial_number": fmt.Sprintf("AUDIT-LIVE-%d", i), "vendor": "apple",
					"model": "MacBook Pro", "platform": "macos", "equipment_type": "laptop"})
				if st != http.StatusCreated {
					t.Fatalf("create device: %d %s", st, b)
				}
				var d struct{ ID string }
				_ = json.Unmarshal(b, &d)
				if i == 1 {
					target = d.ID
				}
			}
			if st, b := call("PATCH", "/api/v1/devices/"+target, map[string]string{"model": "MacBook Pro 16"}); st != http.StatusOK {
				t.Fatalf("patch device: %d %s", st, b)
			}
			if st, b := call("POST", "/api/v1/audit/checkpoints", nil); st != http.StatusOK || !strings.Contains(string(b), `"created":true`) {
				t.Fatalf("checkpoint: %d %s", st, b)
			}
			verifyAPI := func() auditchain.Report {
				t.Helper()
				st, b := call("GET", "/api/v1/audit/verify", nil)
				var rep auditchain.Report
				if st != http.StatusOK || json.Unmarshal(b, &rep) != nil {
					t.Fatalf("verify: %d %s", st, b)
				}
				return rep
			}
			if rep := verifyAPI(); !rep.OK || rep.Checkpoints != 1 || rep.Rows < 4 {
				t.Fatalf("API verify of the untouched demo: %+v", rep)
			}
			out, err := runLanyard(t, append(global, "admin", "audit", "verify")...)
			if err != nil || !strings.Contains(out, "audit chain ok: org "+org.ID) {
				t.Fatalf("CLI verify of the untouched demo: %v\n%s", err, out)
			}
			pem, err := runLanyard(t, append(global, "admin", "audit", "public-key")...)
			if err != nil || !strings.Contains(pem, "BEGIN PUBLIC KEY") {
				t.Fatalf("public-key: %v\n%s", err, pem)
			}
			pemFile := filepath.Join(dir, "audit.pem")
			if err := os.WriteFile(pemFile, []byte(pem), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := runLanyard(t, append(global, "admin", "audit", "verify", "--org", org.ID, "--public-key", pemFile)...); err != nil {
				t.Fatalf("verify with the exported key: %v\n%s", err, out)
			}

			// The attacker edits the device's creation record in place.
			var rowID string
			if err := s.DB.SQL.QueryRowContext(ctx, `SELECT id FROM audit_log WHERE target_id = $1 AND action = 'device.created'`, target).Scan(&rowID); err != nil {
				t.Fatal(err)
			}
			dropAppendOnlyTrigger(t, s.DB)
			if _, err := s.DB.SQL.ExecContext(ctx, `UPDATE audit_log SET actor = 'token:someone-else' WHERE id = $1`, rowID); err != nil {
				t.Fatal(err)
			}
			out, err = runLanyard(t, append(global, "admin", "audit", "verify")...)
			if err == nil {
				t.Fatalf("CLI verify passed a tampered log:\n%s", out)
			}
			line := err.Error()
			if strings.Contains(line, "\n") || !strings.Contains(line, "row "+rowID) || !strings.Contains(line, "edited") {
				t.Fatalf("CLI verify: want one line naming row %s as edited, got %q", rowID, line)
			}
			t.Log(line)
			if rep := verifyAPI(); rep.OK || rep.Problem.RowID != rowID || rep.Problem.Kind != auditchain.Edited {
				t.Fatalf("API verify after the UPDATE: %+v", rep)
			}
			// A checkpoint never vouches for tampered rows: rows written after the last one
			// are verified before it is signed.
			st, b := call("POST", "/api/v1/devices", map[string]string{"serial_number": "AUDIT-LIVE-LATE", "vendor": "dell", "equipment_type": "monitor"})
			if st != http.StatusCreated {
				t.Fatalf("create device: %d %s", st, b)
			}
			var late struct{ ID string }
			_ = json.Unmarshal(b, &late)
			if _, err := s.DB.SQL.ExecContext(ctx, `UPDATE audit_log SET after_json = '{}' WHERE target_id = $1`, late.ID); err != nil {
				t.Fatal(err)
			}
			if st, b := call("POST", "/api/v1/audit/checkpoints", nil); st != http.StatusConflict || !strings.Contains(string(b), "edited") {
				t.Fatalf("checkpoint over a tampered row: %d %s", st, b)
			}
		})
	}
}

// dropAppendOnlyTrigger removes what stops an UPDATE of audit_log, as an attacker with
// database access would.
func dropAppendOnlyTrigger(t *testing.T, db *store.DB) {
	t.Helper()
	q := `DROP TRIGGER audit_log_no_update`
	if db.Dialect == store.Postgres {
		q = `DROP TRIGGER audit_log_no_change ON audit_log`
	}
	if _, err := db.SQL.ExecContext(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}
