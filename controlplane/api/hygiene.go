package api

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text limits. Decode applies them to every string of every request body
// (struct fields, slice elements, map keys and values), so a field added
// tomorrow is covered without anyone remembering to.
//
// Struct tags adjust them per field:
//
//	maxlen:"4000"     the longest value, in characters (default DefaultMaxLen)
//	text:"multiline"  LF, CR and TAB are allowed (PEM, profiles, notes)
//
// Every other C0 control character, DEL, the C1 controls and the bidi
// overrides are refused everywhere: stored, they end up in terminals (ESC
// sequences), CSV files and the audit log, where they can rewrite what a
// reader sees.
const (
	// DefaultMaxLen is the limit of a string field without a maxlen tag.
	DefaultMaxLen = 1000
	// NotesMaxLen is the limit of free-text notes and comments: enough for a
	// paragraph, not enough to flood the append-only audit log.
	NotesMaxLen = 4000
	// URLMaxLen is the limit of URL fields.
	URLMaxLen = 2048
)

// ForbiddenRune reports whether r may not appear in a text field; multiline
// fields may contain LF, CR and TAB.
func ForbiddenRune(r rune, multiline bool) bool {
	switch {
	case r == '\n' || r == '\r' || r == '\t':
		return !multiline
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// CheckText validates one value against a limit; the error says what is wrong
// without echoing the value.
func CheckText(s string, maxLen int, multiline bool) error {
	if n := utf8.RuneCountInString(s); n > maxLen {
		return fmt.Errorf("is %d characters long; the limit is %d", n, maxLen)
	}
	for i, r := range s {
		if ForbiddenRune(r, multiline) {
			return fmt.Errorf("contains the control or bidi character %U at byte %d", r, i)
		}
	}
	return nil
}

// textRule is the limit of one field.
type textRule struct {
	max       int
	multiline bool
}

func ruleOf(f reflect.StructField) textRule {
	r := textRule{max: DefaultMaxLen}
	if s := f.Tag.Get("maxlen"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			r.max = n
		}
	}
	r.multiline = f.Tag.Get("text") == "multiline"
	return r
}

// MaxLenOf is the maxLength a struct field's strings get (for the OpenAPI document).
func MaxLenOf(f reflect.StructField) int { return ruleOf(f).max }

// checkBody validates every string reachable from v (a decoded body).
func checkBody(v any) *Problem {
	if err := walkText(reflect.ValueOf(v), "", textRule{max: DefaultMaxLen}); err != nil {
		return err
	}
	return nil
}

func walkText(v reflect.Value, path string, rule textRule) *Problem {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return walkText(v.Elem(), path, rule)
	case reflect.String:
		if err := CheckText(v.String(), rule.max, rule.multiline); err != nil {
			return textProblem(path, err)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // bytes (base64 on the wire), not text
		}
		for i := 0; i < v.Len(); i++ {
			if p := walkText(v.Index(i), path+"["+strconv.Itoa(i)+"]", rule); p != nil {
				return p
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			name := fmt.Sprint(k.Interface())
			if k.Kind() == reflect.String {
				if err := CheckText(k.String(), DefaultMaxLen, false); err != nil {
					return textProblem(join(path, "(key)"), err)
				}
			}
			if p := walkText(iter.Value(), join(path, name), rule); p != nil {
				return p
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			p := path
			if !f.Anonymous || name != "" {
				if name == "" {
					name = f.Name
				}
				p = join(path, name)
			}
			if prob := walkText(v.Field(i), p, ruleOf(f)); prob != nil {
				return prob
			}
		}
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func textProblem(field string, err error) *Problem {
	return Unprocessable(fmt.Sprintf("field %q %s", field, err)).With("field", field)
}
