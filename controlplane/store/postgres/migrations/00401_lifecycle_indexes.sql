-- +goose Up
CREATE INDEX procurement_orders_workflow ON procurement_orders(org_id, workflow_id);
CREATE INDEX retrievals_employee ON retrievals(org_id, employee_id);
CREATE INDEX retrievals_device ON retrievals(device_id, id);
CREATE INDEX lifecycle_tasks_workflow ON lifecycle_tasks(workflow_id, id);
CREATE INDEX lifecycle_handled_events_seq ON lifecycle_handled_events(consumer, seq);

-- +goose Down
DROP INDEX lifecycle_handled_events_seq;
DROP INDEX lifecycle_tasks_workflow;
DROP INDEX retrievals_device;
DROP INDEX retrievals_employee;
DROP INDEX procurement_orders_workflow;
