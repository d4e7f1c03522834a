package cli

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Esc makes a value safe to print on a terminal: control characters (ESC
// first: it starts the sequences that clear screens and move the cursor), CR
// and LF (which spoof table rows), TAB (which shifts table columns), DEL, the
// C1 controls and the bidi overrides are shown as visible escapes such as
// \x1b, \r, \n and \u202e. Every value lanyardctl prints from the API goes
// through it; --json output is escaped by encoding/json instead.
func Esc(s string) string {
	clean := true
	for _, r := range s {
		if escapable(r) {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case escapable(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func escapable(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError
}

// escArgs escapes the string-like arguments of a format call.
func escArgs(args []any) []any {
	out := make([]any, len(args))
	for i, v := range args {
		switch x := v.(type) {
		case string:
			out[i] = Esc(x)
		case error:
			out[i] = Esc(x.Error())
		case fmt.Stringer:
			out[i] = Esc(x.String())
		default:
			out[i] = v
		}
	}
	return out
}

// printf writes a line made of a trusted format and escaped values.
func (a *app) printf(format string, args ...any) (int, error) {
	return fmt.Fprintf(a.out, format, escArgs(args)...)
}

// println writes escaped values and a newline.
func (a *app) println(args ...any) (int, error) {
	return fmt.Fprintln(a.out, escArgs(args)...)
}

// field formats one value of a decoded JSON object for a table cell: a key the
// server omitted (omitempty) is empty, not "<nil>".
func field(m map[string]any, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
