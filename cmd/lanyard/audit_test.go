package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
)

// admin audit verify prints one ok line per org, and after a direct UPDATE of an audit
// row exits non-zero naming that row.
func TestAdminAuditVerify(t *testing.T) {
	data := t.TempDir()
	out, err := runLanyard(t, "--data-dir", data, "admin", "create-org", "Acme", "--owner-email", "owner@acme.example")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	orgID := regexp.MustCompile(`org (\S+) \(Acme\)`).FindStringSubmatch(out)[1]
	out, err = runLanyard(t, "--data-dir", data, "admin", "audit", "verify", "--org", orgID)
	if err != nil || !regexp.MustCompile(`^audit chain ok: org `+orgID+`, [1-9]\d* rows, \d+ checkpoints`).MatchString(out) {
		t.Fatalf("clean verify: %v\n%s", err, out)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(data, "lanyard.db"))
	if err != nil {
		t.Fatal(err)
	}
	var rowID string
	if err := db.SQL.QueryRowContext(ctx, `SELECT audit_id FROM audit_chain WHERE org_id = ? ORDER BY seq LIMIT 1`, orgID).Scan(&rowID); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER audit_log_no_update`, `UPDATE audit_log SET actor = 'someone-else' WHERE id = '` + rowID + `'`} {
		if _, err := db.SQL.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	out, err = runLanyard(t, "--data-dir", data, "admin", "audit", "verify")
	if err == nil || !strings.Contains(err.Error(), "row "+rowID) || !strings.Contains(err.Error(), "edited") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("tampered verify: %v\n%s", err, out)
	}
}
