-- +goose Up
-- Lifecycle's notifications (controlplane/lifecycle/notify.go). NOTIFY is transactional:
-- it is delivered when the writing transaction commits and never for a rollback, so a
-- trigger announces exactly the committed outbox rows and command outcomes, whoever
-- writes them (WriteEvent, HR sync's batch insert, the command model, MDM). The payload
-- starts with the schema so replicas sharing a server with other schemas (tests) ignore
-- each other's rows. The notifications are only wake-ups: lifecycle's poll catches up
-- on anything announced while its listener was disconnected.

-- +goose StatementBegin
CREATE FUNCTION lanyard_lifecycle_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lanyard_outbox', current_schema());
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION lanyard_lifecycle_notify_outbox();

-- A command reached an end state (done, failed, expired, canceled, simulated): the lock
-- or wipe step waiting for it re-checks now instead of at its next re-check time.
-- +goose StatementBegin
CREATE FUNCTION lanyard_lifecycle_notify_command() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lanyard_command_outcomes', current_schema() || ':' || NEW.id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER device_commands_notify_outcome AFTER UPDATE OF state ON device_commands
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
        AND NEW.state IN ('done', 'failed', 'expired', 'canceled', 'simulated'))
    EXECUTE FUNCTION lanyard_lifecycle_notify_command();

-- +goose Down
DROP TRIGGER device_commands_notify_outcome ON device_commands;
DROP FUNCTION lanyard_lifecycle_notify_command();
DROP TRIGGER outbox_events_notify ON outbox_events;
DROP FUNCTION lanyard_lifecycle_notify_outbox();
