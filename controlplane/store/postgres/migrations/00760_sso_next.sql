-- +goose Up
-- Where the browser returns after single sign-on (a local path, checked at start and
-- again at the end), so a re-authentication before a reveal comes back to the reveal.
ALTER TABLE sso_states ADD COLUMN next_path TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sso_states DROP COLUMN next_path;
