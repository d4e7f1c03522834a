// Package postgres opens Lanyard's PostgreSQL database through pgx/v5 (pgxpool), with a
// database/sql view of the same pool so the shared SQL, goose, River and nanomdm run on it.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects to url. A `search_path` query parameter selects a schema (tests use one
// schema per run so parallel packages never collide).
func Open(ctx context.Context, url string) (*store.DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	schema := cfg.ConnConfig.RuntimeParams["search_path"]
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return store.New(sqlDB, store.Postgres, pool, schema, sub, pool.Close), nil
}
