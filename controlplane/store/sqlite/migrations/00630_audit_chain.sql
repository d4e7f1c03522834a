-- +goose Up
-- The audit hash chain (docs/adr/2026-12-02_audit-hash-chain.md). audit_log stays a plain
-- append written inside business transactions; the chainer links rows here after they
-- commit, in its own transaction, so no business transaction ever waits on the chain.
CREATE TABLE audit_chain (
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    audit_id TEXT NOT NULL UNIQUE,
    row_hash TEXT NOT NULL,
    chain_hash TEXT NOT NULL,
    chained_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE TABLE audit_checkpoints (
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TIMESTAMP NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
-- The ed25519 checkpoint key, sealed by the server keyring like the CA keys.
CREATE TABLE audit_signing_key (
    id TEXT PRIMARY KEY,
    private_key_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
-- The chainer looks for unchained rows written since its last pass.
CREATE INDEX audit_log_at ON audit_log(at);

-- +goose StatementBegin
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END;
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
DROP INDEX audit_log_at;
DROP TABLE audit_signing_key;
DROP TABLE audit_checkpoints;
DROP TABLE audit_chain;
