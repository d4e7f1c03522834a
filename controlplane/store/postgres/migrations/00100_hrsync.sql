-- +goose Up
-- HR sync (controlplane/hris): connections to an HR provider, sync runs, received
-- webhooks (deduplicated by provider event id) and per-member provider details.
CREATE TABLE hr_connections (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    provider TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'terminated')),
    reason TEXT NOT NULL DEFAULT '',
    attention TEXT NOT NULL DEFAULT '',
    company_id TEXT NOT NULL DEFAULT '',
    company_name TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '',
    grant_sealed TEXT NOT NULL DEFAULT '',
    webhook_secret_sealed TEXT NOT NULL DEFAULT '',
    oauth_state TEXT NOT NULL DEFAULT '',
    oauth_state_expires TIMESTAMPTZ,
    import_done BOOLEAN NOT NULL DEFAULT FALSE,
    import_cursor TEXT NOT NULL DEFAULT '',
    checkpoint TIMESTAMPTZ,
    last_full_at TIMESTAMPTZ,
    last_sync_at TIMESTAMPTZ,
    last_webhook_at TIMESTAMPTZ,
    approve_terminations BOOLEAN NOT NULL DEFAULT FALSE,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    terminated_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX hr_connections_live ON hr_connections(org_id) WHERE state <> 'terminated';
CREATE INDEX hr_connections_org ON hr_connections(org_id, id);
CREATE INDEX hr_connections_oauth_state ON hr_connections(oauth_state) WHERE oauth_state <> '';

CREATE TABLE hr_sync_runs (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    connection_id TEXT NOT NULL REFERENCES hr_connections(id),
    kind TEXT NOT NULL,
    trigger_source TEXT NOT NULL,
    status TEXT NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    seen INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    terminated INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0,
    cursor TEXT NOT NULL DEFAULT '',
    errors TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT '',
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);
-- At most one running sync per connection, across replicas.
CREATE UNIQUE INDEX hr_sync_runs_running ON hr_sync_runs(connection_id) WHERE status = 'running';
CREATE INDEX hr_sync_runs_org ON hr_sync_runs(org_id, id);

CREATE TABLE hr_webhook_events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    connection_id TEXT NOT NULL REFERENCES hr_connections(id),
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    member_id TEXT NOT NULL DEFAULT '',
    department_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'received',
    error TEXT NOT NULL DEFAULT '',
    received_at TIMESTAMPTZ NOT NULL,
    processed_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX hr_webhook_events_dedupe ON hr_webhook_events(connection_id, event_id);
CREATE INDEX hr_webhook_events_pending ON hr_webhook_events(status, received_at);

CREATE TABLE hr_members (
    employee_id TEXT PRIMARY KEY REFERENCES employees(id),
    org_id TEXT NOT NULL REFERENCES orgs(id),
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    work_id TEXT NOT NULL DEFAULT '',
    department_id TEXT NOT NULL DEFAULT '',
    manager_external_id TEXT NOT NULL DEFAULT '',
    provider_type TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX hr_members_department ON hr_members(org_id, department_id);
CREATE INDEX hr_members_work_id ON hr_members(org_id, source, work_id);

-- +goose Down
DROP TABLE hr_members;
DROP TABLE hr_webhook_events;
DROP TABLE hr_sync_runs;
DROP TABLE hr_connections;
