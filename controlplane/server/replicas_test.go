package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/client"
	agentconfig "github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/agent/inventory"
	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/enrollment"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
	"github.com/lanyardhq/lanyard/installers"
	"github.com/lanyardhq/lanyard/internal/e2etest"
)

// replicaSet is real `lanyard serve` processes over one Postgres schema, each with its own
// empty data dir and the one key file they share (the keyring is the only thing replicas
// must share besides the database).
type replicaSet struct {
	t       *testing.T
	bin     string
	dir     string
	dbURL   string
	keyFile string
	db      *store.DB
	token   string
	orgID   string
	n       int
}

func newReplicaSet(t *testing.T) *replicaSet {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs lanyard serve processes")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	rs := &replicaSet{t: t, dir: t.TempDir(), dbURL: storetest.PostgresURL(t)}
	rs.keyFile = filepath.Join(rs.dir, "keyring.json")
	ctx := domain.WithActor(context.Background(), domain.Actor{ID: "test"})
	db, err := OpenDB(ctx, config.Config{DatabaseURL: rs.dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	rs.db = db
	org := domain.Org{Name: "Replicas", Plan: domain.PlanPro}
	if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
		t.Fatal(err)
	}
	rs.orgID = org.ID
	if _, rs.token, err = db.CreateToken(ctx, org.ID, "replicas", domain.RoleOwner, nil); err != nil {
		t.Fatal(err)
	}
	rs.bin = filepath.Join(rs.dir, "bin")
	e2etest.GoBuild(t, filepath.Join(rs.bin, "lanyard"), "./cmd/lanyard")
	// The package formats do not care what they pack: a stand-in agent beside lanyard.
	agent := filepath.Join(rs.bin, installers.BinaryName("linux", "amd64"))
	if err := os.WriteFile(agent, []byte("#!/bin/sh\necho lanyard-agent stand-in\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return rs
}

// start runs one more replica on free loopback ports with an empty data dir.
func (rs *replicaSet) start(extra ...string) *e2etest.Serve {
	rs.t.Helper()
	rs.n++
	data := filepath.Join(rs.dir, fmt.Sprintf("data-%d", rs.n))
	s := e2etest.StartServe(rs.t, filepath.Join(rs.bin, "lanyard"), data,
		append([]string{"--database-url", rs.dbURL, "--key-file", rs.keyFile}, extra...)...)
	s.MustListen(rs.t, "the admin API", strings.TrimPrefix(s.HTTPURL, "http://"), 600)
	s.MustListen(rs.t, "agents", s.GRPCAddr, 300)
	return s
}

func (rs *replicaSet) do(method, url string, body, out any) (int, []byte) {
	rs.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Authorization", "Bearer "+rs.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rs.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			rs.t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return resp.StatusCode, b
}

// poll checks cond every 20 ms until it holds or d has passed.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// TestReplicasKeepNothingOnDisk: an installer link minted on replica A downloads (same
// bytes, same sha256) from replica B, each with its own empty data dir, and no package
// file is left in either data dir.
func TestReplicasKeepNothingOnDisk(t *testing.T) {
	rs := newReplicaSet(t)
	a, b := rs.start(), rs.start()
	var link struct {
		URL    string `json:"url"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size_bytes"`
	}
	if st, body := rs.do("POST", a.HTTPURL+"/api/v1/installers/links", map[string]any{"platform": "linux-deb"}, &link); st != http.StatusCreated {
		t.Fatalf("mint link on A: %d %s", st, body)
	}
	if !strings.HasPrefix(link.URL, a.HTTPURL) {
		t.Fatalf("link %s is not A's", link.URL)
	}
	onB := b.HTTPURL + strings.TrimPrefix(link.URL, a.HTTPURL)
	resp, err := http.Get(onB) // no token: the link is the credential
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(got)
	if resp.StatusCode != http.StatusOK || hex.EncodeToString(sum[:]) != link.SHA256 || int64(len(got)) != link.Size {
		t.Fatalf("download from B: %d, %d bytes, sha256 %x (want %s, %d bytes)", resp.StatusCode, len(got), sum, link.SHA256, link.Size)
	}
	var files []string
	for _, d := range []string{"data-1", "data-2"} {
		_ = filepath.WalkDir(filepath.Join(rs.dir, d, "installers"), func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				files = append(files, p)
			}
			return nil
		})
	}
	if len(files) != 0 {
		t.Errorf("package files left in a data dir: %v", files)
	}
}

// TestAgentFailoverOnReplicaKill: an agent given both replicas' addresses keeps its
// stream through a SIGKILL of the replica it is connected to, and a command queued after
// the kill is delivered once. It logs the reconnect time.
func TestAgentFailoverOnReplicaKill(t *testing.T) {
	rs := newReplicaSet(t)
	a, b := rs.start(), rs.start()
	ctx := domain.WithActor(context.Background(), domain.Actor{ID: "test"})
	secret, _, err := enrollment.Mint(ctx, rs.db, rs.orgID, enrollment.Options{Name: "replicas"})
	if err != nil {
		t.Fatal(err)
	}
	// An *os.File takes writes from the agent's goroutines; read back on failure.
	logs, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() }) // after the agent stops (cleanups run last-first)
	agentLog := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	agent, err := client.New(client.Options{
		Config: agentconfig.Config{GRPCAddresses: []string{a.GRPCAddr, b.GRPCAddr},
			EnrollmentAddresses: []string{a.EnrollAddr, b.EnrollAddr}, EnrollmentSecret: secret},
		StateDir:  t.TempDir(),
		Collector: &inventory.Collector{AgentVersion: "test", SerialOverride: "REPLICA-TEST-1"},
		Planner:   actions.NewPlanner(actions.PlannerOptions{StateDir: t.TempDir()}),
		Runner:    &actions.DryRunner{},
		Version:   "test",
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// The stream's own backoff, as shipped (1 s base), is what the figure measures.
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = agent.Run(actx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("--- agent log ---\n%s", agentLog())
		}
	})
	connected := func() (string, bool) {
		st := agent.Status()
		return st.GRPCAddress, st.Connected && st.DeviceID != ""
	}
	if !poll(60*time.Second, func() bool { _, ok := connected(); return ok }) {
		t.Fatalf("agent never connected: %+v", agent.Status())
	}
	first, _ := connected()
	victim, survivor := a, b
	if first == b.GRPCAddr {
		victim, survivor = b, a
	} else if first != a.GRPCAddr {
		t.Fatalf("agent connected to %q, neither replica", first)
	}
	deviceID := agent.Status().DeviceID
	handled := agent.Status().CommandsHandled

	killed := time.Now()
	if err := victim.Cmd.Process.Kill(); err != nil { // SIGKILL: no goodbye, no resignation
		t.Fatal(err)
	}
	<-victim.Done()
	var moved time.Duration
	if !poll(60*time.Second, func() bool {
		addr, ok := connected()
		if ok && addr == survivor.GRPCAddr {
			moved = time.Since(killed)
			return true
		}
		return false
	}) {
		t.Fatalf("agent did not reconnect to the surviving replica: %+v", agent.Status())
	}
	t.Logf("agent reconnected to the surviving replica %s after %s", survivor.GRPCAddr, moved.Round(time.Millisecond))

	var cmd store.DeviceCommand
	if st, body := rs.do("POST", survivor.HTTPURL+"/api/v1/devices/"+deviceID+"/actions", map[string]any{"type": "collect_inventory"}, &cmd); st != http.StatusCreated {
		t.Fatalf("queue a command on the survivor: %d %s", st, body)
	}
	terminal := map[string]bool{store.CommandDone: true, store.CommandFailed: true, "simulated": true}
	if !poll(60*time.Second, func() bool {
		rs.do("GET", survivor.HTTPURL+"/api/v1/device-actions/"+cmd.ID, nil, &cmd)
		return terminal[cmd.State]
	}) {
		t.Fatalf("command stuck in %s", cmd.State)
	}
	if n := agent.Status().CommandsHandled - handled; n != 1 {
		t.Errorf("the agent handled the command %d times, want once", n)
	}
	if n := strings.Count(agentLog(), "command already seen"); n != 0 {
		t.Errorf("the command was redelivered %d times", n)
	}
}

var gainedLeadership = regexp.MustCompile(`Gained leadership"[^\n]*? client_id=(\S+)`)

// TestLeaderFailover measures how long River's leader (which schedules the periodic HR
// reconcile) takes to move after the leader replica is killed (SIGKILL: it cannot resign)
// or stopped (SIGTERM: it resigns), and checks the new leader runs the overdue reconcile
// at once instead of skipping an interval.
func TestLeaderFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  os.Signal
	}{{"SIGKILL", os.Kill}, {"SIGTERM", syscall.SIGTERM}} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicaSet(t)
			// Long enough that a new leader waiting an interval (skipping a run) is told apart from
			// one that runs the overdue reconcile as soon as it leads.
			const interval = 30 * time.Second
			flags := []string{"--hr-reconcile-interval", interval.String()}
			a, b := rs.start(flags...), rs.start(flags...)
			leaderOf := func() (*e2etest.Serve, string) {
				var id string
				_ = rs.db.SQL.QueryRow(`SELECT leader_id FROM river_leader`).Scan(&id)
				for _, s := range []*e2etest.Serve{a, b} {
					for _, m := range gainedLeadership.FindAllStringSubmatch(s.Output(), -1) {
						if id != "" && m[1] == id {
							return s, id
						}
					}
				}
				return nil, id
			}
			var leader *e2etest.Serve
			var leaderID string
			if !poll(60*time.Second, func() bool { leader, leaderID = leaderOf(); return leader != nil }) {
				t.Fatalf("no leader elected (river_leader %q)", leaderID)
			}
			follower := b
			if leader == b {
				follower = a
			}
			reconciles := func() []time.Time {
				rows, err := rs.db.SQL.Query(`SELECT created_at FROM river_job WHERE kind = 'hr.reconcile_all' ORDER BY created_at`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var out []time.Time
				for rows.Next() {
					var at time.Time
					if err := rows.Scan(&at); err != nil {
						t.Fatal(err)
					}
					out = append(out, at)
				}
				return out
			}
			// Wait for the leader's first run (RunOnStart).
			if !poll(30*time.Second, func() bool { return len(reconciles()) >= 1 }) {
				t.Fatalf("leader scheduled %d reconciles", len(reconciles()))
			}
			before := len(reconciles())
			killed := time.Now()
			if err := leader.Cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			<-leader.Done()
			var newID string
			if !poll(60*time.Second, func() bool {
				_ = rs.db.SQL.QueryRow(`SELECT leader_id FROM river_leader`).Scan(&newID)
				return newID != "" && newID != leaderID
			}) {
				t.Fatal("leadership never moved")
			}
			failover := time.Since(killed)
			if !poll(30*time.Second, func() bool { return len(reconciles()) > before }) {
				t.Fatal("the new leader scheduled no reconcile")
			}
			runs := reconciles()
			var lastOld time.Time
			for _, at := range runs {
				if at.Before(killed) {
					lastOld = at
				}
			}
			firstNew := runs[before]
			gap := firstNew.Sub(lastOld)
			t.Logf("leader moved to %s %s after %s; reconcile gap %s (interval %s, first run of the new leader %s after the signal)",
				follower.GRPCAddr, failover.Round(time.Millisecond), tc.name, gap.Round(time.Millisecond), interval, firstNew.Sub(killed).Round(time.Millisecond))
			// The new leader's first run comes as soon as it leads (River staggers its maintenance
			// services by up to a second), not an interval later.
			if late := firstNew.Sub(killed) - failover; late > interval/3 {
				t.Errorf("the new leader waited %s after gaining leadership before reconciling", late)
			}
		})
	}
}
