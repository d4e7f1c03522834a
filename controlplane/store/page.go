package store

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Page asks for one page of a list ordered by id (UUIDv7, so by creation time).
type Page struct {
	Limit  int
	Cursor string // opaque, from a previous NextCursor
}

// DefaultLimit and MaxLimit bound every list.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// EncodeCursor makes an opaque cursor from the last id of a page.
func EncodeCursor(lastID string) string {
	if lastID == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// DecodeCursor reverses EncodeCursor; a malformed cursor is an error the API shows as 400.
func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 64 {
		return "", fmt.Errorf("%w: malformed cursor", ErrInvalidInput)
	}
	return string(b), nil
}

// ErrInvalidInput marks a caller mistake found by the store (bad cursor, bad filter).
var ErrInvalidInput = fmt.Errorf("invalid input")

// where builds a WHERE clause with $N placeholders valid on both dialects.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(w.args))))
}

// addIf adds cond only when the filter value v is set (not "").
func (w *where) addIf(cond string, v string) {
	if v != "" {
		w.add(cond, v)
	}
}

func (w *where) page(p Page) (string, error) {
	after, err := DecodeCursor(p.Cursor)
	if err != nil {
		return "", err
	}
	if after != "" {
		w.add("id > ?", after)
	}
	return fmt.Sprintf(" WHERE %s ORDER BY id LIMIT %d", strings.Join(w.conds, " AND "), p.limit()+1), nil
}

// trimPage cuts the look-ahead row and returns the next cursor.
func trimPage[T any](items []T, p Page, id func(T) string) ([]T, string) {
	if len(items) > p.limit() {
		items = items[:p.limit()]
		return items, EncodeCursor(id(items[len(items)-1]))
	}
	return items, ""
}
