-- Device identity renewal: when the SCEP identity of an enrolled Mac nears expiry,
-- Lanyard re-sends the enrollment profile (InstallProfile) and records when.
-- +goose Up
ALTER TABLE mdm_enrollments ADD COLUMN identity_not_after TIMESTAMP;
ALTER TABLE mdm_enrollments ADD COLUMN renewal_at TIMESTAMP;

-- +goose Down
ALTER TABLE mdm_enrollments DROP COLUMN renewal_at;
ALTER TABLE mdm_enrollments DROP COLUMN identity_not_after;
