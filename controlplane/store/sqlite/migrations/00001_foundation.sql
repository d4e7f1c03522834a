-- +goose Up
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plan TEXT NOT NULL CHECK (plan IN ('hr', 'essentials', 'pro')),
    time_zone TEXT NOT NULL DEFAULT 'UTC',
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'it', 'viewer')),
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP
);
CREATE INDEX api_tokens_org ON api_tokens(org_id, id);

CREATE TABLE employees (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    source TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    hr TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    work_email TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    member_type TEXT NOT NULL DEFAULT '',
    departments TEXT NOT NULL DEFAULT '|',
    start_date TEXT,
    termination_date TEXT,
    source_updated_at TIMESTAMP,
    equipment_type TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX employees_external ON employees(org_id, source, external_id) WHERE external_id <> '';
CREATE INDEX employees_org ON employees(org_id, id);
CREATE INDEX employees_status ON employees(org_id, status);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    serial_number TEXT NOT NULL,
    vendor TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    platform TEXT NOT NULL DEFAULT '',
    equipment_type TEXT NOT NULL DEFAULT '',
    purchase_date TEXT,
    state TEXT NOT NULL,
    assigned_employee_id TEXT REFERENCES employees(id),
    notes TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX devices_serial ON devices(org_id, vendor, serial_number);
CREATE INDEX devices_org ON devices(org_id, id);
CREATE INDEX devices_serial_any ON devices(serial_number);
CREATE INDEX devices_employee ON devices(assigned_employee_id);

CREATE TABLE device_assignments (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    employee_id TEXT NOT NULL REFERENCES employees(id),
    assigned_at TIMESTAMP NOT NULL,
    unassigned_at TIMESTAMP,
    assigned_by TEXT NOT NULL,
    unassigned_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX device_assignments_device ON device_assignments(device_id, id);
CREATE INDEX device_assignments_employee ON device_assignments(employee_id, id);
-- At most one open assignment per device, whatever the application does.
CREATE UNIQUE INDEX device_assignments_open ON device_assignments(device_id) WHERE unassigned_at IS NULL;

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    request_id TEXT NOT NULL DEFAULT '',
    at TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_org ON audit_log(org_id, id);
CREATE INDEX audit_log_target ON audit_log(org_id, target_type, target_id);

-- +goose StatementBegin
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
-- +goose StatementEnd

CREATE TABLE outbox_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    type TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_events_org ON outbox_events(org_id, seq);

-- +goose Down
DROP TABLE outbox_events;
DROP TABLE audit_log;
DROP TABLE device_assignments;
DROP TABLE devices;
DROP TABLE employees;
DROP TABLE api_tokens;
DROP TABLE orgs;
