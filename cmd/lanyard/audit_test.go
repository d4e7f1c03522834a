package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
)

// `admin audit verify` passes on a fresh org, then names the row a direct UPDATE edited
// (with the append-only trigger dropped first, as an attacker with the database would).
func TestAuditVerifyNamesAnEditedRow(t *testing.T) {
	data := t.TempDir()
	out, err := runLanyard(t, "--data-dir", data, "admin", "create-org", "Acme", "--owner-email", "alex@acme.example")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	org := regexp.MustCompile(`org (\S+) \(Acme\)`).FindStringSubmatch(out)
	if org == nil {
		t.Fatalf("output:\n%s", out)
	}
	out, err = runLanyard(t, "--data-dir", data, "admin", "audit", "verify")
	if err != nil || !regexp.MustCompile(`^audit chain ok: org `+org[1]+`, [1-9]\d* rows, 1 checkpoints\n$`).MatchString(out) {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(data, "lanyard.db"))
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	if err := db.SQL.QueryRowContext(ctx, `SELECT audit_id FROM audit_chain WHERE org_id = $1 ORDER BY seq LIMIT 1`, org[1]).Scan(&victim); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER audit_log_no_update`, `UPDATE audit_log SET actor = 'nobody' WHERE id = '` + victim + `'`} {
		if _, err := db.SQL.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()
	out, err = runLanyard(t, "--data-dir", data, "admin", "audit", "verify", "--org", org[1])
	if err == nil || !strings.Contains(err.Error(), "row "+victim+" (seq 1): content does not match its hash") {
		t.Fatalf("after the edit: %v\n%s", err, out)
	}
}
