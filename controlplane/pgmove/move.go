package pgmove

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// ErrNotEmpty: the target database already holds data.
var ErrNotEmpty = errors.New("target database is not empty")

// Counts are rows per table.
type Counts map[string]int64

// Options tune Move.
type Options struct {
	// Progress is told each table's row count once it is copied, and nanomdm's summary
	// with rows -1 (may be nil).
	Progress func(table string, rows int64)
	// BatchRows bounds the rows per INSERT (default 500).
	BatchRows int
	// NanoMDM moves nanomdm's state; without it an installation holding any is refused.
	NanoMDM NanoMDM
}

// Move copies src (SQLite) into dst (Postgres); both must be migrated. It refuses a
// target holding any row, and commits nothing unless every table's count matches.
func Move(ctx context.Context, src, dst *store.DB, o Options) (Counts, error) {
	if src.Dialect != store.SQLite || dst.Dialect != store.Postgres {
		return nil, fmt.Errorf("move from sqlite to postgres, not %s to %s", src.Dialect, dst.Dialect)
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 500
	}
	plan, err := NewPlan(ctx, src, dst)
	if err != nil {
		return nil, err
	}
	if err := ensureEmpty(ctx, dst, plan); err != nil {
		return nil, err
	}
	// One read transaction on SQLite (a consistent snapshot even if someone writes) and
	// one write transaction on Postgres (all or nothing).
	stx, err := src.SQL.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin sqlite: %w", err)
	}
	defer stx.Rollback() //nolint:errcheck // read-only
	dtx, err := dst.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin postgres: %w", err)
	}
	defer dtx.Rollback() //nolint:errcheck // no-op after commit
	counts := Counts{}
	for _, t := range plan.Tables {
		n, err := copyTable(ctx, stx, dtx, t, o.BatchRows)
		if err != nil {
			return nil, err
		}
		counts[t.Name] = n
		if o.Progress != nil {
			o.Progress(t.Name, n)
		}
	}
	schema, err := pgSchema(ctx, dst)
	if err != nil {
		return nil, err
	}
	if err := fixSequences(ctx, dtx, schema, plan); err != nil {
		return nil, err
	}
	for _, t := range plan.Tables {
		var n int64
		if err := dtx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quote(t.Name)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t.Name, err)
		}
		if n != counts[t.Name] {
			return nil, fmt.Errorf("%s: %d rows in postgres after copying %d", t.Name, n, counts[t.Name])
		}
	}
	undo, err := moveNanoMDM(ctx, stx, src, dst, o)
	if err != nil {
		return nil, err
	}
	if err := dtx.Commit(); err != nil {
		if undo != nil {
			if uerr := undo(context.Background()); uerr != nil {
				err = fmt.Errorf("%w (and undoing the nanomdm move failed: %v)", err, uerr)
			}
		}
		return nil, fmt.Errorf("commit: %w", err)
	}
	return counts, nil
}

// ensureEmpty refuses a target with rows in any table the move writes.
func ensureEmpty(ctx context.Context, dst *store.DB, plan Plan) error {
	var full []string
	for _, t := range plan.Tables {
		var any bool
		if err := dst.SQL.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+quote(t.Name)+`)`).Scan(&any); err != nil {
			return fmt.Errorf("check %s: %w", t.Name, err)
		}
		if any {
			full = append(full, t.Name)
		}
	}
	if len(full) > 0 {
		return fmt.Errorf("%w: %s hold rows; move into a freshly created database", ErrNotEmpty, strings.Join(full, ", "))
	}
	return nil
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

// selectExpr reads a column from SQLite in the form the converter expects: JSON as
// text (River keeps SQLite's binary JSONB in blobs).
func selectExpr(c Column) string {
	switch c.kind {
	case kindJSON, kindJSONArray, kindTextArray:
		return "json(" + quote(c.Name) + ")"
	}
	return quote(c.Name)
}

// placeholder is the Postgres expression receiving parameter n for c.
func placeholder(c Column, n int) string {
	p := "$" + strconv.Itoa(n)
	switch c.kind {
	case kindTextArray:
		return fmt.Sprintf("(CASE WHEN %[1]s::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(%[1]s::jsonb))::%[2]s END)", p, c.PGType)
	case kindJSONArray:
		return fmt.Sprintf("(CASE WHEN %[1]s::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements(%[1]s::jsonb))::%[2]s END)", p, c.PGType)
	case kindBits:
		return p + "::bigint::" + c.PGType
	case kindOther:
		return p + "::text::" + c.PGType
	}
	return p + "::" + c.PGType
}

func copyTable(ctx context.Context, stx, dtx *sql.Tx, t Table, batch int) (int64, error) {
	sel := make([]string, len(t.Columns))
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		sel[i], names[i] = selectExpr(c), quote(c.Name)
	}
	rows, err := stx.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quote(t.Name))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", t.Name, err)
	}
	defer rows.Close()
	// Parameters are capped at 65535 per statement.
	if max := 60000 / len(t.Columns); batch > max {
		batch = max
	}
	insert := "INSERT INTO " + quote(t.Name) + " (" + strings.Join(names, ", ") + ") VALUES "
	var args []any
	var tuples []string
	var total int64
	flush := func() error {
		if len(tuples) == 0 {
			return nil
		}
		if _, err := dtx.ExecContext(ctx, insert+strings.Join(tuples, ", "), args...); err != nil {
			return fmt.Errorf("write %s: %w", t.Name, err)
		}
		args, tuples = args[:0], tuples[:0]
		return nil
	}
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(t.Columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("read %s: %w", t.Name, err)
		}
		ph := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			v, err := convert(c, vals[i])
			if err != nil {
				return 0, fmt.Errorf("%s.%s row %d: %w", t.Name, c.Name, total+1, err)
			}
			args = append(args, v)
			ph[i] = placeholder(c, len(args))
		}
		tuples = append(tuples, "("+strings.Join(ph, ", ")+")")
		total++
		if len(tuples) >= batch {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", t.Name, err)
	}
	return total, flush()
}

// timeLayouts are the forms SQLite rows hold times in: the driver's own
// (_time_format=sqlite), CURRENT_TIMESTAMP and River's (UTC without a zone), RFC 3339.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// convert turns a SQLite value into the Go value for a Postgres column of kind c.kind.
// nil stays NULL.
func convert(c Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.kind {
	case kindBool:
		switch x := v.(type) {
		case int64:
			return x != 0, nil
		case bool:
			return x, nil
		case string:
			return strconv.ParseBool(x)
		}
	case kindInt, kindBits:
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			if x != float64(int64(x)) {
				return nil, fmt.Errorf("%v is not a whole number", x)
			}
			return int64(x), nil
		case string:
			return strconv.ParseInt(x, 10, 64)
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case kindTime:
		switch x := v.(type) {
		case time.Time:
			return x, nil
		case string:
			for _, l := range timeLayouts {
				if t, err := time.Parse(l, x); err == nil {
					return t, nil
				}
			}
			return nil, fmt.Errorf("time %q in no known layout", x)
		case int64:
			return time.Unix(x, 0).UTC(), nil
		}
	case kindBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case kindText, kindJSON, kindJSONArray, kindTextArray, kindOther:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		}
	}
	return nil, fmt.Errorf("cannot convert %T to %s", v, c.PGType)
}

// fixSequences advances every serial/identity sequence past the copied ids, so the next
// insert on Postgres does not collide with a moved row.
func fixSequences(ctx context.Context, dtx *sql.Tx, schema string, plan Plan) error {
	for _, t := range plan.Tables {
		for _, c := range t.Columns {
			if c.kind != kindInt {
				continue
			}
			var seq sql.NullString
			if err := dtx.QueryRowContext(ctx, `SELECT pg_get_serial_sequence($1, $2)`, quote(schema)+"."+quote(t.Name), c.Name).Scan(&seq); err != nil {
				return fmt.Errorf("sequence of %s.%s: %w", t.Name, c.Name, err)
			}
			if !seq.Valid {
				continue
			}
			q := fmt.Sprintf(`SELECT setval($1, COALESCE((SELECT MAX(%s) FROM %s), 0) + 1, false)`, quote(c.Name), quote(t.Name))
			if _, err := dtx.ExecContext(ctx, q, seq.String); err != nil {
				return fmt.Errorf("advance %s: %w", seq.String, err)
			}
		}
	}
	return nil
}
