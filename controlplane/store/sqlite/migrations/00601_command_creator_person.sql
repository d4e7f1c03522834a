-- +goose Up
-- The person who created a device command, for the two-person rule ('' = resolve from
-- created_by, for rows older than this column). A migration of its own, so tests that roll
-- device_commands back (00203) can take this column off and put it back.
ALTER TABLE device_commands ADD COLUMN created_by_user TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE device_commands DROP COLUMN created_by_user;
