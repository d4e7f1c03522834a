package api

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Typed query parameters. A route that takes more than a couple of filters declares them
// as a struct in Route.QueryOf; the same struct documents them in OpenAPI (type, enum,
// bounds) and DecodeQuery fills it, so the documented contract and the parsing cannot drift.
//
// Field tags:
//
//	query:"name"     the parameter name (fields without it are ignored)
//	doc:"..."        its description
//	enum:"a,b,c"     the values a string parameter takes
//	min:"1" max:"9"  the bounds of an integer parameter
//	format:"email"   its OpenAPI format ("date-time" is also checked)
//
// Field types: string, bool, *bool (unset = nil, so "false" is a filter of its own), int.

// queryField is one typed parameter.
type queryField struct {
	index    int
	name     string
	doc      string
	enum     []string
	min, max *int
	kind     string // "string" | "boolean" | "integer"
	ptr      bool
	format   string // "date-time" is checked; others only documented
	pattern  *regexp.Regexp
}

func queryFields(t reflect.Type) []queryField {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []queryField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("query")
		if name == "" {
			continue
		}
		qf := queryField{index: i, name: name, doc: f.Tag.Get("doc"), format: f.Tag.Get("format")}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			qf.ptr, ft = true, ft.Elem()
		}
		switch ft.Kind() {
		case reflect.String:
			qf.kind = "string"
		case reflect.Bool:
			qf.kind = "boolean"
		case reflect.Int:
			qf.kind = "integer"
		default:
			panic(fmt.Sprintf("api: query field %s.%s has unsupported type %s", t.Name(), f.Name, f.Type))
		}
		if e := f.Tag.Get("enum"); e != "" {
			qf.enum = strings.Split(e, ",")
		}
		for tag, dst := range map[string]**int{"min": &qf.min, "max": &qf.max} {
			if s := f.Tag.Get(tag); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil {
					panic(fmt.Sprintf("api: query field %s.%s: %s tag %q is not an integer", t.Name(), f.Name, tag, s))
				}
				*dst = &n
			}
		}
		out = append(out, qf)
	}
	return out
}

// queryParams is the OpenAPI form of a QueryOf struct.
func queryParams(v any) []any {
	var out []any
	for _, f := range queryFields(reflect.TypeOf(v)) {
		p := Param{Name: f.name, Description: f.doc, Type: f.kind, Format: f.format, Enum: f.enum, Min: f.min, Max: f.max}
		out = append(out, map[string]any{"name": f.name, "in": "query", "description": f.doc, "schema": p.schema()})
	}
	return out
}

// DecodeQuery fills dst (a pointer to a QueryOf struct) from r's query string. A value of
// the wrong type, outside its enum or bounds, or given twice is a 400 naming the parameter.
// Parameters the struct does not declare are ignored.
func DecodeQuery(r *http.Request, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic("api: DecodeQuery needs a pointer to a struct")
	}
	v := rv.Elem()
	q := r.URL.Query()
	for _, f := range queryFields(v.Type()) {
		vals := q[f.name]
		if len(vals) == 0 || vals[0] == "" {
			continue
		}
		if len(vals) > 1 {
			return BadRequest(fmt.Sprintf("%s is given %d times; give it once", f.name, len(vals))).With("parameter", f.name)
		}
		s := vals[0]
		field := v.Field(f.index)
		val, err := f.parse(s)
		if err != nil {
			return err
		}
		if f.ptr {
			p := reflect.New(val.Type())
			p.Elem().Set(val)
			val = p
		}
		field.Set(val)
	}
	return nil
}

// parse checks one value against the field's type, enum and bounds.
func (f queryField) parse(s string) (reflect.Value, error) {
	switch f.kind {
	case "boolean":
		if s != "true" && s != "false" {
			return reflect.Value{}, BadRequest(fmt.Sprintf("%s must be true or false, not %q", f.name, s)).With("parameter", f.name)
		}
		return reflect.ValueOf(s == "true"), nil
	case "integer":
		n, err := strconv.Atoi(s)
		if err != nil || (f.min != nil && n < *f.min) || (f.max != nil && n > *f.max) {
			return reflect.Value{}, BadRequest(fmt.Sprintf("%s must be an integer%s, not %q", f.name, bounds(f), s)).With("parameter", f.name)
		}
		return reflect.ValueOf(n), nil
	}
	if f.enum != nil && !contains(f.enum, s) {
		return reflect.Value{}, BadRequest(fmt.Sprintf("%s must be one of %s, not %q", f.name, strings.Join(f.enum, ", "), s)).With("parameter", f.name)
	}
	if f.pattern != nil && !f.pattern.MatchString(s) {
		return reflect.Value{}, BadRequest(fmt.Sprintf("%s must match %s, not %q", f.name, f.pattern, s)).With("parameter", f.name)
	}
	if f.format == "date-time" {
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return reflect.Value{}, BadRequest(fmt.Sprintf("%s must be an RFC 3339 time, not %q", f.name, s)).With("parameter", f.name)
		}
	}
	return reflect.ValueOf(s), nil
}

// checkParams holds a request to the typed Params of its route before the handler runs,
// so what the OpenAPI document promises is what the server enforces. Empty values count
// as absent, as in DecodeQuery.
func checkParams(r *http.Request, params []Param) error {
	q := r.URL.Query()
	for _, p := range params {
		vals := q[p.Name]
		if len(vals) == 0 || vals[0] == "" {
			continue
		}
		f := p.field()
		if len(vals) > 1 {
			return BadRequest(fmt.Sprintf("%s is given %d times; give it once", f.name, len(vals))).With("parameter", f.name)
		}
		if _, err := f.parse(vals[0]); err != nil {
			return err
		}
	}
	return nil
}

// field is the Param as a queryField, for parse.
func (p Param) field() queryField {
	f := queryField{name: p.Name, doc: p.Description, enum: p.Enum, min: p.Min, max: p.Max, kind: p.Type, format: p.Format}
	if f.kind == "" {
		f.kind = "string"
	}
	if p.Pattern != "" {
		f.pattern = regexp.MustCompile(p.Pattern)
	}
	return f
}

func bounds(f queryField) string {
	switch {
	case f.min != nil && f.max != nil:
		return fmt.Sprintf(" from %d to %d", *f.min, *f.max)
	case f.min != nil:
		return fmt.Sprintf(" of at least %d", *f.min)
	case f.max != nil:
		return fmt.Sprintf(" of at most %d", *f.max)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
