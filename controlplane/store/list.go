package store

import (
	"context"
	"fmt"
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
