-- +goose Up
-- Single sign-on (issue 13): one OpenID Connect provider per organization. The client
-- secret is sealed with the server keyring (AAD names the org); allowed_domains is a JSON
-- array of lowercase email domains.
CREATE TABLE sso_configs (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id),
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret_sealed TEXT NOT NULL,
    allowed_domains TEXT NOT NULL DEFAULT '[]',
    enabled INTEGER NOT NULL DEFAULT 0,
    updated_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- One row per sign-in in flight: keyed by a hash of the OAuth state, used once (deleted
-- on callback), expiring after 10 minutes. binding_hash ties it to the browser that
-- started it (a hash of the short-lived cookie's value); the PKCE verifier is sealed.
CREATE TABLE sso_states (
    state_hash TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    binding_hash TEXT NOT NULL,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sso_states_expiry ON sso_states(expires_at);
CREATE INDEX sso_states_org ON sso_states(org_id, expires_at);

-- +goose Down
DROP TABLE sso_states;
DROP TABLE sso_configs;
