package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
)

// inProcessKey carries the principal of an in-process call. Only code in this binary can put
// a value under an unexported key, so no request from the network can claim it.
type inProcessKey struct{}

// CallError is a non-2xx answer to an in-process call: the problem the API would have sent.
type CallError struct {
	Status int
	Type   string
	Title  string
	Detail string
	// Extensions holds the problem's other members (required_role, errors, …).
	Extensions map[string]any
}

func (e *CallError) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	return e.Title
}

// Call runs one API route in-process as p, exactly as if p had sent it with a token: the same
// route table, role and plan checks, validation and audit. The console is a client of the API
// through this, so every business rule lives behind the REST routes. body is JSON-encoded
// (nil for none; an io.Reader is sent as it is); a 2xx JSON answer is decoded into out (nil to discard). A non-2xx answer
// returns a *CallError.
func (s *Server) Call(ctx context.Context, p Principal, method, target string, body, out any) error {
	var rd io.Reader
	rawBody := false
	if r, ok := body.(io.Reader); ok {
		// A raw body (a CSV import) goes as it is, mirroring out as an io.Writer.
		rd, rawBody = r, true
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("call %s %s: encode body: %w", method, target, err)
		}
		rd = bytes.NewReader(b)
	}
	if !strings.HasPrefix(target, "/") {
		return fmt.Errorf("call %s %s: target must be a path", method, target)
	}
	req := httptest.NewRequestWithContext(context.WithValue(ctx, inProcessKey{}, p), method, target, rd)
	if body != nil && !rawBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if rid := RequestID(ctx); rid != "" {
		req.Header.Set("X-Request-Id", rid)
	}
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	res := rec.Result()
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("call %s %s: read answer: %w", method, target, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		ce := &CallError{Status: res.StatusCode, Title: http.StatusText(res.StatusCode)}
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil {
			ce.Extensions = map[string]any{}
			for k, v := range m {
				switch k {
				case "type":
					ce.Type, _ = v.(string)
				case "title":
					ce.Title, _ = v.(string)
				case "detail":
					ce.Detail, _ = v.(string)
				case "status", "instance":
				default:
					ce.Extensions[k] = v
				}
			}
		}
		return ce
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err := w.Write(raw)
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("call %s %s: decode answer: %w", method, target, err)
	}
	return nil
}

// AsCallError returns the problem behind an in-process call's error, if it is one.
func AsCallError(err error) (*CallError, bool) {
	var ce *CallError
	ok := errors.As(err, &ce)
	return ce, ok
}
