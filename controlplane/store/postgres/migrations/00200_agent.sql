-- +goose Up
-- Agent channel (issue 5): embedded CA material, issued agent certificates, used one-time
-- tokens, per-org enrollment secrets, enrolled agents, device tracking from agent reports,
-- inventory history and the shared device command model for every channel (agent, mdm).

-- The CA is global to the installation (one root, one intermediate); keys are sealed with
-- controlplane/secrets.
CREATE TABLE pki_authority (
    id TEXT PRIMARY KEY,
    root_der BYTEA NOT NULL,
    root_key_sealed TEXT NOT NULL,
    intermediate_der BYTEA NOT NULL,
    intermediate_key_sealed TEXT NOT NULL,
    jwk_sealed TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE pki_certs (
    serial TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    provisioner TEXT NOT NULL DEFAULT '',
    der BYTEA NOT NULL,
    not_before TIMESTAMPTZ NOT NULL,
    not_after TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    revoke_reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX pki_certs_agent ON pki_certs(agent_id);
CREATE INDEX pki_certs_not_after ON pki_certs(not_after);

CREATE TABLE pki_used_tokens (
    jti TEXT PRIMARY KEY,
    used_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE enrollment_secrets (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    max_uses INTEGER NOT NULL DEFAULT 0,
    uses INTEGER NOT NULL DEFAULT 0,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX enrollment_secrets_org ON enrollment_secrets(org_id, id);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    secret_id TEXT NOT NULL DEFAULT '',
    device_id TEXT,
    hostname TEXT NOT NULL DEFAULT '',
    serial_number TEXT NOT NULL DEFAULT '',
    hardware_uuid TEXT NOT NULL DEFAULT '',
    platform TEXT NOT NULL DEFAULT '',
    agent_version TEXT NOT NULL DEFAULT '',
    enrolled_at TIMESTAMPTZ,
    last_seen_at TIMESTAMPTZ,
    online BOOLEAN NOT NULL DEFAULT FALSE,
    serial_conflict BOOLEAN NOT NULL DEFAULT FALSE,
    inventory_hash TEXT NOT NULL DEFAULT '',
    revoked_at TIMESTAMPTZ,
    revoke_reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX agents_org ON agents(org_id, id);
CREATE INDEX agents_device ON agents(device_id);
CREATE INDEX agents_serial ON agents(org_id, serial_number);

-- What the agent channel knows about a device, one row per device (beside the foundation's
-- devices table, which it extends).
CREATE TABLE device_tracking (
    device_id TEXT PRIMARY KEY REFERENCES devices(id),
    org_id TEXT NOT NULL REFERENCES orgs(id),
    agent_id TEXT NOT NULL DEFAULT '',
    last_seen_at TIMESTAMPTZ,
    needs_review BOOLEAN NOT NULL DEFAULT FALSE,
    review_reason TEXT NOT NULL DEFAULT '',
    serial_conflict BOOLEAN NOT NULL DEFAULT FALSE,
    conflict_agent_ids TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    os_name TEXT NOT NULL DEFAULT '',
    os_version TEXT NOT NULL DEFAULT '',
    os_build TEXT NOT NULL DEFAULT '',
    posture TEXT NOT NULL DEFAULT '{}',
    inventory TEXT NOT NULL DEFAULT '{}',
    inventory_hash TEXT NOT NULL DEFAULT '',
    inventory_updated_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX device_tracking_org ON device_tracking(org_id, device_id);

CREATE TABLE device_inventory_history (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    changes TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX device_inventory_history_device ON device_inventory_history(org_id, device_id, id);

CREATE TABLE device_commands (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    type TEXT NOT NULL CHECK (type IN ('lock', 'wipe', 'message', 'collect_inventory')),
    params TEXT NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    state TEXT NOT NULL CHECK (state IN ('awaiting_approval', 'queued', 'sent', 'acknowledged', 'done', 'failed', 'expired', 'canceled')),
    channel TEXT NOT NULL CHECK (channel IN ('agent', 'mdm')),
    target_serial TEXT NOT NULL DEFAULT '',
    agent_id TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    approved_by TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX device_commands_idem ON device_commands(org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX device_commands_device ON device_commands(org_id, device_id, id);
CREATE INDEX device_commands_open ON device_commands(state, device_id);

-- +goose Down
DROP TABLE device_commands;
DROP TABLE device_inventory_history;
DROP TABLE device_tracking;
DROP TABLE agents;
DROP TABLE enrollment_secrets;
DROP TABLE pki_used_tokens;
DROP TABLE pki_certs;
DROP TABLE pki_authority;
