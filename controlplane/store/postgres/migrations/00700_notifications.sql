-- +goose Up
-- Notifications (controlplane/notify, docs/adr/2026-12-03_notification-delivery.md).
-- Channels are where messages go (email, slack, webhook, log); rules say which events
-- reach which audience; a delivery is one message for one (event, channel, recipient),
-- its id derived from those three so a re-read of the outbox never enqueues it twice.
CREATE TABLE notify_channels (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('email', 'slack', 'webhook', 'log')),
    -- Non-secret settings (SMTP host, from, webhook URL without credentials ...), JSON.
    config TEXT NOT NULL DEFAULT '{}',
    -- The secret (SMTP password, Slack hook URL, webhook signing secret), sealed with
    -- AAD "org:<org>:notify_channel:<id>"; the previous webhook secret keeps signing
    -- beside the new one until prev_expires_at so receivers can switch over.
    secret_sealed TEXT NOT NULL DEFAULT '',
    prev_secret_sealed TEXT NOT NULL DEFAULT '',
    prev_expires_at TIMESTAMPTZ,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX notify_channels_name ON notify_channels(org_id, name);

CREATE TABLE notify_rules (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    -- Event types, JSON array; ["*"] matches every type.
    events TEXT NOT NULL DEFAULT '[]',
    audience TEXT NOT NULL CHECK (audience IN ('admins', 'address', 'channel', 'employee')),
    min_role TEXT NOT NULL DEFAULT '',
    channel_id TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notify_rules_org ON notify_rules(org_id, id);

-- An org gets the default rules once (the first event seen for it); deleting them later
-- does not bring them back.
CREATE TABLE notify_orgs (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id),
    seeded_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE notify_deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_at TIMESTAMPTZ NOT NULL,
    -- The event as the outbox held it (subject and payload), so a delivery renders
    -- without the outbox row.
    event TEXT NOT NULL DEFAULT '{}',
    channel_id TEXT NOT NULL,
    channel_kind TEXT NOT NULL,
    recipient TEXT NOT NULL DEFAULT '',
    template TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TIMESTAMPTZ NOT NULL,
    lease_token TEXT NOT NULL DEFAULT '',
    lease_until TIMESTAMPTZ,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ
);
CREATE INDEX notify_deliveries_org ON notify_deliveries(org_id, id);
CREATE INDEX notify_deliveries_due ON notify_deliveries(state, next_at);
CREATE INDEX notify_deliveries_event ON notify_deliveries(org_id, event_id);

CREATE TABLE notify_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES notify_deliveries(id),
    n INTEGER NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'transient', 'permanent')),
    status INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '',
    duration_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notify_attempts_delivery ON notify_attempts(delivery_id, n);

-- +goose Down
DROP TABLE notify_attempts;
DROP TABLE notify_deliveries;
DROP TABLE notify_orgs;
DROP TABLE notify_rules;
DROP TABLE notify_channels;
