package apple

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/micromdm/nanolib/storage/kv"
	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/nanomdm/storage/pgsql"

	"github.com/lanyardhq/lanyard/controlplane/store"
)

// NanoMDMMove replays nanomdm's state from a SQLite installation (the mdm_kv buckets)
// into nanomdm's own schema on Postgres, for `lanyard admin move-to-postgres`: the
// enrollments (Authenticate, TokenUpdate, bootstrap token and user channels, in the
// order nanomdm's own nano2nano migration sends them, each with the device's identity
// certificate), the identity certificate associations certauth checks on every
// check-in, and every command still queued. Push certificates are not in nanomdm's
// storage on either dialect (Lanyard keeps them, sealed, in mdm_push_certs, a copied
// table), and answered commands' reports are history Lanyard already keeps in
// mdm_commands.
type NanoMDMMove struct{ Logger *slog.Logger }

// Move replays src's nanomdm state into dst's nanomdm schema, which must be empty. It
// returns what it carried; on error the nanomdm tables of dst are emptied again.
func (m NanoMDMMove) Move(ctx context.Context, src, dst *store.DB) (summary string, undo func(context.Context) error, err error) {
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	st, closeNano, err := openPostgresNano(ctx, dst, m.Logger)
	if err != nil {
		return "", nil, err
	}
	defer closeNano()
	schema := NanoMDMSchema(dst.Schema)
	undo = func(ctx context.Context) error { return clearNanoSchema(ctx, dst, schema) }
	if err := nanoSchemaEmpty(ctx, dst, schema); err != nil {
		return "", nil, err
	}
	defer func() {
		if err != nil {
			if uerr := undo(context.Background()); uerr != nil {
				err = fmt.Errorf("%w (and emptying %s again failed: %v)", err, schema, uerr)
			}
		}
	}()
	b := func(name string) *sqliteBucket { return &sqliteBucket{db: src.SQL, name: name} }
	kvs := newSQLiteNanoStorage(src.SQL)

	checkins := make(chan interface{})
	retrieveErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		retrieveErr <- kvs.RetrieveMigrationCheckins(ctx, checkins)
		close(checkins)
	}()
	var ids []string
	enrollments := 0
	for c := range checkins {
		if err := m.replay(ctx, st, b("devices"), c, &ids, &enrollments); err != nil {
			cancel()
			for range checkins { //nolint:revive // drain so the producer ends
			}
			return "", nil, err
		}
	}
	if err := <-retrieveErr; err != nil {
		return "", nil, fmt.Errorf("read nanomdm check-ins: %w", err)
	}
	hashes := 0
	for _, id := range ids {
		hash, err := b("cert_auth").Get(ctx, id+".cert_hash")
		if errors.Is(err, kv.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		r := mdm.NewRequestWithContext(ctx, nil)
		r.EnrollID = &mdm.EnrollID{ID: id}
		if err := st.AssociateCertHash(r, string(hash)); err != nil {
			return "", nil, fmt.Errorf("associate the identity certificate of %s: %w", id, err)
		}
		hashes++
	}
	queued, err := moveQueue(ctx, st, b("queue"), ids)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("%d enrollments, %d identity certificates, %d queued commands", enrollments, hashes, queued), undo, nil
}

// replay stores one check-in message as nanomdm's service would have on Postgres.
func (m NanoMDMMove) replay(ctx context.Context, st *pgsql.PgSQLStorage, devices *sqliteBucket, c interface{}, ids *[]string, enrollments *int) error {
	request := func(e *mdm.Enrollment) (*mdm.Request, error) {
		r := e.Resolved()
		if r == nil {
			return nil, errors.New("check-in without an enrollment id")
		}
		id := &mdm.EnrollID{Type: r.Type, ID: r.DeviceChannelID}
		if r.IsUserChannel {
			id.ID += ":" + r.UserChannelID
			id.ParentID = r.DeviceChannelID
		}
		req := mdm.NewRequestWithContext(ctx, nil)
		req.EnrollID = id
		return req, nil
	}
	switch msg := c.(type) {
	case *mdm.Authenticate:
		r, err := request(&msg.Enrollment)
		if err != nil {
			return err
		}
		der, err := devices.Get(ctx, r.ID+".cert")
		if err == nil {
			if r.Certificate, err = x509.ParseCertificate(der); err != nil {
				return fmt.Errorf("identity certificate of %s: %w", r.ID, err)
			}
		} else if !errors.Is(err, kv.ErrKeyNotFound) {
			return err
		}
		*ids = append(*ids, r.ID)
		return st.StoreAuthenticate(r, msg)
	case *mdm.TokenUpdate:
		r, err := request(&msg.Enrollment)
		if err != nil {
			return err
		}
		if r.ParentID != "" {
			*ids = append(*ids, r.ID)
		}
		*enrollments++
		return st.StoreTokenUpdate(r, msg)
	case *mdm.SetBootstrapToken:
		r, err := request(&msg.Enrollment)
		if err != nil {
			return err
		}
		return st.StoreBootstrapToken(r, msg)
	case *mdm.UserAuthenticate:
		r, err := request(&msg.Enrollment)
		if err != nil {
			return err
		}
		return st.StoreUserAuthenticate(r, msg)
	case error:
		return fmt.Errorf("read nanomdm check-in: %w", msg)
	}
	return fmt.Errorf("nanomdm check-in of type %T cannot be replayed", c)
}

// moveQueue walks each enrollment's queue (nanomdm kv keeps it as a linked list:
// "<id>.queuekey.queue.first", then "<id>.<uuid>.queueitem.next") and enqueues every
// command still in it, in order, on Postgres.
func moveQueue(ctx context.Context, st *pgsql.PgSQLStorage, q *sqliteBucket, ids []string) (int, error) {
	byUUID := map[string][]string{}
	var order []string
	get := func(key string) (string, error) {
		v, err := q.Get(ctx, key)
		if errors.Is(err, kv.ErrKeyNotFound) {
			return "", nil
		}
		return string(v), err
	}
	for _, id := range ids {
		seen := map[string]bool{}
		uuid, err := get(id + ".queuekey.queue.first")
		for err == nil && uuid != "" && !seen[uuid] {
			seen[uuid] = true
			if byUUID[uuid] == nil {
				order = append(order, uuid)
			}
			byUUID[uuid] = append(byUUID[uuid], id)
			uuid, err = get(id + "." + uuid + ".queueitem.next")
		}
		if err != nil {
			return 0, fmt.Errorf("read the MDM queue of %s: %w", id, err)
		}
	}
	for _, uuid := range order {
		raw, err := q.Get(ctx, uuid+".raw")
		if err != nil {
			return 0, fmt.Errorf("queued MDM command %s: %w", uuid, err)
		}
		reqType, err := q.Get(ctx, uuid+".req_type")
		if err != nil {
			return 0, fmt.Errorf("queued MDM command %s: %w", uuid, err)
		}
		cmd := &mdm.Command{CommandUUID: uuid, Raw: raw}
		cmd.Command.RequestType = string(reqType)
		errs, err := st.EnqueueCommand(ctx, byUUID[uuid], cmd)
		if err == nil {
			for _, e := range errs {
				err = e
			}
		}
		if err != nil {
			return 0, fmt.Errorf("enqueue MDM command %s: %w", uuid, err)
		}
	}
	return len(order), nil
}

// openPostgresNano opens nanomdm's pgsql storage on db's nanomdm schema.
func openPostgresNano(ctx context.Context, db *store.DB, log *slog.Logger) (*pgsql.PgSQLStorage, func(), error) {
	if db.Pool == nil {
		return nil, nil, errors.New("mdm: postgres store without pgx pool")
	}
	pcfg := db.Pool.Config().Copy()
	pcfg.ConnConfig.RuntimeParams["search_path"] = NanoMDMSchema(db.Schema)
	pcfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("mdm: nanomdm pool: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	st, err := pgsql.New(pgsql.WithDB(sqlDB), pgsql.WithDeleteCommands(), pgsql.WithLogger(nanoLogger{log}))
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("mdm: nanomdm pgsql storage (is migration 00300 applied?): %w", err)
	}
	return st, func() { _ = sqlDB.Close(); pool.Close() }, nil
}

func nanoTables(ctx context.Context, db *store.DB, schema string) ([]string, error) {
	return store.QueryStrings(ctx, db.SQL, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name`, schema)
}

func nanoSchemaEmpty(ctx context.Context, db *store.DB, schema string) error {
	tables, err := nanoTables(ctx, db, schema)
	if err != nil {
		return fmt.Errorf("list nanomdm tables: %w", err)
	}
	if len(tables) == 0 {
		return fmt.Errorf("schema %s has no nanomdm tables (is migration 00300 applied?)", schema)
	}
	var full []string
	for _, t := range tables {
		var any bool
		if err := db.SQL.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+t+`)`).Scan(&any); err != nil {
			return err
		}
		if any {
			full = append(full, t)
		}
	}
	if len(full) > 0 {
		return fmt.Errorf("target database is not empty: %s hold rows", strings.Join(full, ", "))
	}
	return nil
}

// clearNanoSchema empties the nanomdm tables a failed move wrote (they were empty before).
func clearNanoSchema(ctx context.Context, db *store.DB, schema string) error {
	tables, err := nanoTables(ctx, db, schema)
	if err != nil || len(tables) == 0 {
		return err
	}
	_, err = db.SQL.ExecContext(ctx, `TRUNCATE `+strings.Join(tables, ", ")+` CASCADE`)
	return err
}
