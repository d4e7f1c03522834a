-- +goose Up
-- What a device's serial_number holds: the firmware serial, or (for a PC whose firmware
-- has no usable serial) its hardware UUID, upper case. Set by agent tracking.
ALTER TABLE device_tracking ADD COLUMN identity_source TEXT NOT NULL DEFAULT 'serial'
    CHECK (identity_source IN ('serial', 'hardware_uuid'));

-- +goose Down
ALTER TABLE device_tracking DROP COLUMN identity_source;
