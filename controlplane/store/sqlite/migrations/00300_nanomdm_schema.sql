-- nanomdm has no SQLite backend; on SQLite Lanyard runs nanomdm's kv storage over this
-- one table (controlplane/mdm/apple/kvsqlite.go): six buckets, opaque values.
-- +goose Up
CREATE TABLE mdm_kv (
    bucket TEXT NOT NULL,
    k TEXT NOT NULL,
    v BLOB NOT NULL,
    PRIMARY KEY (bucket, k)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE mdm_kv;
