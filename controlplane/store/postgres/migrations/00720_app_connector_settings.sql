-- +goose Up
-- Connectors beyond bearer-token SCIM (issue 16): each kind keeps its own JSON settings
-- (a SCIM basic-auth user or OAuth token URL, a Google domain, an Entra tenant), and the
-- auth kind says what the sealed secret is (bearer token, basic password, client secret).
ALTER TABLE app_connectors ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE app_connectors ADD COLUMN auth_kind TEXT NOT NULL DEFAULT 'bearer';

-- +goose Down
ALTER TABLE app_connectors DROP COLUMN auth_kind;
ALTER TABLE app_connectors DROP COLUMN settings;
