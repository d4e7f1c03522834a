-- Apple MDM (issue 6): trust material, enrollment links and one-time SCEP challenges,
-- push certificates, enrollments joined to devices, command intent, baseline profile
-- state, ADE (ABM) tokens and devices.
-- +goose Up
CREATE TABLE mdm_identity (
    id TEXT PRIMARY KEY,
    certs_pem TEXT NOT NULL,
    keys_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE mdm_enroll_links (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    employee_id TEXT REFERENCES employees(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX mdm_enroll_links_org ON mdm_enroll_links(org_id, id);

CREATE TABLE mdm_scep_challenges (
    challenge_hash TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    link_id TEXT NOT NULL DEFAULT '',
    employee_id TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);

CREATE TABLE mdm_scep_certs (
    serial TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    employee_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL,
    not_after TIMESTAMP NOT NULL,
    cert_der BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE mdm_push_certs (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id),
    topic TEXT NOT NULL UNIQUE,
    not_after TIMESTAMP NOT NULL,
    cert_pem TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE mdm_enrollments (
    udid TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL DEFAULT '',
    employee_id TEXT NOT NULL DEFAULT '',
    serial_number TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    os_version TEXT NOT NULL DEFAULT '',
    device_name TEXT NOT NULL DEFAULT '',
    topic TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    posture TEXT NOT NULL DEFAULT '{}',
    drift TEXT NOT NULL DEFAULT '[]',
    push_failures INTEGER NOT NULL DEFAULT 0,
    last_push_error TEXT NOT NULL DEFAULT '',
    next_push_at TIMESTAMP,
    last_seen_at TIMESTAMP,
    enrolled_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX mdm_enrollments_org ON mdm_enrollments(org_id, udid);
CREATE INDEX mdm_enrollments_device ON mdm_enrollments(org_id, device_id);

CREATE TABLE mdm_commands (
    command_uuid TEXT PRIMARY KEY,
    -- wire_uuid is the CommandUUID the Mac sees; a command re-issued after a
    -- re-Authenticate (nanomdm keeps the old queue row) goes out under a new one.
    wire_uuid TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL DEFAULT '',
    udid TEXT NOT NULL,
    request_type TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'acknowledged', 'done', 'failed', 'expired', 'canceled')),
    source TEXT NOT NULL DEFAULT 'admin',
    idempotency_key TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    secret_sealed TEXT,
    error TEXT NOT NULL DEFAULT '',
    not_now_count INTEGER NOT NULL DEFAULT 0,
    issue_count INTEGER NOT NULL DEFAULT 1,
    actor TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    completed_at TIMESTAMP,
    expires_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX mdm_commands_idem ON mdm_commands(org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX mdm_commands_udid ON mdm_commands(udid, state);
CREATE INDEX mdm_commands_open ON mdm_commands(state, expires_at);
CREATE INDEX mdm_commands_org ON mdm_commands(org_id, device_id, command_uuid);

CREATE TABLE mdm_dep (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id),
    dep_name TEXT NOT NULL UNIQUE,
    tokenpki_cert_pem TEXT NOT NULL DEFAULT '',
    tokenpki_key_sealed TEXT,
    tokens_sealed TEXT,
    token_expires_at TIMESTAMP,
    base_url TEXT NOT NULL DEFAULT '',
    cursor TEXT NOT NULL DEFAULT '',
    profile_uuid TEXT NOT NULL DEFAULT '',
    profile_mod_at TIMESTAMP,
    last_sync_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE mdm_dep_devices (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    serial_number TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    op_type TEXT NOT NULL DEFAULT '',
    profile_status TEXT NOT NULL DEFAULT '',
    profile_uuid TEXT NOT NULL DEFAULT '',
    employee_id TEXT NOT NULL DEFAULT '',
    assigned_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, serial_number)
);
CREATE INDEX mdm_dep_devices_serial ON mdm_dep_devices(serial_number);

-- +goose Down
DROP TABLE mdm_dep_devices;
DROP TABLE mdm_dep;
DROP TABLE mdm_commands;
DROP TABLE mdm_enrollments;
DROP TABLE mdm_push_certs;
DROP TABLE mdm_scep_certs;
DROP TABLE mdm_scep_challenges;
DROP TABLE mdm_enroll_links;
DROP TABLE mdm_identity;
