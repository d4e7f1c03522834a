package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/lanyardhq/lanyard/controlplane/api"
)

// fuzzBody exercises every place Decode's hygiene walk reaches: plain and
// tagged fields, slices, maps (keys too), pointers, embedded structs and
// interface values.
type fuzzBody struct {
	Name   string            `json:"name"`
	Notes  string            `json:"notes" maxlen:"4000" text:"multiline"`
	Short  string            `json:"short" maxlen:"8"`
	Tags   []string          `json:"tags"`
	Labels map[string]string `json:"labels"`
	Ptr    *string           `json:"ptr"`
	Any    any               `json:"any"`
	Raw    []byte            `json:"raw"`
	fuzzEmbedded
}

type fuzzEmbedded struct {
	Inner string `json:"inner" maxlen:"16"`
}

// hygienic is an oracle written apart from hygiene.go: the length in runes
// and a byte-level scan of the UTF-8 for the refused code points.
func hygienic(s string, max int, multiline bool) bool {
	if utf8.RuneCountInString(s) > max {
		return false
	}
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\n' || c == '\r' || c == '\t':
			if !multiline {
				return false
			}
		case c < 0x20 || c == 0x7f:
			return false
		case c == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9f: // C1 controls
			return false
		case c == 0xe2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2] >= 0xaa && b[i+2] <= 0xae: // U+202A..E
			return false
		case c == 0xe2 && i+2 < len(b) && b[i+1] == 0x81 && b[i+2] >= 0xa6 && b[i+2] <= 0xa9: // U+2066..9
			return false
		}
	}
	return true
}

// anyStrings collects the strings (keys included) of a decoded interface value.
func anyStrings(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case []any:
		for _, e := range x {
			anyStrings(e, out)
		}
	case map[string]any:
		for k, e := range x {
			*out = append(*out, k)
			anyStrings(e, out)
		}
	}
}

// FuzzDecode: Decode either fails with a 4xx problem or returns a body whose
// every string is within its limit and free of control and bidi characters;
// an accepted body, encoded again, decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"Ada","notes":"line 1\nline 2\ttab","short":"12345678","tags":["a","b"],"labels":{"k":"v"},"ptr":"p","any":{"x":["y",1]},"raw":"AAE=","inner":"i"}`,
		`{"name":"a\u001bb"}`,
		`{"short":"123456789"}`,
		`{"labels":{"k\u202e":"v"}}`,
		`{"any":["\u0085"]}`,
		`{"tags":["\u2067"]}`,
		`{"notes":"\r\n"}`,
		`{"name":"x"} {"name":"y"}`,
		`{"unknown":1}`,
		`{"name":1}`,
		``,
		`{"name":"\xff"}`,
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{}`), "text/plain")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		decode := func(body []byte) (fuzzBody, error) {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			var v fuzzBody
			return v, api.Decode(r, &v)
		}
		v, err := decode(body)
		if err != nil {
			var p *api.Problem
			if !errors.As(err, &p) || p.Status < 400 || p.Status > 499 {
				t.Fatalf("Decode error %v is not a 4xx problem", err)
			}
			return
		}
		type check struct {
			s         string
			max       int
			multiline bool
		}
		checks := []check{{v.Name, 1000, false}, {v.Notes, 4000, true}, {v.Short, 8, false}, {v.Inner, 16, false}}
		for _, s := range v.Tags {
			checks = append(checks, check{s, 1000, false})
		}
		for k, s := range v.Labels {
			checks = append(checks, check{k, 1000, false}, check{s, 1000, false})
		}
		if v.Ptr != nil {
			checks = append(checks, check{*v.Ptr, 1000, false})
		}
		var anys []string
		anyStrings(v.Any, &anys)
		for _, s := range anys {
			checks = append(checks, check{s, 1000, false})
		}
		for _, c := range checks {
			if !hygienic(c.s, c.max, c.multiline) {
				t.Fatalf("Decode accepted %q (limit %d, multiline %v)", c.s, c.max, c.multiline)
			}
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		ct = "application/json"
		v2, err := decode(again)
		if err != nil {
			t.Fatalf("re-encoded body %s refused: %v", again, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed the body:\n%+v\n%+v", v, v2)
		}
	})
}
