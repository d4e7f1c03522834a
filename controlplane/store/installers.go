package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
)

// InstallerBuild records one agent package built for an org (issue 8).
type InstallerBuild struct {
	ID       string `json:"id"`
	OrgID    string `json:"org_id"`
	Platform string `json:"platform"`
	Arch     string `json:"arch"`
	Version  string `json:"version"`
	FileName string `json:"file_name"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size_bytes"`
	SecretID string `json:"secret_id"`
	Signed   bool   `json:"signed"`
	// CachePath is a file on the replica that built it, kept only for builds made before
	// packages moved into installer_blobs; new builds leave it empty.
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

// InstallerBlobChunk is the most bytes one installer_blobs row holds: small enough that a
// download holds one chunk in memory at a time, large enough that a 30 MB package is a few
// dozen rows.
const InstallerBlobChunk = 1 << 20

// PutInstallerBlob stores a package's bytes under their sha256 (hex) in the database, so
// any replica can serve it. It hashes what it reads and refuses content that does not
// match sha, so a blob row is always what its key says; storing the same sha twice is a
// no-op.
func (db *DB) PutInstallerBlob(ctx context.Context, sha string, r io.Reader) error {
	if _, err := db.InstallerBlobSize(ctx, sha); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		h := sha256.New()
		buf := make([]byte, InstallerBlobChunk)
		var off int64
		for {
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				h.Write(buf[:n])
				if _, err := tx.ExecContext(ctx, `INSERT INTO installer_blobs (sha256, byte_offset, data) VALUES ($1, $2, $3)
					ON CONFLICT (sha256, byte_offset) DO NOTHING`, sha, off, buf[:n]); err != nil {
					return fmt.Errorf("store installer blob %s at %d: %w", sha, off, err)
				}
				off += int64(n)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read installer blob %s: %w", sha, err)
			}
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sha {
			return fmt.Errorf("installer blob: content hashes to %s, not %s", got, sha)
		}
		return nil
	})
}

// InstallerBlobSize returns the stored size of a package (ErrNotFound when it is not stored).
func (db *DB) InstallerBlobSize(ctx context.Context, sha string) (int64, error) {
	var size int64
	err := db.SQL.QueryRowContext(ctx, `SELECT byte_offset + length(data) FROM installer_blobs WHERE sha256 = $1
		ORDER BY byte_offset DESC LIMIT 1`, sha).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("installer blob %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("installer blob %s size: %w", sha, err)
	}
	return size, nil
}

// OpenInstallerBlob returns a reader over a stored package that fetches one chunk at a
// time as it is read, so http.ServeContent can serve ranges without the whole package in
// memory. ctx bounds every chunk read.
func (db *DB) OpenInstallerBlob(ctx context.Context, sha string) (io.ReadSeeker, error) {
	size, err := db.InstallerBlobSize(ctx, sha)
	if err != nil {
		return nil, err
	}
	return &blobReader{ctx: ctx, db: db.SQL, sha: sha, size: size}, nil
}

type blobReader struct {
	ctx       context.Context
	db        *sql.DB
	sha       string
	size, off int64
	chunkOff  int64 // offset of chunk; valid when chunk != nil
	chunk     []byte
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.chunk == nil || b.off < b.chunkOff || b.off >= b.chunkOff+int64(len(b.chunk)) {
		b.chunk = nil
		err := b.db.QueryRowContext(b.ctx, `SELECT byte_offset, data FROM installer_blobs WHERE sha256 = $1 AND byte_offset <= $2
			ORDER BY byte_offset DESC LIMIT 1`, b.sha, b.off).Scan(&b.chunkOff, &b.chunk)
		if err != nil {
			return 0, fmt.Errorf("read installer blob %s at %d: %w", b.sha, b.off, err)
		}
		if b.off >= b.chunkOff+int64(len(b.chunk)) {
			return 0, fmt.Errorf("installer blob %s: no chunk covers offset %d", b.sha, b.off)
		}
	}
	n := copy(p, b.chunk[b.off-b.chunkOff:])
	b.off += int64(n)
	return n, nil
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, fmt.Errorf("installer blob: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, errors.New("installer blob: negative position")
	}
	b.off = offset
	return offset, nil
}
