-- +goose Up
-- The backfill's (at, id) walk only ever reads rows without a chain position, and after it
-- there are none: a partial index serves it (and the verifier's search for unchained
-- rows) without every audit insert paying for a full (org_id, at, id) index.
DROP INDEX audit_log_org_at;
CREATE INDEX audit_log_unchained ON audit_log(org_id, at, id) WHERE seq IS NULL;

-- +goose Down
DROP INDEX audit_log_unchained;
CREATE INDEX audit_log_org_at ON audit_log(org_id, at, id);
