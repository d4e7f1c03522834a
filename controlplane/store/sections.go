package store

import (
	"encoding/json"
	"errors"
)

// decodeSections splits a stored inventory (a JSON object of sections, as encodeSections
// writes it) into its top-level members without decoding them. Each delta report reads
// its device's whole inventory back; encoding/json validated and copied every section
// of it, a tenth of the control plane's CPU at 2,000 reports/s. Values alias b. Anything
// this scanner does not expect goes to encoding/json, which also reports malformed input.
func decodeSections(b []byte) (map[string]json.RawMessage, error) {
	if m, ok := splitObject(b); ok {
		return m, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// splitObject handles the common case: an object whose keys are plain strings (no
// escapes) and whose values are well-formed JSON. It does not validate values fully
// (their content was validated when they were first encoded); it only tracks strings and
// nesting to find where each value ends.
func splitObject(b []byte) (map[string]json.RawMessage, bool) {
	m := make(map[string]json.RawMessage, 16)
	ok := walkObject(b, func(key, val []byte) { m[string(key)] = json.RawMessage(val) })
	if !ok {
		return nil, false
	}
	return m, true
}

// walkObject calls fn with each top-level member of the object b, in order, without
// allocating: key and val alias b (val capped at its end, so appending to it copies).
// It returns false, possibly after some calls, for anything splitObject leaves to
// encoding/json.
func walkObject(b []byte, fn func(key, val []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		start := i + 1
		i = start
		for i < len(b) && b[i] != '"' {
			if b[i] == '\\' || b[i] < 0x20 || b[i] >= 0x80 {
				return false // escaped or non-ASCII keys take the slow path
			}
			i++
		}
		if i >= len(b) {
			return false
		}
		key := b[start:i]
		i = skipSpace(b, i+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		end, err := valueEnd(b, i)
		if err != nil || end == i {
			return false
		}
		fn(key, b[i:end:end])
		i = skipSpace(b, end)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

var errUnbalanced = errors.New("unbalanced JSON value")

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			j++
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(b) {
				return 0, errUnbalanced
			}
			if depth == 0 {
				return j + 1, nil
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j, nil // the end of the enclosing object: a scalar ended here
			}
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return j, nil
			}
		}
	}
	if depth != 0 {
		return 0, errUnbalanced
	}
	return len(b), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// WalkSections calls fn with each top-level member of a JSON object (an inventory as
// protojson writes it), without decoding or copying: key and val alias b. It returns
// false, possibly after some calls, for input it leaves to encoding/json (escaped or
// non-ASCII keys, malformed JSON); callers then decode b with encoding/json.
func WalkSections(b []byte, fn func(key, val []byte)) bool { return walkObject(b, fn) }
