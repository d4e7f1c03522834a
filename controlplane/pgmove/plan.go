// Package pgmove moves a stopped SQLite installation into an empty, migrated Postgres
// database: every table the Postgres schema has, discovered from the catalog (so tables
// of later migrations are covered without touching this package), copied in foreign-key
// order in one transaction with faithful type conversion, then the sequences advanced.
// A table on either side that is neither copied nor on a justified skip list stops the
// move before it writes anything.
package pgmove

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// SkipPostgres are Postgres tables the move does not copy, each with why.
var SkipPostgres = map[string]string{
	"goose_db_version":   "migration bookkeeping: the target's own migrations wrote it",
	"river_migration":    "River's migration bookkeeping: the target's own River migrations wrote it",
	"river_leader":       "a leader lease that lapses within seconds: the new server elects its own",
	"river_notification": "wake-up messages for clients running at the time; the copied jobs are found by polling",
}

// SkipSQLite are SQLite tables without a Postgres table of the same name.
var SkipSQLite = map[string]string{
	"mdm_kv": "nanomdm's key-value storage: replayed into nanomdm's own Postgres schema (Options.NanoMDM, apple.NanoMDMMove), not copied as rows",
}

// kind is how a value is converted on its way to Postgres.
type kind int

const (
	kindText kind = iota
	kindInt
	kindBool
	kindTime
	kindBytes
	kindJSON
	kindTextArray // text[] / varchar[] from a JSON array
	kindJSONArray // jsonb[] from a JSON array of documents
	kindBits      // bit(n) from an integer bit mask (River's unique_states)
	kindOther     // enums and the rest: text cast to the column type
)

// Column is a column present on both sides.
type Column struct {
	Name   string
	PGType string // format_type(), e.g. "timestamp with time zone", "bit(8)"
	kind   kind
}

// Table is one table to copy.
type Table struct {
	Name    string
	Columns []Column
}

// Plan is what a move copies, in foreign-key order.
type Plan struct {
	Tables []Table
	// Skipped are the skip-list tables found on each side (name → reason).
	Skipped map[string]string
}

type pgColumn struct {
	name, typ, udt string
	hasDefault     bool
	nullable       bool
}

// NewPlan compares the two schemas. Both databases must be migrated to the same version.
func NewPlan(ctx context.Context, src, dst *store.DB) (Plan, error) {
	schema, err := pgSchema(ctx, dst)
	if err != nil {
		return Plan{}, err
	}
	pgTables, err := store.QueryStrings(ctx, dst.SQL, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name`, schema)
	if err != nil {
		return Plan{}, fmt.Errorf("list postgres tables: %w", err)
	}
	liteTables, err := store.QueryStrings(ctx, src.SQL, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return Plan{}, fmt.Errorf("list sqlite tables: %w", err)
	}
	inLite := map[string]bool{}
	for _, t := range liteTables {
		inLite[t] = true
	}
	p := Plan{Skipped: map[string]string{}}
	var problems []string
	copied := map[string]bool{}
	for _, t := range pgTables {
		if why, ok := SkipPostgres[t]; ok {
			p.Skipped[t] = why
			continue
		}
		if !inLite[t] {
			problems = append(problems, fmt.Sprintf("postgres table %s has no SQLite counterpart and is not on the skip list", t))
			continue
		}
		tbl, err := planTable(ctx, src, dst, schema, t)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		copied[t] = true
		p.Tables = append(p.Tables, tbl)
	}
	for _, t := range liteTables {
		if copied[t] || p.Skipped[t] != "" {
			continue
		}
		if why, ok := SkipSQLite[t]; ok {
			p.Skipped[t] = why
			continue
		}
		problems = append(problems, fmt.Sprintf("sqlite table %s has no Postgres counterpart and is not on the skip list", t))
	}
	if len(problems) > 0 {
		return Plan{}, fmt.Errorf("schemas differ (are both migrated by this version?): %s", strings.Join(problems, "; "))
	}
	if p.Tables, err = fkOrder(ctx, dst, schema, p.Tables); err != nil {
		return Plan{}, err
	}
	return p, nil
}

func pgSchema(ctx context.Context, db *store.DB) (string, error) {
	if db.Schema != "" {
		return db.Schema, nil
	}
	var s string
	if err := db.SQL.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&s); err != nil {
		return "", fmt.Errorf("current schema: %w", err)
	}
	return s, nil
}

func planTable(ctx context.Context, src, dst *store.DB, schema, table string) (Table, error) {
	rows, err := dst.SQL.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.atthasdef, NOT a.attnotnull
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_type t ON t.oid = a.atttypid
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, schema, table)
	if err != nil {
		return Table{}, fmt.Errorf("columns of postgres %s: %w", table, err)
	}
	var pgCols []pgColumn
	for rows.Next() {
		var c pgColumn
		if err := rows.Scan(&c.name, &c.typ, &c.udt, &c.hasDefault, &c.nullable); err != nil {
			rows.Close()
			return Table{}, err
		}
		pgCols = append(pgCols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Table{}, err
	}
	liteCols, err := store.QueryStrings(ctx, src.SQL, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return Table{}, fmt.Errorf("columns of sqlite %s: %w", table, err)
	}
	t := Table{Name: table}
	for _, c := range pgCols {
		if !slices.Contains(liteCols, c.name) {
			if c.hasDefault || c.nullable {
				continue // the target fills it as a fresh row would
			}
			return Table{}, fmt.Errorf("postgres column %s.%s (NOT NULL, no default) has no SQLite counterpart", table, c.name)
		}
		t.Columns = append(t.Columns, Column{Name: c.name, PGType: c.typ, kind: kindOf(c)})
	}
	for _, name := range liteCols {
		if !slices.ContainsFunc(t.Columns, func(c Column) bool { return c.Name == name }) {
			return Table{}, fmt.Errorf("sqlite column %s.%s has no Postgres counterpart", table, name)
		}
	}
	return t, nil
}

func kindOf(c pgColumn) kind {
	switch c.udt {
	case "text", "varchar", "bpchar", "name", "citext", "uuid":
		return kindText
	case "int2", "int4", "int8", "numeric":
		return kindInt
	case "bool":
		return kindBool
	case "timestamptz", "timestamp", "date":
		return kindTime
	case "bytea":
		return kindBytes
	case "json", "jsonb":
		return kindJSON
	case "_json", "_jsonb":
		return kindJSONArray
	case "bit", "varbit":
		return kindBits
	}
	if strings.HasPrefix(c.udt, "_") {
		return kindTextArray
	}
	return kindOther
}

// fkOrder sorts tables so every table comes after the tables its foreign keys reference.
func fkOrder(ctx context.Context, dst *store.DB, schema string, tables []Table) ([]Table, error) {
	rows, err := dst.SQL.QueryContext(ctx, `SELECT DISTINCT c.relname, r.relname FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE k.contype = 'f' AND n.nspname = $1 AND c.oid <> r.oid`, schema)
	if err != nil {
		return nil, fmt.Errorf("foreign keys: %w", err)
	}
	deps := map[string][]string{}
	for rows.Next() {
		var from, to string
		if err := rows.Scan(&from, &to); err != nil {
			rows.Close()
			return nil, err
		}
		deps[from] = append(deps[from], to)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	byName := map[string]Table{}
	names := make([]string, 0, len(tables))
	for _, t := range tables {
		byName[t.Name] = t
		names = append(names, t.Name)
	}
	sort.Strings(names)
	var out []Table
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("foreign keys form a cycle: %s", strings.Join(append(path, n), " → "))
		}
		state[n] = 1
		for _, d := range deps[n] {
			if _, ok := byName[d]; ok {
				if err := visit(d, append(path, n)); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		out = append(out, byName[n])
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
