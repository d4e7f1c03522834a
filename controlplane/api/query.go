package api

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
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
		qf := queryField{index: i, name: name, doc: f.Tag.Get("doc")}
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
		s := map[string]any{"type": f.kind}
		if f.enum != nil {
			s["enum"] = f.enum
		}
		if f.min != nil {
			s["minimum"] = *f.min
		}
		if f.max != nil {
			s["maximum"] = *f.max
		}
		out = append(out, map[string]any{"name": f.name, "in": "query", "description": f.doc, "schema": s})
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
		var val reflect.Value
		switch f.kind {
		case "string":
			if f.enum != nil && !contains(f.enum, s) {
				return BadRequest(fmt.Sprintf("%s must be one of %s, not %q", f.name, strings.Join(f.enum, ", "), s)).With("parameter", f.name)
			}
			val = reflect.ValueOf(s)
		case "boolean":
			b, err := strconv.ParseBool(s)
			if err != nil || (s != "true" && s != "false") {
				return BadRequest(fmt.Sprintf("%s must be true or false, not %q", f.name, s)).With("parameter", f.name)
			}
			val = reflect.ValueOf(b)
		case "integer":
			n, err := strconv.Atoi(s)
			if err != nil || (f.min != nil && n < *f.min) || (f.max != nil && n > *f.max) {
				return BadRequest(fmt.Sprintf("%s must be an integer%s, not %q", f.name, bounds(f), s)).With("parameter", f.name)
			}
			val = reflect.ValueOf(n)
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
