-- +goose Up
-- The audit hash chain (docs/adr/2026-12-02_audit-hash-chain.md). audit_log stays a plain
-- append written inside business transactions; the chainer links rows here after they
-- commit, in its own transaction under an advisory lock, so no business transaction ever
-- waits on the chain (the reverted chain-head row lock deadlocked HR sync: 40P01).
CREATE TABLE audit_chain (
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    audit_id TEXT NOT NULL UNIQUE,
    row_hash TEXT NOT NULL,
    chain_hash TEXT NOT NULL,
    chained_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE TABLE audit_checkpoints (
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
-- The ed25519 checkpoint key, sealed by the server keyring like the CA keys.
CREATE TABLE audit_signing_key (
    id TEXT PRIMARY KEY,
    private_key_sealed TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
-- The chainer looks for unchained rows written since its last pass.
CREATE INDEX audit_log_at ON audit_log(at);

CREATE TRIGGER audit_chain_no_change BEFORE UPDATE OR DELETE ON audit_chain
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP INDEX audit_log_at;
DROP TABLE audit_signing_key;
DROP TABLE audit_checkpoints;
DROP TABLE audit_chain;
