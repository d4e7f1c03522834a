-- +goose Up
-- Issue 12: outcomes that mean what they say. Commands go queued → sent → received →
-- running → done | failed | expired | canceled, plus simulated (a dry-run agent); done
-- for lock, unlock and wipe rests on the device's signed evidence. Acknowledged rows
-- become received and acknowledged_at becomes received_at.
ALTER TABLE device_commands DROP CONSTRAINT device_commands_state_check;
ALTER TABLE device_commands DROP CONSTRAINT device_commands_type_check;
UPDATE device_commands SET state = 'received' WHERE state = 'acknowledged';
ALTER TABLE device_commands ADD CONSTRAINT device_commands_state_check
    CHECK (state IN ('awaiting_approval', 'queued', 'sent', 'received', 'running', 'done', 'failed', 'expired', 'canceled', 'simulated'));
ALTER TABLE device_commands ADD CONSTRAINT device_commands_type_check
    CHECK (type IN ('lock', 'unlock', 'wipe', 'message', 'collect_inventory'));
ALTER TABLE device_commands RENAME COLUMN acknowledged_at TO received_at;
ALTER TABLE device_commands
    ADD COLUMN started_at TIMESTAMPTZ,
    -- The decoded evidence (JSON), verified or not; '' when the device sent none.
    ADD COLUMN evidence TEXT NOT NULL DEFAULT '',
    -- An MDM erase is confirmed when the Mac re-enrolls or stops checking in.
    ADD COLUMN confirmed_at TIMESTAMPTZ,
    ADD COLUMN confirmation TEXT NOT NULL DEFAULT '';

-- The test knobs an agent announced (Hello.mode, ReportInventoryRequest.mode): '' for a
-- release build, else "dry_run", "serial_overridden" or both, comma-separated; and the
-- lock the agent holds (Hello.locked_by_command_id).
ALTER TABLE agents
    ADD COLUMN agent_mode TEXT NOT NULL DEFAULT '',
    ADD COLUMN locked_by_command_id TEXT NOT NULL DEFAULT '';

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
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX device_recovery_keys_protector ON device_recovery_keys(org_id, device_id, volume, protector_id);

-- +goose Down
DROP TABLE device_recovery_keys;
ALTER TABLE agents DROP COLUMN locked_by_command_id, DROP COLUMN agent_mode;
ALTER TABLE device_commands DROP COLUMN confirmation, DROP COLUMN confirmed_at, DROP COLUMN evidence, DROP COLUMN started_at;
ALTER TABLE device_commands RENAME COLUMN received_at TO acknowledged_at;
ALTER TABLE device_commands DROP CONSTRAINT device_commands_state_check;
ALTER TABLE device_commands DROP CONSTRAINT device_commands_type_check;
DELETE FROM device_commands WHERE type = 'unlock';
UPDATE device_commands SET state = 'acknowledged' WHERE state IN ('received', 'running');
UPDATE device_commands SET state = 'failed' WHERE state = 'simulated';
ALTER TABLE device_commands ADD CONSTRAINT device_commands_state_check
    CHECK (state IN ('awaiting_approval', 'queued', 'sent', 'acknowledged', 'done', 'failed', 'expired', 'canceled'));
ALTER TABLE device_commands ADD CONSTRAINT device_commands_type_check
    CHECK (type IN ('lock', 'wipe', 'message', 'collect_inventory'));
