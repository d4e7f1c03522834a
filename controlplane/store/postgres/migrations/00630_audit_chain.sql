-- +goose Up
-- Tamper-evident audit log (issue 14 item 5, docs/audit.md). Each organisation's audit
-- rows form a hash chain: seq numbers the org's rows 1, 2, 3 ...; hash =
-- SHA-256(prev_hash || canonical row), computed by store.WriteAudit in the writer's
-- transaction. Rows that existed before this migration have NULL seq until the one-time
-- backfill (store.DB.Migrate, ordered by at, id) chains them; after it, a NULL seq means a
-- row was inserted behind the writer's back.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
-- Two rows can never take one position (NULLs, unchained rows, are distinct).
CREATE UNIQUE INDEX audit_log_chain ON audit_log(org_id, seq);
-- The backfill walks each org's rows in (at, id) order (replaced by a partial index in 00631).
CREATE INDEX audit_log_org_at ON audit_log(org_id, at, id);

-- The chain head per org: the writer locks it (INSERT .. ON CONFLICT DO UPDATE takes the
-- row lock) and advances it in its transaction, so an org's writers queue on it and the
-- chain never forks.
CREATE TABLE audit_chain_heads (
    org_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

-- One row; backfilled_at is set once the rows from before the chain were chained.
CREATE TABLE audit_chain_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    backfilled_at TIMESTAMPTZ
);
INSERT INTO audit_chain_state (id, backfilled_at) VALUES (1, NULL);

-- Ed25519 keys that sign checkpoints; the private key is sealed by the server keyring
-- (controlplane/secrets), like the CA key. generation is unique so replicas starting
-- together converge on one key.
CREATE TABLE audit_signing_keys (
    id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    private_key_sealed TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Signed statements "org's chain had hash H at seq S".
CREATE TABLE audit_checkpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_checkpoints_org_seq ON audit_checkpoints(org_id, seq);

-- The only UPDATE audit_log allows is the backfill giving an unchained row its chain
-- position, content untouched.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
        AND (NEW.id, NEW.org_id, NEW.actor, NEW.action, NEW.target_type, NEW.target_id, NEW.before_json,
             NEW.after_json, NEW.request_id, NEW.at)
        IS NOT DISTINCT FROM (OLD.id, OLD.org_id, OLD.actor, OLD.action, OLD.target_type, OLD.target_id,
             OLD.before_json, OLD.after_json, OLD.request_id, OLD.at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_checkpoints is append-only'; END $$;
-- +goose StatementEnd
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
-- +goose StatementEnd
DROP TABLE audit_checkpoints;
DROP FUNCTION audit_checkpoints_append_only();
DROP TABLE audit_signing_keys;
DROP TABLE audit_chain_state;
DROP TABLE audit_chain_heads;
DROP INDEX audit_log_org_at;
DROP INDEX audit_log_chain;
ALTER TABLE audit_log DROP COLUMN hash;
ALTER TABLE audit_log DROP COLUMN prev_hash;
ALTER TABLE audit_log DROP COLUMN seq;
