-- +goose Up
-- Every replica re-reads recent revocations every few seconds.
CREATE INDEX agents_revoked ON agents(revoked_at) WHERE revoked_at IS NOT NULL;
-- The delivery backstop polls queued agent commands.
CREATE INDEX device_commands_queued ON device_commands(channel, state, id);

-- +goose Down
DROP INDEX device_commands_queued;
DROP INDEX agents_revoked;
