-- +goose Up
-- Reconciliation (issue 16 item 6): accounts an app holds that Lanyard's people do not
-- explain. reason: terminated (an account of someone terminated that was active) or
-- no_person (an account nobody in HR matches). action: resuspended or reported.
-- resolved_at is set when a later pass no longer finds the account so.
CREATE TABLE app_orphans (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    app TEXT NOT NULL,
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL DEFAULT '',
    employee_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP
);
CREATE UNIQUE INDEX app_orphans_account ON app_orphans(org_id, app, account_id);

-- +goose Down
DROP TABLE app_orphans;
