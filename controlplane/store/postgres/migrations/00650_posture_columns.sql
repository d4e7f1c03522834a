-- +goose Up
-- The dashboard's compliance counts and the posture filters of the device list read these
-- columns instead of parsing the posture JSON of every device at read time (issue 13: the
-- dashboard took 120 ms at 10,000 devices). Agent tracking fills them when it stores a
-- report; each check is "on", "off", "unknown", or "" when the report left it out, and
-- posture_reported is whether the device has a posture report at all.
ALTER TABLE device_tracking ADD COLUMN posture_reported BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN disk_encryption TEXT NOT NULL DEFAULT '',
    ADD COLUMN firewall TEXT NOT NULL DEFAULT '',
    ADD COLUMN screen_lock TEXT NOT NULL DEFAULT '';
-- Backfill: the same reading of the JSON the dashboard did at read time (stored posture is
-- always the store's own JSON, which the dashboard already cast on every read).
UPDATE device_tracking SET posture_reported = TRUE,
    disk_encryption = CASE COALESCE(posture::json ->> 'disk_encryption', '') WHEN '' THEN '' WHEN 'POSTURE_STATE_ON' THEN 'on'
        WHEN 'POSTURE_STATE_OFF' THEN 'off' ELSE 'unknown' END,
    firewall = CASE COALESCE(posture::json ->> 'firewall', '') WHEN '' THEN '' WHEN 'POSTURE_STATE_ON' THEN 'on'
        WHEN 'POSTURE_STATE_OFF' THEN 'off' ELSE 'unknown' END,
    screen_lock = CASE COALESCE(posture::json ->> 'screen_lock', '') WHEN '' THEN '' WHEN 'POSTURE_STATE_ON' THEN 'on'
        WHEN 'POSTURE_STATE_OFF' THEN 'off' ELSE 'unknown' END
    WHERE posture <> '{}';

-- +goose Down
ALTER TABLE device_tracking DROP COLUMN screen_lock, DROP COLUMN firewall, DROP COLUMN disk_encryption, DROP COLUMN posture_reported;
