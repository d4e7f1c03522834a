package service_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/auditchain"
	"github.com/lanyardhq/lanyard/controlplane/auditchain/service"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/jobs"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

func keyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	kr, err := secrets.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func writeRows(t *testing.T, db *store.DB, org string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		e := domain.AuditEntry{OrgID: org, Actor: "token:t", Action: "device.updated", TargetType: "device", TargetID: fmt.Sprint(i)}
		if err := store.WriteAudit(context.Background(), db.SQL, e); err != nil {
			t.Fatal(err)
		}
	}
}

// Replicas starting together on one database end up with one signing key.
func TestOpenConvergesOnOneKey(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		kr := keyring(t)
		ids := make([]string, 4)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := service.Open(context.Background(), service.Config{Store: db, Sealer: kr})
				if err == nil {
					ids[i] = s.PublicKeys()[0].ID
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("replica %d: key %q err %v, want key %q", i, ids[i], errs[i], ids[0])
			}
		}
		keys, err := db.ListAuditSigningKeys(context.Background())
		if err != nil || len(keys) != 1 {
			t.Fatalf("stored keys %d %v", len(keys), err)
		}
	})
}

// A key row someone put in the database without the keyring is not trusted, so
// checkpoints they sign with it fail verification; a read-only open creates nothing.
func TestKeysTrustedOnlyIfTheKeyringOpensThem(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		kr := keyring(t)
		ro, err := service.Open(ctx, service.Config{Store: db, Sealer: kr, ReadOnly: true})
		if err != nil || len(ro.PublicKeys()) != 0 {
			t.Fatalf("read-only open of a fresh install: %v keys, %v", len(ro.PublicKeys()), err)
		}
		s, err := service.Open(ctx, service.Config{Store: db, Sealer: kr})
		if err != nil {
			t.Fatal(err)
		}
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		if err := db.InsertAuditSigningKey(ctx, store.AuditSigningKey{ID: auditchain.KeyID(pub), Generation: 2,
			PublicKey: base64.StdEncoding.EncodeToString(pub), Sealed: "v1:kforged:AAAA", CreatedAt: domain.Now()}); err != nil {
			t.Fatal(err)
		}
		s2, err := service.Open(ctx, service.Config{Store: db, Sealer: kr})
		if err != nil {
			t.Fatal(err)
		}
		if len(s2.Keys()) != 1 || s2.PublicKeys()[0].ID != s.PublicKeys()[0].ID {
			t.Fatalf("trusted keys %v, want only %s", s2.Keys(), s.PublicKeys()[0].ID)
		}
		// Another keyring opens nothing: the key this server signs with is not its own.
		other, err := service.Open(ctx, service.Config{Store: db, Sealer: keyring(t), ReadOnly: true})
		if err != nil || len(other.Keys()) != 0 {
			t.Fatalf("foreign keyring trusts %d keys (%v)", len(other.Keys()), err)
		}

		o := storetest.Org(t, db, domain.PlanPro)
		writeRows(t, db, o.ID, 3)
		head, _, _ := db.AuditChainHead(ctx, o.ID)
		forged := auditchain.Sign(auditchain.Checkpoint{ID: domain.NewID(), OrgID: o.ID, Seq: head.Seq, Hash: head.Hash, At: domain.Now()}, priv)
		if err := db.InsertAuditCheckpoint(ctx, forged); err != nil {
			t.Fatal(err)
		}
		rep, err := s2.Verify(ctx, o.ID)
		if err != nil || rep.OK || rep.Problem.Kind != auditchain.BadSignature || rep.Problem.CheckpointID != forged.ID {
			t.Fatalf("forged checkpoint: %s %v", rep, err)
		}
	})
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Checkpoints come every EveryRows rows or once Every has passed with rows since the last,
// and never over a chain that does not verify.
func TestCheckpointDue(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := &clock{t: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
		s, err := service.Open(ctx, service.Config{Store: db, Sealer: keyring(t), EveryRows: 3, Every: time.Hour, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		o := storetest.Org(t, db, domain.PlanPro)
		latest := func() int64 {
			c, ok, err := db.LatestAuditCheckpoint(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return 0
			}
			return c.Seq
		}
		head := func() int64 { h, _, _ := db.AuditChainHead(ctx, o.ID); return h.Seq }
		steps := []struct {
			name    string
			rows    int
			advance time.Duration
			want    func() int64
		}{
			{"first rows: the first checkpoint", 1, 0, head},
			{"2 rows, 1 minute: not due", 2, time.Minute, nil},
			{"3rd row: due by count", 1, 0, head},
			{"1 row, 2 hours: due by age", 1, 2 * time.Hour, head},
			{"nothing new: nothing signed", 0, 2 * time.Hour, nil},
		}
		for _, st := range steps {
			before := latest()
			writeRows(t, db, o.ID, st.rows)
			clk.add(st.advance)
			if _, err := s.CheckpointDue(ctx, false); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			want := before
			if st.want != nil {
				want = st.want()
			}
			if got := latest(); got != want {
				t.Fatalf("%s: latest checkpoint at seq %d, want %d", st.name, got, want)
			}
		}
		// A row edited after the last checkpoint: the job refuses to sign over it.
		writeRows(t, db, o.ID, 3)
		if _, err := db.SQL.ExecContext(ctx, dropUpdateGuard(db)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL.ExecContext(ctx, `UPDATE audit_log SET action = 'device.nothing' WHERE org_id = $1 AND seq = $2`, o.ID, head()); err != nil {
			t.Fatal(err)
		}
		before := latest()
		if _, err := s.CheckpointDue(ctx, true); !errors.Is(err, service.ErrBroken) {
			t.Fatalf("checkpoint over an edited row: %v", err)
		}
		if latest() != before {
			t.Fatal("a checkpoint was signed over an edited row")
		}
	})
}

func dropUpdateGuard(db *store.DB) string {
	if db.Dialect == store.Postgres {
		return `DROP TRIGGER audit_log_no_change ON audit_log`
	}
	return `DROP TRIGGER audit_log_no_update`
}

// The River job, registered as the server does, signs the first checkpoint at start.
func TestCheckpointJobRuns(t *testing.T) {
	storetest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		s, err := service.Open(ctx, service.Config{Store: db, Sealer: keyring(t)})
		if err != nil {
			t.Fatal(err)
		}
		o := storetest.Org(t, db, domain.PlanPro)
		writeRows(t, db, o.ID, 2)
		reg := jobs.NewRegistry()
		s.RegisterJobs(reg)
		c, err := jobs.NewClient(db, reg, jobs.Options{PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Stop(context.Background()) }()
		// Poll the condition until a deadline (the job client has no completion hook).
		deadline := time.After(30 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			cp, ok, err := db.LatestAuditCheckpoint(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if rep, err := s.Verify(ctx, o.ID); err != nil || !rep.OK || rep.Checkpoints != 1 || cp.Seq != rep.LastSeq {
					t.Fatalf("after the job: %s %v", rep, err)
				}
				return
			}
			select {
			case <-deadline:
				t.Fatal("no checkpoint within 30s of the job client starting")
			case <-tick.C:
			}
		}
	})
}
