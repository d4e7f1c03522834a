-- +goose Up
-- Facts that must reach the outbox once however many replicas or re-runs observe them
-- (an overdue task, an APNs threshold, a device's silence): WriteEventOnce inserts the key
-- in the same transaction as the event, and a second writer's insert is a no-op.
CREATE TABLE event_once (
    key TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE event_once;
