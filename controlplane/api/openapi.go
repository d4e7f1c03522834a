package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

var pathParam = regexp.MustCompile(`\{([a-zA-Z_][a-zA-Z0-9_]*)(\.\.\.)?\}`)

// OpenAPI builds the OpenAPI 3.1 document from the route table, so it cannot drift from
// what the server actually serves.
func (s *Server) OpenAPI() map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		p := pathParam.ReplaceAllString(rt.Path, "{$1}")
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		op := map[string]any{
			"operationId": operationID(rt),
			"summary":     rt.Summary,
			"tags":        []string{tagOf(rt)},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q.Name, "in": "query", "description": q.Description, "schema": q.schema()})
		}
		if rt.QueryOf != nil {
			params = append(params, queryParams(rt.QueryOf)...)
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": g.input(reflect.TypeOf(rt.Request))}}}
		}
		status := rt.Status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": http.StatusText(status)}
		if rt.Response != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.Response))}}
		}
		responses := map[string]any{itoa(status): ok,
			"4XX": problemResponse("Client error: bad input (400), plan (402), role (403), not found (404), conflict (409), validation (422)", nil),
			"5XX": problemResponse("Server error; 503 while the database is unavailable (with Retry-After)", nil)}
		if !rt.Public {
			responses["401"] = problemResponse("Missing or bad token",
				map[string]any{"WWW-Authenticate": header("Bearer challenge (RFC 6750); error=\"invalid_token\" when a token was sent")})
			responses["429"] = problemResponse("Too many failed authentications from this address",
				map[string]any{"Retry-After": header("seconds to wait", "integer")})
		}
		op["responses"] = responses
		if rt.Public {
			op["security"] = []any{}
		} else {
			desc := "Minimum role: " + string(rt.Role) + "."
			if rt.Feature != domain.FeatureNone {
				desc += " Plan: " + string(rt.Feature.RequiredPlan()) + " or higher (" + string(rt.Feature) + ")."
			}
			op["description"] = desc
		}
		paths[p][strings.ToLower(rt.Method)] = op
	}
	g.defs["Problem"] = map[string]any{"type": "object", "required": []string{"type", "title", "status"},
		"properties": map[string]any{"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
			"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"}, "instance": map[string]any{"type": "string"},
			"request_id": map[string]any{"type": "string"}}}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Lanyard admin API", "version": "v1",
			"description": "Device lifecycle for companies on Justworks. Errors are application/problem+json (RFC 9457)."},
		"servers":    []any{map[string]any{"url": "/"}},
		"security":   []any{map[string]any{"bearer": []string{}}},
		"paths":      paths,
		"components": map[string]any{"schemas": g.defs, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
}

// problemResponse is an error response carrying a problem+json body.
func problemResponse(desc string, headers map[string]any) map[string]any {
	r := map[string]any{"description": desc, "content": map[string]any{
		"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
	if headers != nil {
		r["headers"] = headers
	}
	return r
}

func header(desc string, typ ...string) map[string]any {
	t := "string"
	if len(typ) > 0 {
		t = typ[0]
	}
	return map[string]any{"description": desc, "schema": map[string]any{"type": t}}
}

func tagOf(rt Route) string {
	if rt.Tag != "" {
		return rt.Tag
	}
	return "Other"
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func operationID(rt Route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, seg := range strings.Split(strings.TrimPrefix(rt.Path, "/api/v1/"), "/") {
		seg = strings.Trim(seg, "{}.")
		if seg == "" {
			continue
		}
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

type schemaGen struct {
	defs map[string]any
	in   bool // generating a request body: own defs ("…Body"), strings carry maxLength
}

// input is the schema of a request body: the same shapes, with the length
// limits Decode enforces, under their own names so response schemas stay
// free of limits their data (from HR, agents) never promised.
func (g *schemaGen) input(t reflect.Type) map[string]any {
	g.in = true
	defer func() { g.in = false }()
	return g.schema(t)
}

// withMaxLen sets maxLength on a string schema (or on the strings of an array
// or map schema).
func withMaxLen(s map[string]any, n int) {
	switch s["type"] {
	case "string":
		if s["format"] == nil && s["contentEncoding"] == nil {
			s["maxLength"] = n
		}
	case "array":
		if items, ok := s["items"].(map[string]any); ok {
			withMaxLen(items, n)
		}
	case "object":
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			withMaxLen(ap, n)
		}
	}
}

var (
	timeType = reflect.TypeOf(time.Time{})
	dateType = reflect.TypeOf(domain.Date{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

func defName(t reflect.Type) string {
	name := t.Name()
	// Generic instantiations look like List[github.com/.../domain.Device]; keep it readable.
	if i := strings.IndexByte(name, '['); i >= 0 {
		inner := name[i+1 : len(name)-1]
		if j := strings.LastIndexByte(inner, '.'); j >= 0 {
			inner = inner[j+1:]
		}
		name = name[:i] + "Of" + inner
	}
	return strings.NewReplacer("*", "", "[", "", "]", "").Replace(name)
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case dateType:
		return map[string]any{"type": "string", "format": "date"}
	case rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := defName(t)
		if name == "" {
			return g.object(t)
		}
		if g.in {
			name += "Body"
		}
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = map[string]any{} // reserve first: types may be recursive
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	sort.Strings(required)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		if g.in {
			withMaxLen(props[name].(map[string]any), MaxLenOf(f))
		}
		// enum:"a,b,c" documents the values a string field takes (command states, types).
		if enum := f.Tag.Get("enum"); enum != "" && f.Type.Kind() == reflect.String {
			props[name].(map[string]any)["enum"] = strings.Split(enum, ",")
		}
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}
