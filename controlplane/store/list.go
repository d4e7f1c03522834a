package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// rowScanner is what a scan function reads one row from: *sql.Row or *sql.Rows. It is an
// alias, so the existing scanX(s interface{ Scan(...any) error }) functions fit as they are.
type rowScanner = interface{ Scan(...any) error }

// queryEach runs query and calls each for every row, stopping at the first error. It
// closes the rows, checks rows.Err and wraps every error with what ("list workflows: ...").
func queryEach(ctx context.Context, q Querier, what string, each func(rowScanner) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// queryAll runs query and returns every row read by scan (see queryEach for errors).
func queryAll[T any](ctx context.Context, q Querier, what string, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := queryEach(ctx, q, what, func(s rowScanner) error {
		v, err := scan(s)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// queryPage is queryAll for a query that asks for one page plus a look-ahead row
// (LIMIT p.limit()+1): it cuts the look-ahead row and returns the next cursor, made from id.
func queryPage[T any](ctx context.Context, q Querier, what string, scan func(rowScanner) (T, error), id func(T) string, p Page, query string, args ...any) ([]T, string, error) {
	out, err := queryAll(ctx, q, what, scan, query, args...)
	if err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, p, id)
	return out, next, nil
}

// listPage returns one page of selectFrom ("SELECT cols FROM table") filtered by w and
// ordered by id. A malformed cursor is returned as is (ErrInvalidInput, shown as 400).
func listPage[T any](ctx context.Context, q Querier, what string, scan func(rowScanner) (T, error), id func(T) string, p Page, selectFrom string, w *where) ([]T, string, error) {
	tail, err := w.page(p)
	if err != nil {
		return nil, "", err
	}
	return queryPage(ctx, q, what, scan, id, p, selectFrom+tail, w.args...)
}

// scanString reads a one-column row of text (a list of ids).
func scanString(s rowScanner) (string, error) {
	var v string
	err := s.Scan(&v)
	return v, err
}

// sortKey is one way a list can be ordered: an SQL expression, and whether its values are
// times (scanned and compared as timestamps) or text. Every keyset list breaks ties by id,
// so (key, id) is unique and a page boundary never drops or repeats a row.
type sortKey struct {
	Expr string
	Time bool
}

// listCursor is the position after the last row of a page in a sorted list. It names the
// sort and direction it was made for, so a cursor reused with another sort is refused
// instead of silently skipping rows.
type listCursor struct {
	Sort string `json:"s"`
	Desc bool   `json:"d,omitempty"`
	Key  string `json:"k"`
	ID   string `json:"i"`
}

const maxCursorLen = 1024

func encodeListCursor(c listCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeListCursor(s, sort string, desc bool) (*listCursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c listCursor
	if err != nil || len(s) > maxCursorLen || json.Unmarshal(b, &c) != nil || c.ID == "" {
		return nil, fmt.Errorf("%w: malformed cursor", ErrInvalidInput)
	}
	if c.Sort != sort || c.Desc != desc {
		return nil, fmt.Errorf("%w: the cursor belongs to another sort order; start again without it", ErrInvalidInput)
	}
	return &c, nil
}

// keyValue turns a scanned sort-key value into its cursor form (text, or RFC 3339 for
// times; a missing time sorts as the zero of epochKey).
func keyValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case *time.Time:
		if x == nil {
			return epochKey.Format(time.RFC3339Nano)
		}
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// epochKey is what a missing time sorts as: before every real one.
var epochKey = time.Unix(0, 0).UTC()

// seek adds the keyset condition for cursor c to w and returns the ORDER BY and LIMIT tail.
func (w *where) seek(k sortKey, idExpr string, desc bool, c *listCursor, limit int) (string, error) {
	dir, op := "ASC", ">"
	if desc {
		dir, op = "DESC", "<"
	}
	if c != nil {
		var key any = c.Key
		if k.Time {
			t, err := time.Parse(time.RFC3339Nano, c.Key)
			if err != nil {
				return "", fmt.Errorf("%w: malformed cursor", ErrInvalidInput)
			}
			key = t.UTC()
		}
		w.addArgs(fmt.Sprintf("(%s, %s) %s (?, ?)", k.Expr, idExpr, op), key, c.ID)
	}
	return fmt.Sprintf(" ORDER BY %s %s, %s %s LIMIT %d", k.Expr, dir, idExpr, dir, limit+1), nil
}

// addArgs adds a condition whose successive ? placeholders take args in order.
func (w *where) addArgs(cond string, args ...any) {
	var b strings.Builder
	for _, a := range args {
		i := strings.IndexByte(cond, '?')
		if i < 0 {
			break
		}
		w.args = append(w.args, a)
		b.WriteString(cond[:i])
		fmt.Fprintf(&b, "$%d", len(w.args))
		cond = cond[i+1:]
	}
	b.WriteString(cond)
	w.conds = append(w.conds, b.String())
}

// clause is the WHERE clause (with a leading space), or "" when there is no condition.
func (w *where) clause() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// likePattern makes a case-insensitive substring pattern for `lower(col) LIKE ? ESCAPE '\'`,
// escaping the caller's own % and _ so they match literally.
func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(q)) + "%"
}

// countRows runs SELECT COUNT(*) over from with w's conditions.
func countRows(ctx context.Context, q Querier, what, from string, w *where) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+from+w.clause(), w.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: count: %w", what, err)
	}
	return n, nil
}
