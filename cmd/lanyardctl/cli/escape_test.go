package cli

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/api/apitest"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// poison clears the screen, returns the carriage and starts a fake row.
const poison = "ok\x1b[2J\x1b]0;pwned\x07\rFAKE\nROW\tX\u202eevil\x7f\u0085"

func TestEsc(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain ünïcode", "plain ünïcode"},
		{"\x1b[2J", `\x1b[2J`},
		{"a\rb\nc\td", `a\rb\nc\td`},
		{"\x00\x07\x7f", `\x00\x07\x7f`},
		{"\u0085\u009b", `\u0085\u009b`},
		{"\u202aA\u202eB\u2066C\u2069", `\u202aA\u202eB\u2066C\u2069`},
		{"bad\xffutf8", `bad\xffutf8`},
		{`C:\Users`, `C:\Users`},
	} {
		if got := Esc(tc.in); got != tc.want {
			t.Errorf("Esc(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// rawControl reports a control byte other than the newlines lanyardctl
// writes itself.
func rawControl(out string) (rune, bool) {
	for _, r := range out {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)) {
			return r, true
		}
	}
	return 0, false
}

// Tables and key/value output escape a value in any column.
func TestPrintEscapesEveryColumn(t *testing.T) {
	for cols := 1; cols <= 8; cols++ {
		for bad := 0; bad < cols; bad++ {
			var out bytes.Buffer
			a := &app{out: &out}
			headers := make([]string, cols)
			row := make([]string, cols)
			for i := range headers {
				headers[i] = fmt.Sprintf("H%d", i)
				row[i] = fmt.Sprintf("v%d", i)
			}
			row[bad] = poison
			if err := a.print(nil, headers, [][]string{row}); err != nil {
				t.Fatal(err)
			}
			if r, ok := rawControl(out.String()); ok || strings.Count(out.String(), "\n") != 2 || !strings.Contains(out.String(), `\x1b[2J`) {
				t.Fatalf("%d columns, poison in %d: raw %U (%v) in %q", cols, bad, r, ok, out.String())
			}
			out.Reset()
			pairs := make([][2]string, cols)
			for i := range pairs {
				pairs[i] = [2]string{headers[i], row[i]}
			}
			pairs[bad][0] = poison // keys too
			if err := a.printKV(nil, pairs); err != nil {
				t.Fatal(err)
			}
			if r, ok := rawControl(out.String()); ok || strings.Count(out.String(), "\n") != cols {
				t.Fatalf("kv %d/%d: raw %U (%v) in %q", cols, bad, r, ok, out.String())
			}
		}
	}
}

// Values stored before input hygiene existed (or arriving from agents, MDM
// and HR) print escaped in every command that shows them.
func TestCommandsEscapeStoredValues(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := apitest.New(t, db, api.Options{})
	o := storetest.Org(t, db, domain.PlanPro)
	emp := storetest.Employee(t, db, o.ID, "Esc")
	dev := storetest.Device(t, db, o.ID, "ESC-1")
	ctx := context.Background()
	for _, col := range []string{"serial_number", "vendor", "model", "platform", "equipment_type", "notes"} {
		if _, err := db.SQL.ExecContext(ctx, `UPDATE devices SET `+col+` = $1 WHERE id = $2`, col+poison, dev.ID); err != nil {
			t.Fatal(err)
		}
	}
	emp.HR.FirstName, emp.HR.LastName, emp.HR.WorkEmail, emp.HR.Title = poison, poison, "x"+poison+"@acme.test", poison
	emp.HR.Departments = []string{poison}
	emp.Notes = poison
	if err := store.UpdateEmployee(ctx, db.SQL, &emp); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, `UPDATE devices SET assigned_employee_id = $1 WHERE id = $2`, emp.ID, dev.ID); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LANYARDCTL_CONFIG", filepath.Join(t.TempDir(), "ctl.json"))
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := Run(ctx, args, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	run("login", "--url", h.Server.URL, "--token", h.Token(o.ID, domain.RoleAdmin))
	for _, args := range [][]string{
		{"devices", "list"},
		{"devices", "get", dev.ID},
		{"employees", "list"},
		{"employees", "get", emp.ID},
	} {
		out := run(args...)
		if r, ok := rawControl(out); ok {
			t.Errorf("%v printed a raw %U:\n%s", args, r, out)
		}
		if strings.Contains(out, "\nFAKE") || strings.Contains(out, "\nROW") {
			t.Errorf("%v: a stored newline started a row:\n%s", args, out)
		}
		if !strings.Contains(out, `\x1b[2J`) {
			t.Errorf("%v: the value is not shown escaped:\n%s", args, out)
		}
	}
}
