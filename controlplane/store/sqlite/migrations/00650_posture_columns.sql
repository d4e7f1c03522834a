-- +goose Up
-- The dashboard's compliance counts and the posture filters of the device list read these
-- columns instead of parsing the posture JSON of every device at read time (issue 13: the
-- dashboard took 120 ms at 10,000 devices). Agent tracking fills them when it stores a
-- report; each check is "on", "off", "unknown", or "" when the report left it out, and
-- posture_reported is whether the device has a posture report at all.
ALTER TABLE device_tracking ADD COLUMN posture_reported INTEGER NOT NULL DEFAULT 0;
ALTER TABLE device_tracking ADD COLUMN disk_encryption TEXT NOT NULL DEFAULT '';
ALTER TABLE device_tracking ADD COLUMN firewall TEXT NOT NULL DEFAULT '';
ALTER TABLE device_tracking ADD COLUMN screen_lock TEXT NOT NULL DEFAULT '';
-- Backfill: the same reading of the JSON the dashboard did at read time.
UPDATE device_tracking SET posture_reported = 1,
    disk_encryption = CASE COALESCE(json_extract(posture, '$.disk_encryption'), '') WHEN '' THEN '' WHEN 'POSTURE_STATE_ON' THEN 'on'
        WHEN 'POSTURE_STATE_OFF' THEN 'off' ELSE 'unknown' END,
    firewall = CASE COALESCE(json_extract(posture, '$.firewall'), '') WHEN '' THEN '' WHEN 'POSTURE_STATE_ON' THEN 'on'
        WHEN 'POSTURE_STATE_OFF' THEN 'off' ELSE 'unknown' END,
    screen_lock = CASE COALESCE(json_extract(posture, '$.screen_lock'), '') WHEN '' THEN '' WHEN 'POSTURE_STATE_ON' THEN 'on'
        WHEN 'POSTURE_STATE_OFF' THEN 'off' ELSE 'unknown' END
    WHERE posture <> '{}' AND json_valid(posture);

-- +goose Down
ALTER TABLE device_tracking DROP COLUMN screen_lock;
ALTER TABLE device_tracking DROP COLUMN firewall;
ALTER TABLE device_tracking DROP COLUMN disk_encryption;
ALTER TABLE device_tracking DROP COLUMN posture_reported;
