-- +goose Up
-- The dashboard and device search at 10,000 devices (issue 13). Compliance joins every
-- in-service device to its posture columns: with them in one index the join reads the
-- index only, never the tracking rows (which carry the inventory and the posture JSON).
CREATE INDEX device_tracking_posture ON device_tracking(device_id, posture_reported, os_version, disk_encryption, firewall, screen_lock);
-- "Offline for more than a week" starts from the few devices last seen before the cutoff
-- instead of checking every device's last report.
CREATE INDEX device_tracking_seen ON device_tracking(org_id, last_seen_at);
-- Device search matches hostnames by substring, which reads every tracking row of the org:
-- from this index it reads hostnames and ids only (the console's device search counts
-- and pages, so it runs twice per page).
CREATE INDEX device_tracking_hostname ON device_tracking(org_id, hostname, device_id);

-- +goose Down
DROP INDEX device_tracking_hostname;
DROP INDEX device_tracking_seen;
DROP INDEX device_tracking_posture;
