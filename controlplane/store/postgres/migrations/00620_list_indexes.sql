-- +goose Up
-- Device and people lists (issue 13): every sort a list offers is (org, key, id), so the
-- first page of a sorted list walks one index in order and stops after a page instead of
-- sorting the whole org. Search (a substring of several columns) still reads the org's rows;
-- at 10,000 devices that is a few milliseconds (docs/benchmarks.md, "Console and lists").
CREATE INDEX devices_org_created ON devices(org_id, created_at, id);
CREATE INDEX devices_org_serial ON devices(org_id, serial_number, id);
CREATE INDEX devices_org_model ON devices(org_id, lower(model), id);
CREATE INDEX devices_org_state ON devices(org_id, state, id);
CREATE INDEX devices_org_platform ON devices(org_id, platform, id);
-- The dashboard and the needs_review filter read the few flagged devices only.
CREATE INDEX device_tracking_review ON device_tracking(org_id) WHERE needs_review OR serial_conflict;
CREATE INDEX employees_org_created ON employees(org_id, created_at, id);
CREATE INDEX employees_org_name ON employees(org_id, lower(first_name || ' ' || last_name), id);
CREATE INDEX employees_org_email ON employees(org_id, work_email, id);

-- +goose Down
DROP INDEX employees_org_email;
DROP INDEX employees_org_name;
DROP INDEX employees_org_created;
DROP INDEX device_tracking_review;
DROP INDEX devices_org_platform;
DROP INDEX devices_org_state;
DROP INDEX devices_org_model;
DROP INDEX devices_org_serial;
DROP INDEX devices_org_created;
