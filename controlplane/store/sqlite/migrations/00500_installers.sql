-- +goose Up
-- Installers (issue 8): one row per agent package built for an org. Each build carries
-- its own enrollment secret (secret_id → enrollment_secrets); the package file itself
-- lives in the server's installer cache directory under cache_path.
CREATE TABLE installer_builds (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    platform TEXT NOT NULL,
    arch TEXT NOT NULL,
    version TEXT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    secret_id TEXT NOT NULL,
    signed INTEGER NOT NULL DEFAULT 0,
    cache_path TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX installer_builds_lookup ON installer_builds(org_id, platform, arch, version, id);

-- +goose Down
DROP TABLE installer_builds;
