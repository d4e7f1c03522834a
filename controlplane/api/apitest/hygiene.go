package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
)

// TextSlot is one string a request body can carry: its field path as the
// validation problem names it, and the limit that applies.
type TextSlot struct {
	Field     string
	MaxLen    int
	Multiline bool
	// body builds a JSON body with v at this slot and nothing else.
	body func(v string) any
	// schema walks the OpenAPI request schema to the slot's schema.
	schema []string
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// TextSlots lists every string slot of a request type, generated from the
// type so a field added later is covered without a test change. Types that
// decode themselves (json.Unmarshaler) validate their own input and are left
// out.
func TextSlots(t reflect.Type) []TextSlot {
	var out []TextSlot
	var walk func(t reflect.Type, field string, schema []string, wrap func(any) any, max int, multi bool, depth int)
	walk = func(t reflect.Type, field string, schema []string, wrap func(any) any, max int, multi bool, depth int) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if depth > 8 || reflect.PointerTo(t).Implements(unmarshalerType) {
			return
		}
		switch t.Kind() {
		case reflect.String:
			w := wrap
			out = append(out, TextSlot{Field: field, MaxLen: max, Multiline: multi, schema: schema,
				body: func(v string) any { return w(v) }})
		case reflect.Slice, reflect.Array:
			if t.Elem().Kind() == reflect.Uint8 {
				return
			}
			walk(t.Elem(), field+"[0]", append(clone(schema), "items"), func(v any) any { return wrap([]any{v}) }, max, multi, depth+1)
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return
			}
			walk(t.Elem(), join(field, "k"), append(clone(schema), "additionalProperties"),
				func(v any) any { return wrap(map[string]any{"k": v}) }, max, multi, depth+1)
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				if !f.IsExported() && !f.Anonymous {
					continue
				}
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" {
					continue
				}
				ft := f.Type
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				max, multi := api.MaxLenOf(f), f.Tag.Get("text") == "multiline"
				if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
					walk(ft, field, schema, wrap, max, multi, depth+1) // promoted fields
					continue
				}
				if name == "" {
					name = f.Name
				}
				n := name
				walk(f.Type, join(field, n), append(clone(schema), "properties", n),
					func(v any) any { return wrap(map[string]any{n: v}) }, max, multi, depth+1)
			}
		}
	}
	walk(t, "", nil, func(v any) any { return v }, api.DefaultMaxLen, false, 0)
	return out
}

func clone(s []string) []string { return append([]string(nil), s...) }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// CheckInputHygiene runs every string slot of every route's request body
// through api.Decode: a value at the limit passes, one character more and a
// control character (ESC) are refused with a 422 naming the field, and the
// OpenAPI document declares the same maxLength.
func CheckInputHygiene(t *testing.T, s *api.Server) {
	t.Helper()
	doc := s.OpenAPI()
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	paths := doc["paths"].(map[string]map[string]any)
	for _, rt := range s.Routes() {
		if rt.Request == nil {
			continue
		}
		typ := reflect.TypeOf(rt.Request)
		op, _ := paths[param.ReplaceAllString(rt.Path, "{$1}")][strings.ToLower(rt.Method)].(map[string]any)
		for _, slot := range TextSlots(typ) {
			name := rt.Method + " " + rt.Path + " " + slot.Field
			decode := func(v string) error {
				b, err := json.Marshal(slot.body(v))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
				r.Header.Set("Content-Type", "application/json")
				return api.Decode(r, reflect.New(typ).Interface())
			}
			if err := decode(strings.Repeat("a", slot.MaxLen)); err != nil {
				t.Errorf("%s: a value of %d characters (the limit) is refused: %v", name, slot.MaxLen, err)
			}
			// Characters, not bytes, are counted: two-byte ones where the body cap allows.
			over := "é"
			if (slot.MaxLen+1)*2+1024 > api.MaxBodyBytes {
				over = "a"
			}
			expectField(t, name+" (over-long)", decode(strings.Repeat(over, slot.MaxLen+1)), slot.Field)
			expectField(t, name+" (ESC)", decode("ok\x1b[2Jok"), slot.Field)
			expectField(t, name+" (bidi override)", decode("abc\u202edcba"), slot.Field)
			if slot.Multiline {
				if err := decode("line one\nline two"); err != nil {
					t.Errorf("%s: a multiline field refuses a newline: %v", name, err)
				}
			} else {
				expectField(t, name+" (newline)", decode("row\nspoof"), slot.Field)
			}
			if got := schemaAt(op, schemas, slot.schema); got["maxLength"] != slot.MaxLen {
				t.Errorf("%s: OpenAPI maxLength %v, want %d", name, got["maxLength"], slot.MaxLen)
			}
		}
	}
}

func expectField(t *testing.T, name string, err error, field string) {
	t.Helper()
	var p *api.Problem
	switch {
	case err == nil:
		t.Errorf("%s: accepted", name)
	case !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity:
		t.Errorf("%s: %v, want a 422 validation problem", name, err)
	case p.Extensions["field"] != field:
		t.Errorf("%s: problem names field %v, want %q", name, p.Extensions["field"], field)
	}
}

// schemaAt follows a path of keys from an operation's JSON request schema,
// resolving $refs on the way.
func schemaAt(op map[string]any, schemas map[string]any, path []string) map[string]any {
	cur, _ := dig(op, "requestBody", "content", "application/json", "schema").(map[string]any)
	resolve := func(m map[string]any) map[string]any {
		for m != nil {
			ref, ok := m["$ref"].(string)
			if !ok {
				return m
			}
			m, _ = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		}
		return m
	}
	cur = resolve(cur)
	for _, k := range path {
		if cur == nil {
			return map[string]any{}
		}
		next, _ := cur[k].(map[string]any)
		cur = resolve(next)
	}
	if cur == nil {
		return map[string]any{}
	}
	return cur
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
