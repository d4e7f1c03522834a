-- +goose Up
-- Lifecycle workflows (onboarding, offboarding) and their steps. A step runs as a River
-- job; the claim/finish columns make each step run at most once across replicas.
CREATE TABLE lifecycle_workflows (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    kind TEXT NOT NULL CHECK (kind IN ('onboarding', 'offboarding')),
    employee_id TEXT NOT NULL REFERENCES employees(id),
    state TEXT NOT NULL,
    run_at TIMESTAMP NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    trigger_event_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX lifecycle_workflows_org ON lifecycle_workflows(org_id, id);
CREATE INDEX lifecycle_workflows_due ON lifecycle_workflows(state, run_at);
CREATE INDEX lifecycle_workflows_employee ON lifecycle_workflows(org_id, employee_id);
-- One open workflow of a kind per employee.
CREATE UNIQUE INDEX lifecycle_workflows_open ON lifecycle_workflows(org_id, employee_id, kind)
    WHERE state IN ('scheduled', 'running', 'paused', 'failed');

CREATE TABLE lifecycle_steps (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL REFERENCES lifecycle_workflows(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    not_before TIMESTAMP,
    lease_until TIMESTAMP,
    run_token TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    output TEXT NOT NULL DEFAULT '{}',
    reason TEXT NOT NULL DEFAULT '',
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (workflow_id, seq)
);
CREATE INDEX lifecycle_steps_due ON lifecycle_steps(state, not_before);

CREATE TABLE lifecycle_tasks (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL REFERENCES lifecycle_workflows(id),
    step_id TEXT NOT NULL REFERENCES lifecycle_steps(id),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    assignee TEXT NOT NULL DEFAULT '',
    due_at TIMESTAMP,
    state TEXT NOT NULL DEFAULT 'open',
    subject_id TEXT NOT NULL DEFAULT '',
    completed_by TEXT NOT NULL DEFAULT '',
    completed_at TIMESTAMP,
    note TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX lifecycle_tasks_org ON lifecycle_tasks(org_id, state, id);
CREATE INDEX lifecycle_tasks_step ON lifecycle_tasks(step_id);

-- Outbox consumption: a cursor below which every event is handled, plus a marker per
-- handled event so concurrent consumers and gaps from late commits are both safe.
CREATE TABLE lifecycle_consumers (
    name TEXT PRIMARY KEY,
    cursor_seq INTEGER NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE lifecycle_handled_events (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    handled_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Procurement orders (vendor adapter: manual first).
CREATE TABLE procurement_orders (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    employee_id TEXT,
    workflow_id TEXT NOT NULL DEFAULT '',
    vendor TEXT NOT NULL,
    adapter TEXT NOT NULL DEFAULT 'manual',
    vendor_ref TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    equipment_type TEXT NOT NULL,
    price_cents INTEGER NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT 'USD',
    ship_to TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    tracking_number TEXT NOT NULL DEFAULT '',
    serial_number TEXT NOT NULL DEFAULT '',
    device_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX procurement_orders_org ON procurement_orders(org_id, id);

-- Laptop retrievals: a kit to the HR address, the box back to a warehouse.
CREATE TABLE retrievals (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    employee_id TEXT NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices(id),
    workflow_id TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    ship_to TEXT NOT NULL DEFAULT '{}',
    kit_tracking TEXT NOT NULL DEFAULT '',
    return_tracking TEXT NOT NULL DEFAULT '',
    warehouse_id TEXT NOT NULL DEFAULT '',
    reminders_sent INTEGER NOT NULL DEFAULT 0,
    next_reminder_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX retrievals_org ON retrievals(org_id, id);
CREATE UNIQUE INDEX retrievals_open ON retrievals(device_id) WHERE state IN ('requested', 'kit_sent', 'in_transit');

-- Warehousing.
CREATE TABLE warehouses (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX warehouses_name ON warehouses(org_id, name);

CREATE TABLE device_intakes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    warehouse_id TEXT NOT NULL REFERENCES warehouses(id),
    retrieval_id TEXT NOT NULL DEFAULT '',
    condition TEXT NOT NULL,
    photo_urls TEXT NOT NULL DEFAULT '[]',
    accessories TEXT NOT NULL DEFAULT '[]',
    activation_lock INTEGER NOT NULL DEFAULT 0,
    firmware_lock INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL,
    refusal_reason TEXT NOT NULL DEFAULT '',
    received_at TIMESTAMP NOT NULL,
    stored_until TIMESTAMP
);
CREATE INDEX device_intakes_device ON device_intakes(device_id, id);
CREATE INDEX device_intakes_wh ON device_intakes(org_id, warehouse_id);

-- App access: per-org connectors and rules.
CREATE TABLE app_connectors (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    app TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'scim',
    base_url TEXT NOT NULL,
    token_sealed TEXT NOT NULL DEFAULT '',
    revoke_mode TEXT NOT NULL DEFAULT 'deactivate',
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX app_connectors_app ON app_connectors(org_id, app);

CREATE TABLE app_rules (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    department TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT '',
    member_type TEXT NOT NULL DEFAULT '',
    apps TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX app_rules_org ON app_rules(org_id, id);

-- +goose Down
DROP TABLE app_rules;
DROP TABLE app_connectors;
DROP TABLE device_intakes;
DROP TABLE warehouses;
DROP TABLE retrievals;
DROP TABLE procurement_orders;
DROP TABLE lifecycle_handled_events;
DROP TABLE lifecycle_consumers;
DROP TABLE lifecycle_tasks;
DROP TABLE lifecycle_steps;
DROP TABLE lifecycle_workflows;
