-- +goose Up
-- Tamper-evident audit log (issue 14, docs/adr/2026-12-02_audit-hash-chain.md). Business
-- transactions only append to audit_log; the trigger below queues each new row in
-- audit_unchained (a private row per audit row, so writers share no lock: the synchronous
-- chain head of the reverted attempt deadlocked HR sync with SQLSTATE 40P01). The chainer
-- later gives each org's queued rows a sequence number and hash in audit_chain, in its own
-- short transaction under an advisory lock, and signs checkpoints of the chain head.
CREATE TABLE audit_unchained (
    audit_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL
);
CREATE INDEX audit_unchained_org ON audit_unchained(org_id, audit_id);
INSERT INTO audit_unchained (audit_id, org_id) SELECT id, org_id FROM audit_log;

-- +goose StatementBegin
CREATE FUNCTION audit_log_queue_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_unchained (audit_id, org_id) VALUES (NEW.id, NEW.org_id);
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_queue_chain AFTER INSERT ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_queue_chain();

CREATE TABLE audit_chain (
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    audit_id TEXT NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    chained_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, seq)
);

CREATE TABLE audit_checkpoints (
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- The ed25519 checkpoint keys, private halves sealed by the server keyring.
CREATE TABLE audit_signing_keys (
    id TEXT PRIMARY KEY,
    private_sealed TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TRIGGER audit_chain_no_change BEFORE UPDATE OR DELETE ON audit_chain
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP TABLE audit_signing_keys;
DROP TABLE audit_checkpoints;
DROP TABLE audit_chain;
DROP TRIGGER audit_log_queue_chain ON audit_log;
DROP FUNCTION audit_log_queue_chain();
DROP TABLE audit_unchained;
