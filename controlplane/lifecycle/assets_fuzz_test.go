package lifecycle_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// FuzzImportDevicesCSV runs the CSV import as a dry run on SQLite. An import
// with no row errors never holds a formula-prefixed or control-character cell,
// every row holding one is reported, and the report's rows are the file's.
func FuzzImportDevicesCSV(f *testing.F) {
	db := storetest.NewSQLite(f)
	org := storetest.Org(f, db, domain.PlanPro)
	emp := storetest.Employee(f, db, org.ID, "Ada")
	eng := lifecycle.New(db)
	for _, s := range []string{
		"serial_number,vendor,equipment_type,platform,state,assigned_email,purchase_date\nC02XL0GZJGH5,apple,laptop,macos,in_use," + emp.HR.WorkEmail + ",2026-01-31\n",
		"serial_number,vendor,equipment_type\nS1,dell,laptop\nS1,dell,laptop\n",
		"serial_number,vendor,equipment_type,notes\nS2,apple,laptop,=HYPERLINK(\"http://x\")\n",
		"serial_number,vendor,equipment_type\n\"S3\",\" +1\",laptop\n",
		"serial_number,vendor,equipment_type\nS4,apple,lap\x1btop\n",
		"serial_number,vendor,equipment_type\nS5,apple,\"lap\ntop\"\n",
		"serial_number,vendor,equipment_type,extra\nS6,apple,laptop,a,@b\n",
		"serial_number,vendor\nS7,apple\n",
		"\"unterminated\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := eng.ImportDevicesCSV(context.Background(), org.ID, bytes.NewReader(in), true)
		if err != nil {
			return // no readable header: refused as invalid input
		}
		if rep.Imported != 0 || !rep.DryRun {
			t.Fatalf("a dry run reported %+v", rep)
		}
		errRows := map[int]bool{}
		for _, e := range rep.Errors {
			if e.Row < 1 || e.Row > rep.Rows+2 || e.Message == "" {
				t.Fatalf("row error %+v out of range (rows %d)", e, rep.Rows)
			}
			errRows[e.Row] = true
		}
		if errRows[1] {
			// A header without the required columns: no row is read.
			if rep.Rows != 0 || len(errRows) != 1 {
				t.Fatalf("header refused, yet rows were read: %+v", rep)
			}
			return
		}
		// Re-read the file the way the import does (a malformed record, row Rows+2, ends it).
		r := csv.NewReader(bytes.NewReader(in))
		r.FieldsPerRecord = -1
		r.TrimLeadingSpace = true
		if _, err := r.Read(); err != nil {
			t.Fatalf("the import read a header from %q, encoding/csv does not: %v", in, err)
		}
		for n := 2; ; n++ {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if !errRows[n] {
					t.Fatalf("malformed record %d (%v) not reported: %+v", n, err, rep.Errors)
				}
				break
			}
			for _, cell := range rec {
				c := strings.TrimLeft(cell, " ")
				dangerous := c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0]))
				if !dangerous && api.CheckText(cell, api.DefaultMaxLen, false) != nil {
					dangerous = true
				}
				if dangerous && !errRows[n] {
					t.Fatalf("row %d cell %q accepted: %+v", n, cell, rep)
				}
			}
		}
	})
}
