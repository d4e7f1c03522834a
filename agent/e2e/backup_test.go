package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // counts rows on the Postgres side

	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/controlplane/backup"
	"github.com/lanyardhq/lanyard/controlplane/pgmove"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/internal/e2etest"
)

// Issue 14 item 6, done when: a backup taken during a write load restores into a new
// data dir whose server the agent from before reconnects to with its certificate, and a
// command queued before the backup ends there; row counts match the manifest.
func TestBackupRestoreAgentReconnects(t *testing.T) {
	bin := buildBinaries(t, true)
	e := serveWith(t, bin)
	cfgPath, stateDir, deviceID, _ := e.agentSetup()
	identity := enrolledIdentity(t, e, cfgPath, stateDir)

	lock := e.queuedLock(deviceID, "backup-lock")
	archive := filepath.Join(e.dir, "lanyard-backup.tar.gz")
	var made atomic.Int64
	stop := e.writeLoad(t, 4, &made)
	// The load runs before, during and after the snapshot.
	waitUntil(t, "the write load to get going", 30*time.Second, 50*time.Millisecond, func() bool { return made.Load() >= 8 })
	atStart := made.Load()
	out := runLanyard(t, bin, "admin", "backup", "--data-dir", filepath.Join(e.dir, "server"), "--out", archive)
	atEnd := made.Load()
	stop()
	if !strings.Contains(out, "keyring is NOT in the backup") {
		t.Fatalf("backup output:\n%s", out)
	}
	if atEnd == atStart {
		t.Fatal("no write completed while the backup ran: it was not taken under load")
	}
	e.serve.Stop()
	if st, err := os.Stat(archive); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("archive %v %v", st, err)
	}

	restored := filepath.Join(e.dir, "restored")
	runLanyard(t, bin, "admin", "restore", "--in", archive, "--data-dir", restored, "--keyring", filepath.Join(e.dir, "server", "keyring.json"))
	for name, want := range map[string]os.FileMode{"": 0o700, "lanyard.db": 0o600, "keyring.json": 0o600} {
		if st, err := os.Stat(filepath.Join(restored, name)); err != nil || st.Mode().Perm() != want {
			t.Fatalf("restored %q: %v %v, want mode %v", name, st, err, want)
		}
	}
	m := readManifest(t, archive)
	t.Logf("write load: %d rows, %d of them while the backup ran; the backup holds %d devices, %d commands, %d audit rows", made.Load(), atEnd-atStart, m.Tables["devices"], m.Tables["device_commands"], m.Tables["audit_log"])
	if got := sqliteCounts(t, filepath.Join(restored, "lanyard.db")); !maps.Equal(got, m.Tables) {
		t.Fatalf("restored rows %v, manifest %v", got, m.Tables)
	}
	if m.Tables["devices"] < 2 || m.Tables["device_commands"] < 1 || m.Tables["pki_authority"] != 1 {
		t.Fatalf("the backup lacks the fleet: %v", m.Tables)
	}

	// The audit log came back whole: the chain verifies on the restored copy.
	if out := runLanyard(t, bin, "--data-dir", restored, "admin", "audit", "verify"); !strings.Contains(out, "audit chain ok") {
		t.Fatalf("audit verify after restore:\n%s", out)
	}

	// The restored installation is served (no --demo: nothing reseeds it) with the
	// token from before, and the agent reconnects with the certificate it holds.
	e.serve = e2etest.StartServe(t, filepath.Join(bin, "lanyard"), restored)
	e.serve.MustListen(t, "agents", e.serve.GRPCAddr, 600)
	e.reconnectAndFinish(t, cfgPath, stateDir, identity, lock)
}

// Growing out of the embedded default: a demo SQLite installation with an enrolled agent
// moves to Postgres; the server then serves it from Postgres and the same agent
// reconnects without enrolling again; every table has the rows it had on SQLite.
func TestMoveToPostgresAgentReconnects(t *testing.T) {
	url := storetest.PostgresURL(t)
	bin := buildBinaries(t, true)
	e := serveWith(t, bin)
	cfgPath, stateDir, deviceID, _ := e.agentSetup()
	identity := enrolledIdentity(t, e, cfgPath, stateDir)
	lock := e.queuedLock(deviceID, "move-lock")
	e.serve.Stop()

	data := filepath.Join(e.dir, "server")
	before := sqliteCounts(t, filepath.Join(data, "lanyard.db"))
	out := runLanyard(t, bin, "admin", "move-to-postgres", "--data-dir", data, "--database-url", url)
	if !strings.Contains(out, "agents") || !strings.Contains(out, "moved ") {
		t.Fatalf("move output:\n%s", out)
	}
	after := postgresCounts(t, url)
	for table, n := range before {
		if _, skipped := pgmove.SkipPostgres[table]; skipped {
			continue
		}
		if _, skipped := pgmove.SkipSQLite[table]; skipped {
			continue
		}
		if after[table] != n {
			t.Errorf("%s: %d rows on SQLite, %d on Postgres", table, n, after[table])
		}
	}
	if before["agents"] < 1 || before["audit_log"] < 1 || before["pki_certs"] < 1 {
		t.Fatalf("the demo installation is missing its fleet: %v", before)
	}
	if t.Failed() {
		t.FailNow()
	}
	// A second move into the now full database is refused.
	if out, err := runLanyardErr(bin, "admin", "move-to-postgres", "--data-dir", data, "--database-url", url); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("second move: %v\n%s", err, out)
	}

	// The audit chain survives the move: rows hashed on SQLite verify on Postgres.
	if out := runLanyard(t, bin, "--data-dir", data, "--database-url", url, "admin", "audit", "verify"); !strings.Contains(out, "audit chain ok") {
		t.Fatalf("audit verify after the move:\n%s", out)
	}

	// Two replicas serve the moved installation: A on the old data dir, B on an empty one
	// sharing only the database and the keyring.
	keyring := []string{"--database-url", url, "--key-file", filepath.Join(data, "keyring.json")}
	e.serve = e2etest.StartServe(t, filepath.Join(bin, "lanyard"), data, keyring...)
	replicaB := e2etest.StartServe(t, filepath.Join(bin, "lanyard"), filepath.Join(e.dir, "replica-b"), keyring...)
	e.serve.MustListen(t, "agents", e.serve.GRPCAddr, 600)
	replicaB.MustListen(t, "agents on B", replicaB.GRPCAddr, 600)
	e.reconnectAndFinish(t, cfgPath, stateDir, identity, lock, replicaB)

	// SIGKILL the replica holding the stream: the same agent, with the same certificate,
	// carries on with B, and a lock queued through B reaches it.
	on, _ := statusField(e.agentStatus(cfgPath), "grpc_address").(string)
	victim := e.serve
	if on == replicaB.GRPCAddr {
		victim, replicaB = replicaB, e.serve
	}
	killed := time.Now()
	if err := victim.Proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.Proc.Done()
	e.serve = replicaB
	e.serve.WaitFor(t, "the agent to move to the surviving replica", 60*time.Second, func() bool {
		st := e.agentStatus(cfgPath)
		return statusField(st, "connected") == true && statusField(st, "grpc_address") == replicaB.GRPCAddr
	})
	t.Logf("after the SIGKILL of %s the agent was back on %s in %s", victim.GRPCAddr, replicaB.GRPCAddr, time.Since(killed).Round(time.Millisecond))
	var cmd command
	e.mustAPI("POST", "/api/v1/devices/"+deviceID+"/actions", map[string]any{"type": "lock",
		"params": map[string]string{"message": "after the failover"}, "idempotency_key": "move-lock-2"}, &cmd)
	second := cmd.ID
	e.serve.WaitFor(t, "the lock queued through the surviving replica to end", 30*time.Second, func() bool {
		e.mustAPI("GET", "/api/v1/device-actions/"+second, nil, &cmd)
		return terminal(cmd.State)
	})
	if cmd.State != "simulated" {
		t.Fatalf("the lock on the surviving replica ended %s (%s)", cmd.State, cmd.Error)
	}
	if now, err := os.ReadFile(filepath.Join(stateDir, "identity.pem")); err != nil || !bytes.Equal(now, identity) {
		t.Fatalf("the agent enrolled again after the failover: %v", err)
	}
}

// enrolledIdentity runs the agent until it enrolled and connected, stops it and returns
// its identity file.
func enrolledIdentity(t *testing.T, e *env, cfgPath, stateDir string) []byte {
	t.Helper()
	agent := e.startAgent(cfgPath)
	e.serve.WaitFor(t, "the agent to enroll and connect", 60*time.Second, func() bool {
		return statusField(e.agentStatus(cfgPath), "connected") == true
	})
	agent.Stop()
	if statusField(e.agentStatus(cfgPath), "connected") == true {
		t.Fatal("a stopped agent's status still says connected: the reconnect check would prove nothing")
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "identity.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// queuedLock queues a lock for the device while its agent is away.
func (e *env) queuedLock(deviceID, key string) string {
	var cmd command
	e.mustAPI("POST", "/api/v1/devices/"+deviceID+"/actions", map[string]any{"type": "lock",
		"params": map[string]string{"message": "queued before the move"}, "idempotency_key": key}, &cmd)
	if terminal(cmd.State) {
		e.t.Fatalf("the lock ended without an agent: %+v", cmd)
	}
	return cmd.ID
}

// writeLoad creates devices (each assigned to nobody) and enrollment secrets from n
// goroutines until the returned stop is called; made counts the rows written.
func (e *env) writeLoad(t *testing.T, n int, made *atomic.Int64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.client()
			for i := 0; ctx.Err() == nil; i++ {
				var dev device
				code, err := c.do("POST", "/api/v1/devices", map[string]any{"serial_number": fmt.Sprintf("LOAD-%d-%d", g, i), "vendor": "Dell",
					"model": "Latitude", "platform": "windows", "equipment_type": "laptop"}, &dev)
				if err != nil || code >= 300 {
					if ctx.Err() == nil {
						t.Errorf("load: create device: %d %v", code, err)
					}
					return
				}
				made.Add(1)
				if i%4 == 0 {
					if code, err := c.do("POST", "/api/v1/enrollment-secrets", map[string]any{"name": fmt.Sprintf("load-%d-%d", g, i)}, nil); err == nil && code < 300 {
						made.Add(1)
					}
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// reconnectAndFinish points the agent at the new server (its addresses changed; its
// state directory did not), starts it without an enrollment secret and waits until it
// connected with the same identity and the queued lock ended.
// Further replicas join the agent's address list, as a reinstall with their addresses would.
func (e *env) reconnectAndFinish(t *testing.T, cfgPath, stateDir string, identity []byte, lockID string, more ...*e2etest.Serve) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EnrollmentSecret != "" {
		t.Fatal("the agent still holds an enrollment secret: a reconnect would not prove its certificate works")
	}
	cfg.ControlPlaneURL, cfg.GRPCAddress, cfg.EnrollmentAddress = e.serve.HTTPURL, e.serve.GRPCAddr, e.serve.EnrollAddr
	cfg.GRPCAddresses, cfg.EnrollmentAddresses = nil, nil
	if len(more) > 0 {
		cfg.GRPCAddresses, cfg.EnrollmentAddresses = []string{e.serve.GRPCAddr}, []string{e.serve.EnrollAddr}
		for _, r := range more {
			cfg.GRPCAddresses = append(cfg.GRPCAddresses, r.GRPCAddr)
			cfg.EnrollmentAddresses = append(cfg.EnrollmentAddresses, r.EnrollAddr)
		}
		cfg.GRPCAddress, cfg.EnrollmentAddress = "", ""
	}
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	e.startAgent(cfgPath)
	e.serve.WaitFor(t, "the agent to reconnect with its certificate", 60*time.Second, func() bool {
		return statusField(e.agentStatus(cfgPath), "connected") == true
	})
	var cmd command
	e.serve.WaitFor(t, "the lock queued before to end", 30*time.Second, func() bool {
		e.mustAPI("GET", "/api/v1/device-actions/"+lockID, nil, &cmd)
		return terminal(cmd.State)
	})
	if cmd.State != "simulated" {
		t.Fatalf("the queued lock ended %s (%s)", cmd.State, cmd.Error)
	}
	now, err := os.ReadFile(filepath.Join(stateDir, "identity.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// The agent renews at 2/3 of a day's lifetime, so within the test its identity is
	// the one it enrolled with: it did not enroll again.
	if !bytes.Equal(now, identity) {
		t.Fatal("the agent's identity changed: it enrolled again instead of reconnecting")
	}
}

func runLanyard(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := runLanyardErr(bin, args...)
	if err != nil {
		t.Fatalf("lanyard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runLanyardErr(bin string, args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(bin, "lanyard"), args...).CombinedOutput()
	return string(out), err
}

func readManifest(t *testing.T, archive string) backup.Manifest {
	t.Helper()
	m, err := backup.ReadManifest(archive)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sqliteCounts(t *testing.T, path string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := backup.CountRows(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func postgresCounts(t *testing.T, url string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string]int64{}
	for _, tb := range tables {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+tb+`"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}
