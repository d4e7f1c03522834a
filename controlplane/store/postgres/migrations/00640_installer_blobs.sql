-- +goose Up
-- Installer packages live in the database (issue 14): every replica serves every download
-- link, and a replica's data dir holds nothing another needs. A package is stored once per
-- sha256 in chunks of at most 1 MiB keyed by their byte offset, so a download reads one
-- chunk at a time and a range request reads only the chunks it covers. installer_builds
-- .cache_path (an absolute path on one replica's disk) is no longer written.
CREATE TABLE installer_blobs (
    sha256 TEXT NOT NULL,
    byte_offset BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (sha256, byte_offset)
);

-- +goose Down
DROP TABLE installer_blobs;
