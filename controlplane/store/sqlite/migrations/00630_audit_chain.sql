-- +goose Up
-- Tamper-evident audit log (issue 14, docs/adr/2026-12-02_audit-hash-chain.md). Business
-- transactions only append to audit_log; the trigger below queues each new row in
-- audit_unchained (a private row per audit row, so writers share no lock). The chainer
-- later gives each org's queued rows a sequence number and hash in audit_chain, in its own
-- short transaction, and signs checkpoints of the chain head.
CREATE TABLE audit_unchained (
    audit_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL
);
CREATE INDEX audit_unchained_org ON audit_unchained(org_id, audit_id);
INSERT INTO audit_unchained (audit_id, org_id) SELECT id, org_id FROM audit_log;

-- +goose StatementBegin
CREATE TRIGGER audit_log_queue_chain AFTER INSERT ON audit_log
BEGIN INSERT INTO audit_unchained (audit_id, org_id) VALUES (NEW.id, NEW.org_id); END;
-- +goose StatementEnd

CREATE TABLE audit_chain (
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    audit_id TEXT NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    chained_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, seq)
);

CREATE TABLE audit_checkpoints (
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TIMESTAMP NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- The ed25519 checkpoint keys, private halves sealed by the server keyring.
CREATE TABLE audit_signing_keys (
    id TEXT PRIMARY KEY,
    private_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

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
DROP TABLE audit_signing_keys;
DROP TABLE audit_checkpoints;
DROP TABLE audit_chain;
DROP TRIGGER audit_log_queue_chain;
DROP TABLE audit_unchained;
