// Command mdmbench measures Lanyard's Apple MDM against bare nanomdm on one PostgreSQL:
//
//  1. check-ins per second: simulated Macs each run rounds of "server queues one command,
//     Mac sends Idle, gets the command, answers Acknowledged, gets an empty body", through
//     Lanyard's full chain (certauth → multi → Lanyard listener → nanomdm core, intent
//     table, SecurityInfo posture update) and through bare nanomdm (certauth → core,
//     pgsql storage with WithDeleteCommands) behind the same Mdm-Signature/CA middleware,
//     same simulator, same database, same run;
//  2. latency from the admin API lock call to the simulated Mac's acknowledged answer,
//     with -macs Macs enrolled, woken through a fake APNs gateway (HTTP/2 over TLS).
//
// Macs get identities issued directly by the MDM CA (SCEP is covered by the tests and
// would dominate setup time with 1,000 RSA keys); everything after that is the real
// protocol over loopback HTTP. Bounded in count and time; stops by itself.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/nanomdm/service/certauth"
	"github.com/micromdm/nanomdm/service/nanomdm"
	"github.com/micromdm/nanomdm/storage/pgsql"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/fakeapns"
	"github.com/lanyardhq/lanyard/controlplane/mdm/apple/macsim"
	"github.com/lanyardhq/lanyard/controlplane/secrets"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
)

type config struct {
	dbURL       string
	macs        int
	checkinMacs int
	rounds      int
	locks       int
	concurrency int
	reps        int
	timeout     time.Duration
}

func main() {
	var c config
	def := os.Getenv("LANYARD_TEST_DATABASE_URL")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	flag.StringVar(&c.dbURL, "database-url", def, "PostgreSQL server (a throwaway schema is created and dropped)")
	flag.IntVar(&c.macs, "macs", 1000, "Macs enrolled for the lock-latency run")
	flag.IntVar(&c.checkinMacs, "checkin-macs", 32, "concurrent Macs in the check-in throughput run")
	flag.IntVar(&c.rounds, "rounds", 30, "command round trips per Mac in the throughput run")
	flag.IntVar(&c.locks, "locks", 300, "lock commands sent through the admin API")
	flag.IntVar(&c.concurrency, "concurrency", 16, "concurrent lock calls")
	flag.IntVar(&c.reps, "reps", 5, "alternating repetitions of the throughput run (median reported)")
	flag.DurationVar(&c.timeout, "timeout", 8*time.Minute, "hard limit for the whole run")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if _, err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mdmbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, out io.Writer) (result, error) {
	var res result
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	schema := "mdmbench_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	admin, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		return res, err
	}
	defer admin.Close(context.Background())
	for _, s := range []string{schema, schema + "_bare"} {
		if _, err := admin.Exec(ctx, `CREATE SCHEMA `+s); err != nil {
			return res, err
		}
	}
	defer func() {
		for _, s := range []string{schema, schema + "_bare", apple.NanoMDMSchema(schema)} {
			_, _ = admin.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+s+` CASCADE`)
		}
	}()
	u, _ := url.Parse(c.dbURL)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		return res, err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return res, err
	}

	apns := fakeapns.New()
	defer apns.Close()
	keys, _ := secrets.New(secrets.NewKey())
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	base := "http://" + srv.Listener.Addr().String()
	svc, err := apple.New(ctx, apple.Config{DB: db, Keyring: keys, BaseURL: base, APNsURL: apns.URL(), APNsRootCAs: apns.RootCAs(),
		CAKeyBits: 2048, PushWorkers: 32, Logger: slog.Default()})
	if err != nil {
		return res, err
	}
	defer svc.Close()

	// Bare nanomdm: its own schema in the same database, same CA, same middleware.
	bareCfg := db.Pool.Config().Copy()
	bareCfg.ConnConfig.RuntimeParams["search_path"] = schema + "_bare"
	bareSQL := stdlib.OpenDB(*bareCfg.ConnConfig)
	bareSQL.SetMaxOpenConns(16)
	defer bareSQL.Close()
	if _, err := bareSQL.ExecContext(ctx, pgsql.Schema); err != nil {
		return res, fmt.Errorf("bare nanomdm schema: %w", err)
	}
	bare, err := pgsql.New(pgsql.WithDB(bareSQL), pgsql.WithDeleteCommands())
	if err != nil {
		return res, err
	}
	nlog := apple.NanoLogger(slog.Default())
	bareCore := nanomdm.New(bare, nanomdm.WithLogger(nlog), nanomdm.WithUserAuthenticate(nanomdm.NewUAService(bare, false)))
	bareH, err := apple.BuildMDMHandler(certauth.New(bareCore, bare, certauth.WithLogger(nlog)), svc.Identity().CAPEM(), nlog)
	if err != nil {
		return res, err
	}
	mux.Handle("/bare/mdm", bareH)
	mux.Handle("/", svc.Handler())
	srv.Config.Handler = mux
	srv.Start()
	defer srv.Close()

	org := domain.Org{Name: "Bench", Plan: domain.PlanPro, TimeZone: "UTC"}
	if err := store.CreateOrg(ctx, db.SQL, &org); err != nil {
		return res, err
	}
	topic := "com.apple.mgmt.External." + uuid.NewString()
	certPEM, keyPEM, _ := fakeapns.NewPushCert(topic, time.Now().AddDate(1, 0, 0))
	if _, err := svc.UploadPushCert(ctx, org.ID, "system:bench", certPEM, keyPEM); err != nil {
		return res, err
	}
	pool, err := keyPool(8)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "# Apple MDM benchmark (%s)\n\n", time.Now().UTC().Format(time.DateTime))

	// 1. Check-in throughput, Lanyard vs bare nanomdm, alternating to share conditions.
	lanyardMacs, err := enrollMany(ctx, c.checkinMacs, func(i int) (*macsim.Mac, error) {
		return enrollLanyard(ctx, db, svc, org.ID, base, topic, pool[i%len(pool)], fmt.Sprintf("BENCHL%05d", i), apns, true)
	})
	if err != nil {
		return res, err
	}
	bareMacs, err := enrollMany(ctx, c.checkinMacs, func(i int) (*macsim.Mac, error) {
		return enrollBare(ctx, svc, base, topic, pool[i%len(pool)], fmt.Sprintf("BENCHB%05d", i))
	})
	if err != nil {
		return res, err
	}
	// The enrollment lookup belongs to the admin API path, not to the check-in path.
	enrollments := map[string]store.MDMEnrollment{}
	for _, m := range lanyardMacs {
		e, err := db.MDMGetEnrollment(ctx, m.UDID)
		if err != nil {
			return res, err
		}
		enrollments[m.UDID] = e
	}
	var lRates, bRates []float64
	for rep := 0; rep < c.reps; rep++ {
		br, err := throughput(ctx, bareMacs, c.rounds, func(m *macsim.Mac, wire string) error {
			raw, _ := apple.BuildCommand(wire, apple.CommandSpec{RequestType: apple.ReqSecurityInfo})
			cmd, err := mdm.DecodeCommand(raw)
			if err != nil {
				return err
			}
			_, err = bare.EnqueueCommand(ctx, []string{m.UDID}, cmd)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("bare nanomdm run: %w", err)
		}
		lr, err := throughput(ctx, lanyardMacs, c.rounds, func(m *macsim.Mac, _ string) error {
			_, err := svc.Enqueue(ctx, enrollments[m.UDID], apple.CommandSpec{RequestType: apple.ReqSecurityInfo}, apple.EnqueueOptions{Source: "system", NoPush: true})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("lanyard run: %w", err)
		}
		bRates, lRates = append(bRates, br), append(lRates, lr)
	}
	lb, bb := median(lRates), median(bRates)
	res.LanyardRounds, res.BareRounds = lb, bb
	fmt.Fprintf(out, "## Check-ins per second (Idle + one command round trip)\n\n")
	fmt.Fprintf(out, "%d concurrent Macs × %d rounds, %d alternating repetitions, median; a round is the server queueing one SecurityInfo plus 2 signed HTTP requests (Idle → command, Acknowledged → empty).\n\n", c.checkinMacs, c.rounds, c.reps)
	fmt.Fprintf(out, "| server | rounds/s | check-in requests/s | runs (rounds/s) |\n|---|---|---|---|\n")
	fmt.Fprintf(out, "| bare nanomdm v0.9.0 (certauth + core, pgsql) | %.0f | %.0f | %s |\n", bb, 2*bb, fmtRates(bRates))
	fmt.Fprintf(out, "| Lanyard (full chain, intent table) | %.0f | %.0f | %s |\n\n", lb, 2*lb, fmtRates(lRates))
	fmt.Fprintf(out, "Overhead (bare / Lanyard time per round): **%.2f×** (target ≤ 1.3×)\n\n", bb/lb)

	// 2. Lock latency with -macs enrolled Macs.
	fleet, err := enrollMany(ctx, c.macs-c.checkinMacs, func(i int) (*macsim.Mac, error) {
		return enrollLanyard(ctx, db, svc, org.ID, base, topic, pool[i%len(pool)], fmt.Sprintf("BENCHF%05d", i), apns, true)
	})
	if err != nil {
		return res, err
	}
	fleet = append(fleet, lanyardMacs...)
	for _, m := range fleet {
		m.Wait()
	}
	lat, err := lockLatency(ctx, db, svc, org.ID, fleet, c.locks, c.concurrency)
	if err != nil {
		return res, err
	}
	n, _ := db.MDMCountEnrollments(ctx, org.ID)
	res.LockP99 = pctDur(lat, 99)
	fmt.Fprintf(out, "## Admin API lock → simulated Mac acknowledged\n\n")
	fmt.Fprintf(out, "%d Macs enrolled; %d locks through `POST /api/v1/mdm/devices/{id}/commands` (%d concurrent); each goes API → intent + nanomdm queue → APNs push (fake gateway, HTTP/2 TLS) → Mac Idle → DeviceLock → Acknowledged.\n\n", n, len(lat), c.concurrency)
	fmt.Fprintf(out, "| p50 | p95 | p99 | max |\n|---|---|---|---|\n| %s | %s | %s | %s |\n", pct(lat, 50), pct(lat, 95), pct(lat, 99), pct(lat, 100))
	return res, nil
}

// result is what the Go benchmark reports as metrics.
type result struct {
	LanyardRounds, BareRounds float64
	LockP99                   time.Duration
}

func pctDur(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(max((len(s)*p+99)/100, 1), len(s))
	return s[i-1]
}

func keyPool(n int) ([]*rsa.PrivateKey, error) {
	out := make([]*rsa.PrivateKey, n)
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		out[i] = k
	}
	return out, nil
}

func enrollMany(ctx context.Context, n int, one func(i int) (*macsim.Mac, error)) ([]*macsim.Mac, error) {
	out := make([]*macsim.Mac, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			m, err := one(i)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			out[i] = m
		}(i)
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return out, ctx.Err()
}

func issue(svc *apple.Service, key *rsa.PrivateKey, serial string) (*x509.Certificate, error) {
	return svc.Identity().IssueDeviceCert(&x509.Certificate{Subject: pkix.Name{CommonName: serial}}, &key.PublicKey, 365)
}

// enrollLanyard enrolls a Mac in Lanyard (identity recorded as SCEP would) and, when wait
// is set, lets it work through its enrollment commands.
func enrollLanyard(ctx context.Context, db *store.DB, svc *apple.Service, orgID, base, topic string, key *rsa.PrivateKey, serial string, apns *fakeapns.Server, wait bool) (*macsim.Mac, error) {
	cert, err := issue(svc, key, serial)
	if err != nil {
		return nil, err
	}
	if err := db.MDMPutSCEPCert(ctx, cert.SerialNumber.Text(16), orgID, "", cert.Subject.String(), cert.NotAfter, cert.Raw); err != nil {
		return nil, err
	}
	m := macsim.New(serial)
	m.SetIdentity(cert, key)
	m.SetServer(base+"/mdm/connect", base+"/mdm/checkin", topic)
	apns.Subscribe(m.Token(), m.Wake)
	if err := m.Authenticate(ctx); err != nil {
		return nil, err
	}
	if err := m.TokenUpdate(ctx); err != nil {
		return nil, err
	}
	if wait {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			open, err := db.MDMOpenCommands(ctx, m.UDID)
			if err == nil && len(open) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		m.Wait()
	}
	return m, nil
}

func enrollBare(ctx context.Context, svc *apple.Service, base, topic string, key *rsa.PrivateKey, serial string) (*macsim.Mac, error) {
	cert, err := issue(svc, key, serial)
	if err != nil {
		return nil, err
	}
	m := macsim.New(serial)
	m.SetIdentity(cert, key)
	m.SetServer(base+"/bare/mdm", base+"/bare/mdm", topic)
	if err := m.Authenticate(ctx); err != nil {
		return nil, err
	}
	return m, m.TokenUpdate(ctx)
}

// throughput runs rounds of enqueue + session on every Mac concurrently; it returns
// rounds per second.
func throughput(ctx context.Context, macs []*macsim.Mac, rounds int, enqueue func(*macsim.Mac, string) error) (float64, error) {
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for _, m := range macs {
		wg.Add(1)
		go func(m *macsim.Mac) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := enqueue(m, uuid.NewString()); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if err := m.Session(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}(m)
	}
	wg.Wait()
	el := time.Since(start)
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(len(macs)*rounds) / el.Seconds(), nil
}

func lockLatency(ctx context.Context, db *store.DB, svc *apple.Service, orgID string, fleet []*macsim.Mac, locks, conc int) ([]time.Duration, error) {
	a := api.New(api.Options{Store: db}, svc.Routes())
	srv := httptest.NewServer(a)
	defer srv.Close()
	_, token, err := db.CreateToken(ctx, orgID, "bench", domain.RoleAdmin, nil)
	if err != nil {
		return nil, err
	}
	if locks > len(fleet) {
		locks = len(fleet)
	}
	type waiter struct {
		start time.Time
		done  chan time.Duration
	}
	var mu sync.Mutex
	pending := map[string]*waiter{} // UDID → waiter
	for _, m := range fleet[:locks] {
		m := m
		m.OnAcked(func(r macsim.Received) {
			if r.RequestType != apple.ReqDeviceLock {
				return
			}
			mu.Lock()
			w := pending[m.UDID]
			delete(pending, m.UDID)
			mu.Unlock()
			if w != nil {
				w.done <- time.Since(w.start)
			}
		})
	}
	out := make([]time.Duration, 0, locks)
	var outMu sync.Mutex
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for _, m := range fleet[:locks] {
		wg.Add(1)
		sem <- struct{}{}
		go func(m *macsim.Mac) {
			defer wg.Done()
			defer func() { <-sem }()
			e, err := db.MDMGetEnrollment(ctx, m.UDID)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			w := &waiter{start: time.Now(), done: make(chan time.Duration, 1)}
			mu.Lock()
			pending[m.UDID] = w
			mu.Unlock()
			body, _ := json.Marshal(apple.CommandRequest{RequestType: apple.ReqDeviceLock, Confirm: true})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/mdm/devices/"+e.DeviceID+"/commands", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				firstErr.CompareAndSwap(nil, fmt.Errorf("lock API: %d", resp.StatusCode))
				return
			}
			select {
			case d := <-w.done:
				outMu.Lock()
				out = append(out, d)
				outMu.Unlock()
			case <-time.After(30 * time.Second):
				firstErr.CompareAndSwap(nil, errors.New("a lock was not acknowledged within 30 s"))
			case <-ctx.Done():
				firstErr.CompareAndSwap(nil, ctx.Err())
			}
		}(m)
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return out, err
	}
	return out, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	if i > len(s) {
		i = len(s)
	}
	return s[i-1].Round(100 * time.Microsecond).String()
}
