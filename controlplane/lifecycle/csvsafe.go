package lifecycle

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Spreadsheet formula injection (OWASP "CSV Injection"): a cell that starts
// with one of these is run as a formula by Excel, LibreOffice and Sheets when
// someone opens the export. Devices carry text from agents, MDM and anyone
// with the it role, so the export neutralises such cells and the import
// refuses them.
const formulaPrefixes = "=+-@\t\r"

// formulaCell reports whether a cell would be read as a formula.
func formulaCell(s string) bool {
	return s != "" && strings.ContainsRune(formulaPrefixes, rune(s[0]))
}

// csvWriter writes RFC 4180 rows; a formula cell gets a leading single quote
// and is always quoted, as OWASP recommends, so the spreadsheet shows it as
// text. encoding/csv cannot force quotes, hence this small writer.
type csvWriter struct{ w *bufio.Writer }

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{w: bufio.NewWriter(w)} }

func (c *csvWriter) Write(fields []string) error {
	for i, f := range fields {
		if i > 0 {
			c.w.WriteByte(',')
		}
		quote := strings.ContainsAny(f, ",\"\r\n") || strings.HasPrefix(f, " ") || strings.HasSuffix(f, " ")
		if formulaCell(f) {
			f, quote = "'"+f, true
		}
		if quote {
			c.w.WriteByte('"')
			c.w.WriteString(strings.ReplaceAll(f, `"`, `""`))
			c.w.WriteByte('"')
		} else {
			c.w.WriteString(f)
		}
	}
	_, err := c.w.WriteString("\n")
	return err
}

func (c *csvWriter) Flush() error { return c.w.Flush() }

// formulaError is the import's row error for a formula cell.
func formulaError(cell string) string {
	return fmt.Sprintf("the value starts with %q, which spreadsheets run as a formula; remove it (or quote it as text in the source)", cell[:1])
}
