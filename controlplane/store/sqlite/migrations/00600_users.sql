-- +goose Up
-- Admins are people (issue 13): users per organization, their console sessions, one-time
-- tokens (sign-in links, invitations, sign-in challenges), and API tokens owned by a user.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    -- Lower-cased; '' only for the "Migrated tokens" placeholder until someone claims it.
    email TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'it', 'viewer')),
    -- argon2id PHC string; '' means no password yet (invited, or sign-in by SSO only).
    password_hash TEXT NOT NULL DEFAULT '',
    -- Sealed with the keyring (aad "user:<id>:totp").
    totp_secret TEXT NOT NULL DEFAULT '',
    totp_enabled INTEGER NOT NULL DEFAULT 0,
    -- The last 30-second step a TOTP code was accepted for: a code works once.
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    -- JSON array of SHA-256 hashes of the unused recovery codes.
    recovery_codes TEXT NOT NULL DEFAULT '[]',
    failed_count INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    disabled_at TIMESTAMP,
    removed_at TIMESTAMP,
    last_sign_in_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- One live user per email and org; a removed user's email can be invited again.
CREATE UNIQUE INDEX users_email ON users(org_id, email) WHERE removed_at IS NULL;
CREATE INDEX users_org ON users(org_id, id);
CREATE INDEX users_email_any ON users(email);

CREATE TABLE user_sessions (
    id TEXT PRIMARY KEY,
    -- SHA-256 of the cookie value; the value itself is never stored.
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id),
    org_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    reauth_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX user_sessions_user ON user_sessions(org_id, user_id, id);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('invitation', 'sign_in_link', 'challenge')),
    user_id TEXT NOT NULL REFERENCES users(id),
    org_id TEXT NOT NULL,
    -- For challenges: the step it unlocks (totp, totp_setup, set_password).
    need TEXT NOT NULL DEFAULT '',
    -- For a totp_setup challenge: the pending TOTP secret, sealed.
    data TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX auth_tokens_user ON auth_tokens(user_id);

ALTER TABLE api_tokens ADD COLUMN user_id TEXT REFERENCES users(id);
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'personal' CHECK (kind IN ('personal', 'service'));
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- Existing tokens: one placeholder owner per organization that has tokens. It has no email
-- and no password, so nobody signs in as it until an admin claims it with an invitation;
-- the tokens keep working and their audit rows (actor "token:<id>") stay as they are.
INSERT INTO users (id, org_id, email, name, role, created_at, updated_at)
    SELECT 'mig-' || org_id, org_id, '', 'Migrated tokens', 'owner', MIN(created_at), MIN(created_at)
    FROM api_tokens GROUP BY org_id;
UPDATE api_tokens SET user_id = 'mig-' || org_id WHERE user_id IS NULL;

-- +goose Down
DROP INDEX api_tokens_user;
ALTER TABLE api_tokens DROP COLUMN kind;
ALTER TABLE api_tokens DROP COLUMN user_id;
DROP TABLE auth_tokens;
DROP TABLE user_sessions;
DROP TABLE users;
