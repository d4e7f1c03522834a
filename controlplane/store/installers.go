package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// InstallerBuild records one agent package built for an org (issue 8).
type InstallerBuild struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Platform  string    `json:"platform"`
	Arch      string    `json:"arch"`
	Version   string    `json:"version"`
	FileName  string    `json:"file_name"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size_bytes"`
	SecretID  string    `json:"secret_id"`
	Signed    bool      `json:"signed"`
	CachePath string    `json:"-"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

const installerCols = `id, org_id, platform, arch, version, file_name, sha256, size_bytes, secret_id, signed, cache_path, created_by, created_at`

func scanInstallerBuild(s interface{ Scan(...any) error }) (InstallerBuild, error) {
	var b InstallerBuild
	err := s.Scan(&b.ID, &b.OrgID, &b.Platform, &b.Arch, &b.Version, &b.FileName, &b.SHA256, &b.Size, &b.SecretID,
		&b.Signed, &b.CachePath, &b.CreatedBy, &b.CreatedAt)
	return b, err
}

// CreateInstallerBuild records a build and audits it.
func (db *DB) CreateInstallerBuild(ctx context.Context, b *InstallerBuild) error {
	if b.ID == "" {
		b.ID = domain.NewID()
	}
	if b.CreatedAt.IsZero() {
		b.CreatedAt = domain.Now()
	}
	b.CreatedAt = b.CreatedAt.UTC()
	if b.CreatedBy == "" {
		b.CreatedBy = domain.ActorFrom(ctx).ID
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO installer_builds (`+installerCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			b.ID, b.OrgID, b.Platform, b.Arch, b.Version, b.FileName, b.SHA256, b.Size, b.SecretID, b.Signed,
			b.CachePath, b.CreatedBy, b.CreatedAt)
		if err != nil {
			return fmt.Errorf("create installer build: %w", err)
		}
		return WriteAudit(ctx, tx, AuditFor(ctx, b.OrgID, "installer.built", "installer_build", b.ID, nil, b))
	})
}

// LatestInstallerBuilds returns an org's builds for one platform, arch and version,
// newest first (at most limit).
func (db *DB) LatestInstallerBuilds(ctx context.Context, orgID, platform, arch, version string, limit int) ([]InstallerBuild, error) {
	return queryAll(ctx, db.SQL, "latest installer builds", scanInstallerBuild, `SELECT `+installerCols+` FROM installer_builds
		WHERE org_id = $1 AND platform = $2 AND arch = $3 AND version = $4 ORDER BY id DESC LIMIT `+fmt.Sprint(max(limit, 1)),
		orgID, platform, arch, version)
}

// GetInstallerBuild reads one build of an org.
func (db *DB) GetInstallerBuild(ctx context.Context, orgID, id string) (InstallerBuild, error) {
	b, err := scanInstallerBuild(db.SQL.QueryRowContext(ctx, `SELECT `+installerCols+` FROM installer_builds WHERE org_id = $1 AND id = $2`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("installer build %s: %w", id, ErrNotFound)
	}
	return b, err
}

// ListInstallerBuilds returns one page of an org's builds.
func (db *DB) ListInstallerBuilds(ctx context.Context, orgID string, p Page) ([]InstallerBuild, string, error) {
	w := &where{}
	w.add("org_id = ?", orgID)
	return listPage(ctx, db.SQL, "list installer builds", scanInstallerBuild, func(b InstallerBuild) string { return b.ID }, p,
		`SELECT `+installerCols+` FROM installer_builds`, w)
}
