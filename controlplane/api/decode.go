package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// MaxBodyBytes caps every request body; the admin API never needs more.
const MaxBodyBytes = 1 << 20

// Decode reads a JSON body into v: one object, no unknown fields, capped size, and
// every string within its length limit and free of control characters. Every
// failure is a 4xx problem that says what was wrong.
func Decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return newProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"send the body as application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if dec.More() {
		return BadRequest("the body must contain a single JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return BadRequest("unexpected data after the JSON object")
	}
	// Lengths and control characters, for every string of every body (hygiene.go).
	if p := checkBody(v); p != nil {
		return p
	}
	return nil
}

func decodeProblem(err error) *Problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return newProblem(http.StatusRequestEntityTooLarge, "body-too-large", "Body too large",
			fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes))
	case errors.As(err, &syn):
		return BadRequest(fmt.Sprintf("malformed JSON at byte %d", syn.Offset))
	case errors.As(err, &typ):
		return BadRequest(fmt.Sprintf("field %q must be %s, not %s", typ.Field, typ.Type, typ.Value))
	case errors.Is(err, io.EOF):
		return BadRequest("the body is empty; send a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadRequest(fmt.Sprintf("unknown field %q", field)).With("field", field)
	}
	return BadRequest("invalid JSON body: " + err.Error())
}

// JSON writes v with status.
func JSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// List is the envelope of every paginated response.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// NewList never returns a null items array.
func NewList[T any](items []T, next string) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{Items: items, NextCursor: next}
}

// PageFrom reads ?limit= and ?cursor=.
func PageFrom(r *http.Request) (store.Page, error) {
	p := store.Page{Cursor: r.URL.Query().Get("cursor")}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxLimit {
			return p, BadRequest(fmt.Sprintf("limit must be an integer from 1 to %d", store.MaxLimit))
		}
		p.Limit = n
	}
	return p, nil
}
