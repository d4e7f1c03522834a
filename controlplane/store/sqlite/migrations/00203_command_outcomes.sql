-- +goose Up
-- Issue 12: outcomes that mean what they say. Commands go queued → sent → received →
-- running → done | failed | expired | canceled, plus simulated (a dry-run agent); done
-- for lock, unlock and wipe rests on the device's signed evidence. SQLite cannot alter a
-- CHECK constraint, so device_commands is rebuilt (nothing references it); acknowledged
-- rows become received and acknowledged_at becomes received_at.
CREATE TABLE device_commands_new (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    type TEXT NOT NULL CHECK (type IN ('lock', 'unlock', 'wipe', 'message', 'collect_inventory')),
    params TEXT NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    state TEXT NOT NULL CHECK (state IN ('awaiting_approval', 'queued', 'sent', 'received', 'running', 'done', 'failed', 'expired', 'canceled', 'simulated')),
    channel TEXT NOT NULL CHECK (channel IN ('agent', 'mdm')),
    target_serial TEXT NOT NULL DEFAULT '',
    agent_id TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    approved_by TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    -- The decoded evidence (JSON), verified or not; '' when the device sent none.
    evidence TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    received_at TIMESTAMP,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    -- An MDM erase is confirmed when the Mac re-enrolls or stops checking in.
    confirmed_at TIMESTAMP,
    confirmation TEXT NOT NULL DEFAULT '',
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO device_commands_new (id, org_id, device_id, type, params, idempotency_key, state, channel, target_serial, agent_id, created_by,
    approved_by, error, result, attempts, created_at, updated_at, sent_at, received_at, completed_at, expires_at)
SELECT id, org_id, device_id, type, params, idempotency_key, CASE WHEN state = 'acknowledged' THEN 'received' ELSE state END, channel,
    target_serial, agent_id, created_by, approved_by, error, result, attempts, created_at, updated_at, sent_at, acknowledged_at, completed_at, expires_at
FROM device_commands;
DROP TABLE device_commands;
ALTER TABLE device_commands_new RENAME TO device_commands;
CREATE UNIQUE INDEX device_commands_idem ON device_commands(org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX device_commands_device ON device_commands(org_id, device_id, id);
CREATE INDEX device_commands_open ON device_commands(state, device_id);
CREATE INDEX device_commands_queued ON device_commands(channel, state, id);

-- The test knobs an agent announced (Hello.mode, ReportInventoryRequest.mode): '' for a
-- release build, else "dry_run", "serial_overridden" or both, comma-separated; and the
-- lock the agent holds (Hello.locked_by_command_id).
ALTER TABLE agents ADD COLUMN agent_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN locked_by_command_id TEXT NOT NULL DEFAULT '';

-- Disk-encryption recovery secrets escrowed by agents (BitLocker recovery passwords),
-- sealed with the server keyring; one row per device, volume and protector.
CREATE TABLE device_recovery_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    agent_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    volume TEXT NOT NULL,
    protector_id TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX device_recovery_keys_protector ON device_recovery_keys(org_id, device_id, volume, protector_id);

-- +goose Down
DROP TABLE device_recovery_keys;
ALTER TABLE agents DROP COLUMN locked_by_command_id;
ALTER TABLE agents DROP COLUMN agent_mode;
CREATE TABLE device_commands_old (
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
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    acknowledged_at TIMESTAMP,
    completed_at TIMESTAMP,
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO device_commands_old (id, org_id, device_id, type, params, idempotency_key, state, channel, target_serial, agent_id, created_by,
    approved_by, error, result, attempts, created_at, updated_at, sent_at, acknowledged_at, completed_at, expires_at)
SELECT id, org_id, device_id, type, params, idempotency_key,
    CASE WHEN state IN ('received', 'running') THEN 'acknowledged' WHEN state = 'simulated' THEN 'failed' ELSE state END, channel,
    target_serial, agent_id, created_by, approved_by, error, result, attempts, created_at, updated_at, sent_at, received_at, completed_at, expires_at
FROM device_commands WHERE type <> 'unlock';
DROP TABLE device_commands;
ALTER TABLE device_commands_old RENAME TO device_commands;
CREATE UNIQUE INDEX device_commands_idem ON device_commands(org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX device_commands_device ON device_commands(org_id, device_id, id);
CREATE INDEX device_commands_open ON device_commands(state, device_id);
CREATE INDEX device_commands_queued ON device_commands(channel, state, id);
