// Package backup takes and restores online backups of an embedded (SQLite) Lanyard
// installation: one tar.gz holding a consistent snapshot of the database, the other
// state of the data directory and a manifest with a sha256 per member. The keyring that
// seals the CA keys and the other secrets is left out unless the operator asks for it;
// the manifest names the keys the snapshot needs (docs/adr/2026-12-02_backup.md).
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver `lanyard serve` uses, so VACUUM INTO runs on the same engine

	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Names inside the data directory and the archive.
const (
	DBFile       = "lanyard.db"
	KeyringFile  = "keyring.json"
	ManifestName = "manifest.json"
	// installersDir is a cache of built packages, rebuilt on demand: never backed up.
	installersDir = "installers"
	// FormatVersion is the archive layout; Restore refuses others.
	FormatVersion = 1
)

// Member is one file of the archive.
type Member struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// KeyringInfo says which keys the snapshot needs and whether they travel with it.
type KeyringInfo struct {
	// Included: the keyring file is a member (--include-keyring).
	Included bool `json:"included"`
	// Needed are the key ids that sealed a value in the snapshot: restoring needs a
	// keyring holding every one of them.
	Needed []string `json:"needed"`
	// Held are the key ids of the keyring file at backup time.
	Held []string `json:"held"`
	// Source is where the keyring file was when the backup was taken.
	Source string `json:"source"`
}

// Manifest describes an archive; it is its first member.
type Manifest struct {
	Format         int              `json:"format"`
	LanyardVersion string           `json:"lanyard_version"`
	SchemaVersion  int64            `json:"schema_version"`
	CreatedAt      time.Time        `json:"created_at"`
	Dialect        string           `json:"dialect"`
	Members        []Member         `json:"members"`
	Tables         map[string]int64 `json:"tables"`
	Keyring        KeyringInfo      `json:"keyring"`
}

// Options for Backup.
type Options struct {
	DataDir string
	// KeyFile is the keyring (default <data-dir>/keyring.json).
	KeyFile string
	// Out is the archive to write (mode 0600); it must not exist.
	Out string
	// IncludeKeyring puts the keyring in the archive, which then opens every secret.
	IncludeKeyring bool
	Version        string
}

// Backup snapshots a live installation into opts.Out. The database is copied with
// VACUUM INTO, one read transaction: consistent while the server keeps writing (WAL
// readers never block the writer).
func Backup(ctx context.Context, opts Options) (Manifest, error) {
	if opts.KeyFile == "" {
		opts.KeyFile = filepath.Join(opts.DataDir, KeyringFile)
	}
	dbPath := filepath.Join(opts.DataDir, DBFile)
	if _, err := os.Stat(dbPath); err != nil {
		return Manifest{}, fmt.Errorf("no SQLite database in %s (a Postgres installation is backed up with pg_dump, docs/operations.md): %w", opts.DataDir, err)
	}
	if _, err := os.Stat(opts.Out); err == nil {
		return Manifest{}, fmt.Errorf("%s exists: refusing to overwrite a backup", opts.Out)
	}
	// An installation that never served has no keyring yet; that is fine as long as
	// nothing in the database is sealed (checked below).
	var kr *secrets.Keyring
	if _, err := os.Stat(opts.KeyFile); err == nil || opts.IncludeKeyring {
		if kr, err = loadKeyring(opts.KeyFile); err != nil {
			return Manifest{}, err
		}
	}
	stage, err := os.MkdirTemp(filepath.Dir(opts.Out), ".lanyard-backup-")
	if err != nil {
		return Manifest{}, fmt.Errorf("staging directory: %w", err)
	}
	defer os.RemoveAll(stage)

	snap := filepath.Join(stage, DBFile)
	if err := vacuumInto(ctx, dbPath, snap); err != nil {
		return Manifest{}, err
	}
	m := Manifest{Format: FormatVersion, LanyardVersion: opts.Version, CreatedAt: time.Now().UTC(), Dialect: "sqlite"}
	if err := describeSnapshot(ctx, snap, &m); err != nil {
		return Manifest{}, err
	}
	m.Keyring.Source, m.Keyring.Included = opts.KeyFile, opts.IncludeKeyring
	if kr != nil {
		m.Keyring.Held = kr.KeyIDs()
	}
	if missing := missingKeys(kr, m.Keyring.Needed); len(missing) > 0 {
		return Manifest{}, fmt.Errorf("the database holds values sealed with keys %v that %s lacks: fix the keyring before backing up", missing, opts.KeyFile)
	}

	files := []archived{{name: DBFile, path: snap}}
	if opts.IncludeKeyring {
		files = append(files, archived{name: KeyringFile, path: opts.KeyFile})
	}
	extra, err := otherState(opts.DataDir, opts.KeyFile)
	if err != nil {
		return Manifest{}, err
	}
	files = append(files, extra...)
	for i := range files {
		if files[i].member, err = hashFile(files[i].name, files[i].path); err != nil {
			return Manifest{}, err
		}
		m.Members = append(m.Members, files[i].member)
	}
	if err := writeArchive(opts.Out, m, files); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

type archived struct {
	name, path string
	member     Member
}

func loadKeyring(path string) (*secrets.Keyring, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return secrets.LoadOrCreate(path)
}

func missingKeys(kr *secrets.Keyring, needed []string) []string {
	held := map[string]bool{}
	if kr != nil {
		for _, id := range kr.KeyIDs() {
			held[id] = true
		}
	}
	var missing []string
	for _, id := range needed {
		if !held[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

func openSQLite(path string, readOnly bool) (*sql.DB, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(15000)"
	if readOnly {
		dsn += "&mode=ro"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func vacuumInto(ctx context.Context, src, dst string) error {
	db, err := openSQLite(src, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	return os.Chmod(dst, 0o600)
}

// describeSnapshot fills the schema version, row counts and the key ids the sealed
// values in the snapshot name.
func describeSnapshot(ctx context.Context, path string, m *Manifest) error {
	db, err := openSQLite(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&m.SchemaVersion); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if m.Tables, err = CountRows(ctx, db); err != nil {
		return err
	}
	m.Keyring.Needed, err = sealedKeyIDs(ctx, db)
	return err
}

// Tables lists the user tables of a SQLite database.
func Tables(ctx context.Context, db *sql.DB) ([]string, error) {
	out, err := store.QueryStrings(ctx, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return out, nil
}

// CountRows counts the rows of every user table of a SQLite database.
func CountRows(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	tables, err := Tables(ctx, db)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, t := range tables {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+t+`"`).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// CheckKeyring fails unless the keyring file at keyFile holds every key that sealed a
// value in db (a SQLite database), so a move or restore is not finished with a keyring
// that cannot open the CA.
func CheckKeyring(ctx context.Context, db *sql.DB, keyFile string) error {
	needed, err := sealedKeyIDs(ctx, db)
	if err != nil || len(needed) == 0 {
		return err
	}
	kr, err := loadKeyring(keyFile)
	if err != nil {
		return err
	}
	if missing := missingKeys(kr, needed); len(missing) > 0 {
		return fmt.Errorf("keyring %s lacks keys %v that sealed values in the database", keyFile, missing)
	}
	return nil
}

// sealedKeyIDs finds the key ids named by secrets.Seal ciphertexts ("v1:<key>:...") in
// any text column, so the manifest says exactly which keys a restore needs.
func sealedKeyIDs(ctx context.Context, db *sql.DB) ([]string, error) {
	tables, err := Tables(ctx, db)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	for _, t := range tables {
		cols, err := textColumns(ctx, db, t)
		if err != nil {
			return nil, err
		}
		for _, c := range cols {
			ids, err := store.QueryStrings(ctx, db, fmt.Sprintf(`SELECT DISTINCT substr(%[1]q, 4, instr(substr(%[1]q, 4), ':') - 1) FROM %[2]q
				WHERE typeof(%[1]q) = 'text' AND %[1]q LIKE 'v1:%%:%%'`, c, t))
			if err != nil {
				return nil, fmt.Errorf("scan %s.%s for sealed values: %w", t, c, err)
			}
			for _, id := range ids {
				if id != "" && !strings.ContainsAny(id, " \n") {
					found[id] = true
				}
			}
		}
	}
	out := make([]string, 0, len(found))
	for id := range found {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

func textColumns(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		if t := strings.ToUpper(typ); t == "" || strings.Contains(t, "TEXT") || strings.Contains(t, "CHAR") {
			out = append(out, name)
		}
	}
	return out, rows.Err()
}

// otherState lists the data directory's files that are neither the database (its
// snapshot is taken separately), the keyring nor the installer cache: whatever a later
// version keeps there travels with the backup.
func otherState(dataDir, keyFile string) ([]archived, error) {
	var out []archived
	absKey, _ := filepath.Abs(keyFile)
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		if d.IsDir() {
			if rel == installersDir {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if abs, _ := filepath.Abs(p); abs == absKey {
			return nil
		}
		switch rel {
		case DBFile, DBFile + "-wal", DBFile + "-shm", DBFile + "-journal", KeyringFile:
			return nil
		}
		out = append(out, archived{name: "data/" + filepath.ToSlash(rel), path: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dataDir, err)
	}
	return out, nil
}

func hashFile(name, path string) (Member, error) {
	f, err := os.Open(path)
	if err != nil {
		return Member{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Member{}, fmt.Errorf("read %s: %w", path, err)
	}
	return Member{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeArchive writes manifest.json then the members to out (0600) through a temporary
// file, so a failed backup never leaves a truncated archive under the final name.
func writeArchive(out string, m Manifest, files []archived) (err error) {
	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o600, Size: int64(len(mb)), ModTime: m.CreatedAt}); err != nil {
		return err
	}
	if _, err := tw.Write(mb); err != nil {
		return err
	}
	for _, a := range files {
		if err := addFile(tw, a, m.CreatedAt); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func addFile(tw *tar.Writer, a archived, mtime time.Time) error {
	f, err := os.Open(a.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: a.name, Mode: 0o600, Size: a.member.Size, ModTime: mtime}); err != nil {
		return err
	}
	// A file that changed since it was hashed would not match the manifest: copy exactly
	// the hashed size and let Restore's checksum catch anything else.
	if _, err := io.CopyN(tw, f, a.member.Size); err != nil {
		return fmt.Errorf("archive %s: %w", a.name, err)
	}
	return nil
}

// ErrNotEmpty is returned when a restore or move target already holds data.
var ErrNotEmpty = errors.New("target is not empty")
