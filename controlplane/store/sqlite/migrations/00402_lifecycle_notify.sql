-- +goose Up
-- On Postgres this migration adds NOTIFY triggers for lifecycle. SQLite is one process:
-- store.DB.AfterCommit signals lifecycle in process instead, so there is nothing to
-- create here; the file keeps the two dialects' migration numbers in step.
SELECT 1;

-- +goose Down
SELECT 1;
