// Package benchutil holds what the benchmark commands under bench/ share:
// running a scenario on SQLite and PostgreSQL, the CPU model for the
// report, and replacing one section of docs/benchmarks.md.
package benchutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
)

// EachStore runs run on a fresh SQLite database in a temporary directory
// and, when pgURL is set, in a new schema of that PostgreSQL database
// (schemaPrefix and a random suffix), dropped afterwards. It returns the
// results in that order; run's errors are prefixed "sqlite: " or
// "postgres: ". name is "SQLite" or "PostgreSQL".
func EachStore[R any](ctx context.Context, pgURL, schemaPrefix string, run func(db *store.DB, name string) (R, error)) ([]R, error) {
	dir, err := os.MkdirTemp("", "lanyard-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
	if err != nil {
		return nil, err
	}
	r, err := run(db, "SQLite")
	db.Close()
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	out := []R{r}
	if pgURL == "" {
		return out, nil
	}
	schema := newSchemaName(schemaPrefix)
	defer dropSchema(pgURL, schema)
	db, err = openSchema(ctx, pgURL, schema)
	if err != nil {
		return nil, err
	}
	r, err = run(db, "PostgreSQL")
	db.Close()
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return append(out, r), nil
}

// newSchemaName is prefix followed by a random suffix, a valid unquoted
// PostgreSQL schema name when prefix is one.
func newSchemaName(prefix string) string {
	return prefix + strings.ReplaceAll(domain.NewID()[24:], "-", "")
}

// openSchema creates schema in the PostgreSQL database at base and opens
// base with that schema as its search_path.
func openSchema(ctx context.Context, base, schema string) (*store.DB, error) {
	admin, err := postgres.Open(ctx, base)
	if err != nil {
		return nil, err
	}
	_, err = admin.SQL.ExecContext(ctx, "CREATE SCHEMA "+schema)
	admin.Close()
	if err != nil {
		return nil, err
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return postgres.Open(ctx, base+sep+"search_path="+schema)
}

// dropSchema drops schema and the nanomdm schema that migrating creates
// beside it (as storetest does) from the PostgreSQL database at base, on a
// best-effort basis.
func dropSchema(base, schema string) {
	ctx := context.Background()
	admin, err := postgres.Open(ctx, base)
	if err != nil {
		return
	}
	defer admin.Close()
	_, _ = admin.SQL.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	_, _ = admin.SQL.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+"_nanomdm CASCADE")
}

// CPUModel is the "model name" of /proc/cpuinfo, or "unknown CPU".
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

// WriteSection replaces the section of the Markdown file at path that
// starts with the line heading (such as "## HR sync") with section, up to
// the next "## " heading, or appends section when there is none. A missing
// or empty file starts as "# Benchmarks".
func WriteSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\n"
	}
	head := heading + "\n"
	start := strings.Index(text, head)
	if start < 0 {
		text = strings.TrimRight(text, "\n") + "\n\n" + section
	} else {
		end := len(text)
		if i := strings.Index(text[start+len(head):], "\n## "); i >= 0 {
			end = start + len(head) + i + 1
		}
		text = text[:start] + section + text[end:]
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
