// Package benchutil holds what the benchmark commands under bench/ share:
// a fresh PostgreSQL schema to run in, the CPU model for the report, and
// replacing one section of docs/benchmarks.md.
package benchutil

import (
	"context"
	"os"
	"strings"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
)

// NewSchemaName is prefix followed by a random suffix, a valid unquoted
// PostgreSQL schema name when prefix is one.
func NewSchemaName(prefix string) string {
	return prefix + strings.ReplaceAll(domain.NewID()[24:], "-", "")
}

// OpenSchema creates schema in the PostgreSQL database at base and opens
// base with that schema as its search_path.
func OpenSchema(ctx context.Context, base, schema string) (*store.DB, error) {
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

// DropSchema drops schema and everything in it from the PostgreSQL database
// at base, on a best-effort basis.
func DropSchema(base, schema string) {
	ctx := context.Background()
	admin, err := postgres.Open(ctx, base)
	if err != nil {
		return
	}
	defer admin.Close()
	_, _ = admin.SQL.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
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
