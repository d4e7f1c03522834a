-- +goose Up
-- Rehire matching (HR sync) looks up terminated employees by work email.
CREATE INDEX hr_employees_work_email ON employees(org_id, work_email) WHERE work_email <> '';

-- +goose Down
DROP INDEX hr_employees_work_email;
