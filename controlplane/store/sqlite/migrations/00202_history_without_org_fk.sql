-- +goose Up
-- Postgres drops the history → orgs foreign key here (a shared row lock per insert); SQLite
-- has one writer and no such cost, and dropping a constraint would rebuild the table.
SELECT 1;

-- +goose Down
SELECT 1;
