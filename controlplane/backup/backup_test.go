package backup_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/backup"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store/sqlite"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// installation is a data dir with a migrated database, a keyring, a sealed value, a
// state file of some later version and an installer cache.
func installation(t *testing.T) (dataDir string, kr *secrets.Keyring) {
	t.Helper()
	ctx := context.Background()
	dataDir = filepath.Join(t.TempDir(), "data")
	kr, err := secrets.LoadOrCreate(filepath.Join(dataDir, backup.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dataDir, backup.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sealed, err := kr.Seal([]byte("hr token"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE later_secrets (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, `INSERT INTO later_secrets (v) VALUES (?)`, sealed); err != nil {
		t.Fatal(err)
	}
	org := storetest.Org(t, db, domain.PlanPro)
	storetest.Employee(t, db, org.ID, "Ada")
	write(t, filepath.Join(dataDir, "later", "state.json"), "{}")
	write(t, filepath.Join(dataDir, "installers", "cache.pkg"), "rebuildable")
	return dataDir, kr
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A backup taken while another connection writes restores to exactly the rows its
// manifest counted, with the files 0600 in a 0700 directory.
func TestBackupUnderWritesRestores(t *testing.T) {
	data, kr := installation(t)
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(data, backup.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	org := storetest.Org(t, db, domain.PlanPro)
	var wrote atomic.Int64
	stop, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			storetest.Device(t, db, org.ID, fmt.Sprintf("SER-%d", i))
			if wrote.Add(1) == 5 {
				close(started)
			}
		}
	}()
	<-started // writes are under way before, during and after the snapshot
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	m, err := backup.Backup(ctx, backup.Options{DataDir: data, Out: out, Version: "test"})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Keyring.Needed, []string{kr.ActiveKeyID()}) || m.Keyring.Included || m.SchemaVersion == 0 || m.Tables["devices"] < 5 {
		t.Fatalf("manifest %+v", m)
	}
	names := memberNames(m)
	if !slices.Equal(names, []string{"lanyard.db", "data/later/state.json"}) {
		t.Fatalf("members %v: the keyring stays out, the installer cache is not state", names)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("archive %v %v", st, err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	got, err := backup.Restore(ctx, backup.RestoreOptions{In: out, DataDir: target, KeyFile: filepath.Join(data, backup.KeyringFile)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Tables["devices"] != m.Tables["devices"] {
		t.Fatalf("restored %d devices, manifest %d", got.Tables["devices"], m.Tables["devices"])
	}
	for name, mode := range map[string]os.FileMode{"": 0o700, "lanyard.db": 0o600, "keyring.json": 0o600, "later/state.json": 0o600} {
		if st, err := os.Stat(filepath.Join(target, name)); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%q: %v %v, want %v", name, st, err, mode)
		}
	}
	restored, err := secrets.LoadOrCreate(filepath.Join(target, backup.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := sqlite.Open(ctx, filepath.Join(target, backup.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var sealed string
	if err := rdb.SQL.QueryRowContext(ctx, `SELECT v FROM later_secrets`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if pt, err := restored.Open(sealed, "test"); err != nil || string(pt) != "hr token" {
		t.Fatalf("sealed value after restore: %q %v", pt, err)
	}
}

func memberNames(m backup.Manifest) []string {
	var out []string
	for _, mem := range m.Members {
		out = append(out, mem.Name)
	}
	return out
}

// Restore refuses what it cannot restore faithfully, and leaves the target empty.
func TestRestoreRefuses(t *testing.T) {
	data, _ := installation(t)
	ctx := context.Background()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.tar.gz")
	if _, err := backup.Backup(ctx, backup.Options{DataDir: data, Out: plain}); err != nil {
		t.Fatal(err)
	}
	withKeyring := filepath.Join(dir, "keyring.tar.gz")
	m, err := backup.Backup(ctx, backup.Options{DataDir: data, Out: withKeyring, IncludeKeyring: true})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Keyring.Included || !slices.Contains(memberNames(m), backup.KeyringFile) {
		t.Fatalf("--include-keyring manifest %+v", m)
	}
	if _, err := backup.Backup(ctx, backup.Options{DataDir: data, Out: plain}); err == nil {
		t.Fatal("a backup overwrote an existing archive")
	}
	otherKeys := filepath.Join(dir, "other-keyring.json")
	if _, err := secrets.LoadOrCreate(otherKeys); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full")
	write(t, filepath.Join(full, "something"), "x")

	tests := []struct {
		name    string
		in      string
		target  string
		keyFile string
		want    string
	}{
		{"non-empty target", plain, full, filepath.Join(data, backup.KeyringFile), "not empty"},
		{"no keyring", plain, "", "", "holds no keyring"},
		{"a keyring without the needed key", plain, "", otherKeys, "lacks keys"},
		{"corrupt database", rewrite(t, plain, func(hdr *tar.Header, b []byte) []byte {
			if hdr.Name == backup.DBFile {
				b[len(b)/2] ^= 0xff
			}
			return b
		}, nil), "", filepath.Join(data, backup.KeyringFile), "corrupt"},
		{"a member outside the data dir", rewrite(t, plain, func(hdr *tar.Header, b []byte) []byte {
			if strings.HasPrefix(hdr.Name, "data/") {
				hdr.Name = "data/../../escape"
			}
			return b
		}, func(m *backup.Manifest) {
			m.Members[1].Name = "data/../../escape"
		}), "", filepath.Join(data, backup.KeyringFile), "unsafe"},
		{"a member the manifest lacks", rewrite(t, plain, nil, func(m *backup.Manifest) {
			m.Members = m.Members[:1]
		}), "", filepath.Join(data, backup.KeyringFile), "not in the manifest"},
		{"not a backup", writeFile(t, dir, "junk.tar.gz", "junk"), "", "", "not a Lanyard backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = filepath.Join(t.TempDir(), "new")
			}
			_, err := backup.Restore(ctx, backup.RestoreOptions{In: tc.in, DataDir: target, KeyFile: tc.keyFile})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.name == "non-empty target" && !errors.Is(err, backup.ErrNotEmpty) {
				t.Fatalf("%v is not ErrNotEmpty", err)
			}
			if tc.target == "" {
				if entries, _ := os.ReadDir(target); len(entries) > 0 {
					t.Fatalf("a refused restore left %d entries in %s", len(entries), target)
				}
			}
		})
	}
	t.Run("CheckKeyring", func(t *testing.T) {
		db, err := sqlite.Open(ctx, filepath.Join(data, backup.DBFile))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := backup.CheckKeyring(ctx, db.SQL, filepath.Join(data, backup.KeyringFile)); err != nil {
			t.Fatalf("the installation's own keyring: %v", err)
		}
		if err := backup.CheckKeyring(ctx, db.SQL, otherKeys); err == nil || !strings.Contains(err.Error(), "lacks keys") {
			t.Fatalf("another keyring: %v", err)
		}
	})
	t.Run("the keyring in the archive", func(t *testing.T) {
		if _, err := backup.Restore(ctx, backup.RestoreOptions{In: withKeyring, DataDir: filepath.Join(t.TempDir(), "new")}); err != nil {
			t.Fatal(err)
		}
	})
}

func writeFile(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	write(t, p, content)
	return p
}

// rewrite copies an archive, passing every member through edit and the manifest through
// editManifest (either may be nil).
func rewrite(t *testing.T, in string, edit func(hdr *tar.Header, b []byte) []byte, editManifest func(*backup.Manifest)) string {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if hdr.Name == backup.ManifestName && editManifest != nil {
			var m backup.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			editManifest(&m)
			b, _ = json.Marshal(m)
		} else if edit != nil {
			b = edit(hdr, b)
		}
		hdr.Size = int64(len(b))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(b)
	}
	tw.Close()
	zw.Close()
	out := filepath.Join(t.TempDir(), "edited.tar.gz")
	if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}
