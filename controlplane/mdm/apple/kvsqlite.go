package apple

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/micromdm/nanolib/storage/kv"
	"github.com/micromdm/nanolib/storage/kv/kvtxn"
	nanokv "github.com/micromdm/nanomdm/storage/kv"
)

// sqliteBucket is a nanolib kv bucket on the mdm_kv table of our SQLite database.
// nanomdm ships no SQLite backend; its kv storage over six of these buckets is the whole
// adapter. Transactions come from kvtxn (in-process), so this is single-instance only,
// which is what SQLite is anyway.
type sqliteBucket struct {
	db   *sql.DB
	name string
}

func (b *sqliteBucket) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := b.db.QueryRowContext(ctx, `SELECT v FROM mdm_kv WHERE bucket = $1 AND k = $2`, b.name, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", kv.ErrKeyNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("kv get %s/%s: %w", b.name, key, err)
	}
	return v, nil
}

func (b *sqliteBucket) Has(ctx context.Context, key string) (bool, error) {
	var one int
	err := b.db.QueryRowContext(ctx, `SELECT 1 FROM mdm_kv WHERE bucket = $1 AND k = $2`, b.name, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kv has %s/%s: %w", b.name, key, err)
	}
	return true, nil
}

func (b *sqliteBucket) Set(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	_, err := b.db.ExecContext(ctx, `INSERT INTO mdm_kv (bucket, k, v) VALUES ($1, $2, $3)
		ON CONFLICT (bucket, k) DO UPDATE SET v = excluded.v`, b.name, key, value)
	if err != nil {
		return fmt.Errorf("kv set %s/%s: %w", b.name, key, err)
	}
	return nil
}

func (b *sqliteBucket) Delete(ctx context.Context, key string) error {
	_, err := b.db.ExecContext(ctx, `DELETE FROM mdm_kv WHERE bucket = $1 AND k = $2`, b.name, key)
	if err != nil {
		return fmt.Errorf("kv delete %s/%s: %w", b.name, key, err)
	}
	return nil
}

func (b *sqliteBucket) Keys(ctx context.Context, cancel <-chan struct{}) <-chan string {
	return b.KeysPrefix(ctx, "", cancel)
}

// KeysPrefix reads the matching keys first and streams them afterwards, so no connection
// is held while the consumer (which may write) ranges over the channel.
func (b *sqliteBucket) KeysPrefix(ctx context.Context, prefix string, cancel <-chan struct{}) <-chan string {
	out := make(chan string)
	var keys []string
	rows, err := b.db.QueryContext(ctx, `SELECT k FROM mdm_kv WHERE bucket = $1 AND substr(k, 1, length($2)) = $2 ORDER BY k`, b.name, prefix)
	if err == nil {
		for rows.Next() {
			var k string
			if rows.Scan(&k) == nil {
				keys = append(keys, k)
			}
		}
		rows.Close()
	}
	go func() {
		defer close(out)
		for _, k := range keys {
			select {
			case <-cancel:
				return
			case <-ctx.Done():
				return
			case out <- k:
			}
		}
	}()
	return out
}

// newSQLiteNanoStorage composes nanomdm's kv storage from six buckets on db.
func newSQLiteNanoStorage(db *sql.DB) *nanokv.KV {
	b := func(name string) *kvtxn.KVTxn { return kvtxn.New(&sqliteBucket{db: db, name: name}) }
	return nanokv.New(b("users"), b("cert_auth"), b("queue"), b("push_cert"), b("devices"), b("enrollments"))
}
