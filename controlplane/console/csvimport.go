package console

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
)

// CSV import and export of devices. The import is two forms: the preview asks the API
// for a dry run (?dry_run=true, which writes nothing) and shows every row with its
// errors; only the confirm form, carrying the same file, imports (all rows or none).

func csvPages() []page {
	return []page{
		{Pattern: "GET /devices/import", Handler: importPage},
		{Pattern: "GET /devices/export", Handler: exportDownload},
	}
}

func csvActions() []action {
	sample := map[string]string{"csv": "serial_number,vendor,equipment_type\nROLE-CHECK-1,apple,laptop\n"}
	return []action{
		{Name: "preview device import", Form: "POST /devices/import/preview", API: "POST /api/v1/assets/import",
			Sample: sample, Call: func(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
				return c.importCSV(w, r, rq, true)
			}},
		{Name: "import devices", Form: "POST /devices/import", API: "POST /api/v1/assets/import",
			Sample: sample, Call: func(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
				return c.importCSV(w, r, rq, false)
			}},
	}
}

// maxCSV is what the console takes in one form (the API takes up to 8 MiB from scripts).
const maxCSV = 900 << 10

type importView struct {
	CSV     string
	Report  *lifecycle.ImportReport
	Rows    []previewRow
	Header  []string
	More    int // rows not shown in the preview table
	Ready   bool
	Columns []string
}

type previewRow struct {
	N      int
	Cells  []string
	Errors []lifecycle.RowError
}

func importPage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	return c.render(w, rq, http.StatusOK, "import", "", "Import devices", "devices", importView{Columns: importColumns})
}

// importColumns are the columns the import reads (lifecycle.ImportDevicesCSV).
var importColumns = []string{"serial_number", "vendor", "model", "platform", "equipment_type", "purchase_date", "state", "assigned_email"}

// csvFrom reads the file the form uploaded, or the text pasted into it.
func csvFrom(r *http.Request) (string, error) {
	if f, _, err := r.FormFile("file"); err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxCSV+1))
		if err != nil {
			return "", fmt.Errorf("read upload: %w", err)
		}
		if len(b) > 0 {
			if len(b) > maxCSV {
				return "", badRequest("The file is larger than 900 KiB; split it, or import it with lanyardctl.")
			}
			return string(b), nil
		}
	}
	s := r.PostFormValue("csv")
	if strings.TrimSpace(s) == "" {
		return "", badRequest("Choose a CSV file or paste its contents.")
	}
	return s, nil
}

func (c *Console) importCSV(w http.ResponseWriter, r *http.Request, rq *request, dryRun bool) error {
	text, err := csvFrom(r)
	if err != nil {
		return err
	}
	target := "/api/v1/assets/import"
	if dryRun {
		target += "?dry_run=true"
	}
	var rep lifecycle.ImportReport
	err = c.call(r, rq, "POST", target, strings.NewReader(text), &rep)
	if ce, ok := api.AsCallError(err); ok && ce.Status == http.StatusUnprocessableEntity && ce.Extensions["errors"] != nil {
		// The API's row report: show it against the rows, nothing was written.
		raw, _ := json.Marshal(ce.Extensions)
		if err := json.Unmarshal(raw, &rep); err != nil {
			return fmt.Errorf("decode import report: %w", err)
		}
	} else if err != nil {
		return err
	}
	if !dryRun && len(rep.Errors) == 0 {
		return c.done(w, r, "/devices", fmt.Sprintf("Imported %d device(s).", rep.Imported))
	}
	v := previewOf(text, &rep)
	status := http.StatusOK
	if len(rep.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return c.render(w, rq, status, "import", "", "Import devices: preview", "devices", v)
}

// previewRows is how many rows the preview table shows; the errors list shows them all.
const previewRows = 200

func previewOf(text string, rep *lifecycle.ImportReport) importView {
	v := importView{CSV: text, Report: rep, Ready: len(rep.Errors) == 0 && rep.Rows > 0, Columns: importColumns}
	byRow := map[int][]lifecycle.RowError{}
	for _, e := range rep.Errors {
		byRow[e.Row] = append(byRow[e.Row], e)
	}
	cr := csv.NewReader(bytes.NewReader([]byte(text)))
	cr.FieldsPerRecord, cr.TrimLeadingSpace = -1, true
	for n := 1; ; n++ {
		rec, err := cr.Read()
		if err != nil {
			break
		}
		if n == 1 {
			v.Header = rec
			continue
		}
		if len(v.Rows) >= previewRows {
			v.More++
			continue
		}
		v.Rows = append(v.Rows, previewRow{N: n, Cells: rec, Errors: byRow[n]})
	}
	return v
}

// exportDownload hands the browser the API's CSV export as a file.
func exportDownload(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	var buf bytes.Buffer
	if err := c.call(r, rq, "GET", "/api/v1/assets/export", nil, &buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="devices.csv"`)
	_, err := w.Write(buf.Bytes())
	return err
}
