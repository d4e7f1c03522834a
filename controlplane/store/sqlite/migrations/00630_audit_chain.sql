-- +goose Up
-- Tamper-evident audit log (issue 14 item 5, docs/audit.md). Each organisation's audit
-- rows form a hash chain: seq numbers the org's rows 1, 2, 3 ...; hash =
-- SHA-256(prev_hash || canonical row), computed by store.WriteAudit in the writer's
-- transaction. Rows that existed before this migration have NULL seq until the one-time
-- backfill (store.DB.Migrate, ordered by at, id) chains them; after it, a NULL seq means a
-- row was inserted behind the writer's back.
ALTER TABLE audit_log ADD COLUMN seq INTEGER;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
-- Two rows can never take one position (NULLs, unchained rows, are distinct).
CREATE UNIQUE INDEX audit_log_chain ON audit_log(org_id, seq);
-- The backfill walks each org's rows in (at, id) order (replaced by a partial index in 00631).
CREATE INDEX audit_log_org_at ON audit_log(org_id, at, id);

-- The chain head per org: the writer reads and advances it in its transaction (on
-- Postgres the row lock serialises an org's writers, so the chain never forks).
CREATE TABLE audit_chain_heads (
    org_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);

-- One row; backfilled_at is set once the rows from before the chain were chained.
CREATE TABLE audit_chain_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    backfilled_at TIMESTAMP
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
    created_at TIMESTAMP NOT NULL
);

-- Signed statements "org's chain had hash H at seq S".
CREATE TABLE audit_checkpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_checkpoints_org_seq ON audit_checkpoints(org_id, seq);

-- The only UPDATE audit_log allows is the backfill giving an unchained row its chain
-- position, content untouched.
DROP TRIGGER audit_log_no_update;
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
    AND NEW.id IS OLD.id AND NEW.org_id IS OLD.org_id AND NEW.actor IS OLD.actor AND NEW.action IS OLD.action
    AND NEW.target_type IS OLD.target_type AND NEW.target_id IS OLD.target_id AND NEW.before_json IS OLD.before_json
    AND NEW.after_json IS OLD.after_json AND NEW.request_id IS OLD.request_id AND NEW.at IS OLD.at)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_log_no_update;
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
-- +goose StatementEnd
DROP TABLE audit_checkpoints;
DROP TABLE audit_signing_keys;
DROP TABLE audit_chain_state;
DROP TABLE audit_chain_heads;
DROP INDEX audit_log_org_at;
DROP INDEX audit_log_chain;
ALTER TABLE audit_log DROP COLUMN hash;
ALTER TABLE audit_log DROP COLUMN prev_hash;
ALTER TABLE audit_log DROP COLUMN seq;
