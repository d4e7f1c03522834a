// Command console measures what an admin waits for in the console at 10,000 devices and
// 5,000 people: device list (first page, a deep page, sorted by last seen), device search,
// a posture filter with its total, people search and the dashboard, plus the console's own
// pages (home, devices, device search, people search) with a real signed-in session. It seeds the fleet (seed.Fleet: posture reports, assignments),
// starts the real server in-process (server.New, Run) on 127.0.0.1, and sends each request
// over HTTP with a viewer token. The figure is SERVER time: from the request reaching the
// server's handler to the response written, timed by a middleware around server.Handler,
// so client and network time are left out.
//
//	go run ./bench/console -store sqlite|postgres|both -devices 10000 -people 5000 [-write]
//
// With -write it replaces the "Console and lists" section of docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/bench/internal/benchutil"
	"github.com/lanyardhq/lanyard/controlplane/auth"
	"github.com/lanyardhq/lanyard/controlplane/config"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/server"
	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/controlplane/store/postgres"
	"github.com/lanyardhq/lanyard/controlplane/store/seed"
	"github.com/pquerna/otp/totp"
)

// Config is one benchmark run.
type Config struct {
	Store           string // sqlite, postgres or both
	PGURL           string
	Devices, People int
	// N is the number of timed requests per case (after a short warm-up).
	N int
	// CPUProfile, when set, profiles the timed requests of each store (for `go tool pprof`).
	CPUProfile string
}

// Case is one measured request kind.
type Case struct {
	Name string
	// Path is the request target; Paths (if set) rotate per request.
	Path    string
	Paths   []string
	Console bool
}

// Result is one case's server times on one store.
type Result struct {
	Store, Case        string
	N                  int
	P50, P95, P99, Max time.Duration
	Load               string
	// LoadBefore is /proc/loadavg before the store's run (before seeding).
	LoadBefore           string
	SeedTime             time.Duration
	Devices, People, Org int
}

func main() {
	var cfg Config
	var write bool
	flag.StringVar(&cfg.Store, "store", "both", "sqlite, postgres or both")
	flag.StringVar(&cfg.PGURL, "pg", os.Getenv("LANYARD_TEST_DATABASE_URL"), "PostgreSQL URL (for -store postgres or both)")
	flag.IntVar(&cfg.Devices, "devices", 10000, "devices to seed")
	flag.IntVar(&cfg.People, "people", 5000, "people to seed")
	flag.IntVar(&cfg.N, "n", 200, "timed requests per case")
	flag.BoolVar(&write, "write", false, "replace the Console and lists section of docs/benchmarks.md")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the timed requests (not the seeding) to this file, one per store (name.sqlite, name.postgres)")
	flag.Parse()
	res, err := RunAll(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/console:", err)
		os.Exit(1)
	}
	md := Markdown(cfg, res)
	fmt.Print(md)
	if write {
		if err := writeDocs(md); err != nil {
			fmt.Fprintln(os.Stderr, "bench/console:", err)
			os.Exit(1)
		}
	}
}

func writeDocs(md string) error {
	return benchutil.WriteSection(filepath.Join(repoRoot(), "docs", "benchmarks.md"), "## Console and lists", md)
}

func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// RunAll runs every case on the stores cfg names.
func RunAll(ctx context.Context, cfg Config) ([]Result, error) {
	var out []Result
	if cfg.Store == "sqlite" || cfg.Store == "both" {
		r, err := runStore(ctx, cfg, "SQLite", "")
		if err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		out = append(out, r...)
	}
	if cfg.Store == "postgres" || (cfg.Store == "both" && cfg.PGURL != "") {
		if cfg.PGURL == "" {
			return nil, errors.New("postgres: set -pg or LANYARD_TEST_DATABASE_URL")
		}
		schema := "bench_console_" + strings.ReplaceAll(domain.NewID()[24:], "-", "")
		admin, err := postgres.Open(ctx, cfg.PGURL)
		if err != nil {
			return nil, err
		}
		_, err = admin.SQL.ExecContext(ctx, "CREATE SCHEMA "+schema)
		defer func() {
			_, _ = admin.SQL.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			_, _ = admin.SQL.ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+schema+"_nanomdm CASCADE")
			admin.Close()
		}()
		if err != nil {
			return nil, err
		}
		sep := "?"
		if strings.Contains(cfg.PGURL, "?") {
			sep = "&"
		}
		r, err := runStore(ctx, cfg, "PostgreSQL", cfg.PGURL+sep+"search_path="+schema)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		out = append(out, r...)
	}
	return out, nil
}

// timer records server time per case, named by the X-Bench-Case request header.
type timer struct {
	next http.Handler
	mu   sync.Mutex
	d    map[string][]time.Duration
}

func (t *timer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t.next.ServeHTTP(w, r)
	el := time.Since(start)
	if c := r.Header.Get("X-Bench-Case"); c != "" {
		t.mu.Lock()
		t.d[c] = append(t.d[c], el)
		t.mu.Unlock()
	}
}

func (t *timer) take(c string) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.d[c]
	delete(t.d, c)
	return d
}

func runStore(ctx context.Context, cfg Config, name, dbURL string) ([]Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loadBefore := loadavg()
	dir, err := os.MkdirTemp("", "lanyard-bench-console-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sc, err := config.Load(nil)
	if err != nil {
		return nil, err
	}
	sc.DataDir, sc.KeyFile, sc.DatabaseURL = dir, filepath.Join(dir, "keyring.json"), dbURL
	sc.HTTPAddr, sc.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.New(ctx, sc, quiet)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	org, err := seed.Fleet(ctx, s.DB, cfg.Devices, cfg.People)
	if err != nil {
		s.DB.Close()
		return nil, err
	}
	// Statistics as autovacuum (Postgres) or the HR import's ANALYZE would leave them.
	if _, err := s.DB.SQL.ExecContext(ctx, "ANALYZE"); err != nil {
		s.DB.Close()
		return nil, err
	}
	seedTime := time.Since(start)
	_, token, err := s.DB.CreateToken(ctx, org.ID, "bench viewer", domain.RoleViewer, nil)
	if err != nil {
		s.DB.Close()
		return nil, err
	}
	sessionID, err := signIn(ctx, s.Auth, org.ID)
	if err != nil {
		s.DB.Close()
		return nil, err
	}
	t := &timer{next: s.Handler, d: map[string][]time.Duration{}}
	s.Handler = t
	addr, err := s.Listen()
	if err != nil {
		s.DB.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + addr.String()
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c, path string, consolePage bool) (int, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if consolePage {
			req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: sessionID})
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if c != "" {
			req.Header.Set("X-Bench-Case", c)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, _, err := get("", "/healthz", false); err == nil && st == 200 {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("server did not answer /healthz")
		}
		time.Sleep(20 * time.Millisecond)
	}
	deep, err := deepCursor(ctx, s, org.ID)
	if err != nil {
		return nil, err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile + "." + strings.ToLower(name))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	var out []Result
	for _, c := range cases(deep) {
		r := Result{Store: name, Case: c.Name, Load: loadavg(), LoadBefore: loadBefore, SeedTime: seedTime, Devices: cfg.Devices, People: cfg.People}
		paths := c.Paths
		if paths == nil {
			paths = []string{c.Path}
		}
		st, body, err := get("", paths[0], c.Console)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		if st != http.StatusOK {
			return nil, fmt.Errorf("%s: GET %s: %d %.300s", c.Name, paths[0], st, body)
		}
		for i := 0; i < 5; i++ { // warm-up
			_, _, _ = get("", paths[i%len(paths)], c.Console)
		}
		for i := 0; i < cfg.N; i++ {
			if st, body, err := get(c.Name, paths[i%len(paths)], c.Console); err != nil || st != http.StatusOK {
				return nil, fmt.Errorf("%s: %d %v %.200s", c.Name, st, err, body)
			}
		}
		d := t.take(c.Name)
		slices.Sort(d)
		r.N = len(d)
		r.P50, r.P95, r.P99, r.Max = pct(d, 0.50), pct(d, 0.95), pct(d, 0.99), d[len(d)-1]
		out = append(out, r)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return out, nil
}

func pct(d []time.Duration, q float64) time.Duration {
	i := int(float64(len(d))*q+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// deepCursor walks the serial-sorted list to about row 8,000 and returns the cursor there.
func deepCursor(ctx context.Context, s *server.Server, orgID string) (string, error) {
	cursor := ""
	for range 40 {
		pg, err := s.DB.SearchDevices(ctx, orgID, store.DeviceQuery{Sort: "serial", Page: store.Page{Limit: 200, Cursor: cursor}})
		if err != nil {
			return "", err
		}
		if pg.NextCursor == "" {
			break
		}
		cursor = pg.NextCursor
	}
	return cursor, nil
}

func cases(deep string) []Case {
	q := func(v url.Values) string { return v.Encode() }
	searches := []string{"lamarr", "hopper", "pf4", "c0212", "thinkpad", "dl7-0"}
	var devSearch, peopleSearch, conSearch, conPeople []string
	for _, s := range searches {
		devSearch = append(devSearch, "/api/v1/devices?"+q(url.Values{"q": {s}, "limit": {"50"}}))
		conSearch = append(conSearch, "/devices?"+q(url.Values{"q": {s}}))
	}
	for _, s := range []string{"grace", "lovelace", "kowalski", "ada.turing", "singh", "@bench"} {
		peopleSearch = append(peopleSearch, "/api/v1/employees?"+q(url.Values{"q": {s}, "sort": {"name"}, "limit": {"50"}}))
		conPeople = append(conPeople, "/people?"+q(url.Values{"q": {s}}))
	}
	return []Case{
		{Name: "device list, first page (50)", Path: "/api/v1/devices?limit=50"},
		{Name: "device list, by serial, deep page (row ~8,000)", Path: "/api/v1/devices?" + q(url.Values{"sort": {"serial"}, "limit": {"50"}, "cursor": {deep}})},
		{Name: "device list, by last seen (desc)", Path: "/api/v1/devices?sort=last_seen&order=desc&limit=50"},
		{Name: "device list, by assignee", Path: "/api/v1/devices?sort=assignee&limit=50"},
		{Name: "device search (q=…, 6 terms)", Paths: devSearch},
		{Name: "device filter + total (disk_encrypted=false&total=true)", Path: "/api/v1/devices?disk_encrypted=false&total=true&limit=50"},
		{Name: "devices offline > 7 days + total", Path: "/api/v1/devices?offline_days=7&total=true&sort=last_seen&limit=50"},
		{Name: "people search (q=…, 6 terms)", Paths: peopleSearch},
		{Name: "dashboard", Path: "/api/v1/dashboard"},
		{Name: "console: home", Path: "/", Console: true},
		{Name: "console: devices", Path: "/devices", Console: true},
		{Name: "console: device search", Paths: conSearch, Console: true},
		{Name: "console: people search", Paths: conPeople, Console: true},
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// Markdown is the "Console and lists" section.
func Markdown(cfg Config, res []Result) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Console and lists\n\nMeasured %s on %s (%d cores, %s, %s/%s) with `go run ./bench/console -store %s -devices %d -people %d -n %d -write`.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), benchutil.CPUModel(), runtime.GOOS, runtime.GOARCH, cfg.Store, cfg.Devices, cfg.People, cfg.N)
	b.WriteString(`The fleet is seed.Fleet: an org with the people (90 % active) and the laptops (six models across macOS, Windows
and Linux; 70 % assigned and in use), 90 % of them with an agent that reported inventory and posture through the
agent API's store calls (3 % last seen more than a week ago, 1 % flagged for review by a dry-run agent), then
ANALYZE. The real server runs in-process (server.New and Run, every capability and background loop) on 127.0.0.1;
requests are sequential over HTTP keep-alive with a viewer token; console pages carry the session cookie of an
admin signed in through the auth service (sign-in link, password, TOTP), so they pay the real session check.
A console page's time includes the API calls it makes in-process (home calls the dashboard). The
figures are SERVER time: from the request reaching the server's handler to the response written, timed by a
middleware around server.Handler, so client and network time are left out. "load" is /proc/loadavg just before
each case; this machine is shared with other work, and a load above the core count inflates every figure.
Target: p95 < 100 ms.

`)
	stores := []string{}
	for _, r := range res {
		if !slices.Contains(stores, r.Store) {
			stores = append(stores, r.Store)
		}
	}
	p95 := map[string]map[string]time.Duration{}
	var names []string
	for _, r := range res {
		if p95[r.Case] == nil {
			p95[r.Case] = map[string]time.Duration{}
			names = append(names, r.Case)
		}
		p95[r.Case][r.Store] = r.P95
	}
	b.WriteString("p95 server time per query (the tables below have p50, p99, max and the load before each case):\n\n| query |")
	for _, st := range stores {
		b.WriteString(" " + st + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(stores)) + "\n")
	for _, n := range names {
		b.WriteString("| " + n + " |")
		for _, st := range stores {
			if d, ok := p95[n][st]; ok {
				b.WriteString(" " + ms(d) + " |")
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	for _, st := range stores {
		for _, r := range res {
			if r.Store == st {
				fmt.Fprintf(&b, "%s: load average before the run (/proc/loadavg) %s; seeded %d devices and %d people in %.0f s.\n\n",
					st, r.LoadBefore, r.Devices, r.People, r.SeedTime.Seconds())
				break
			}
		}
		b.WriteString("| " + st + " | n | p50 | p95 | p99 | max | load before |\n|---|---|---|---|---|---|---|\n")
		for _, r := range res {
			if r.Store != st {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", r.Case, r.N, ms(r.P50), ms(r.P95), ms(r.P99), ms(r.Max), r.Load)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// signIn signs a real admin in through the auth service, the way a person does: the
// sign-in link an invitation mails, a password, then TOTP setup (admins must have it). The
// session it returns is what the console's cookie holds, so console pages are measured
// with the real session check and the real principal.
func signIn(ctx context.Context, a *auth.Service, orgID string) (string, error) {
	u, err := a.EnsureUser(ctx, orgID, "admin@bench.example.com", "Bench Admin", domain.RoleAdmin)
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	link, err := a.NewSignInLink(ctx, orgID, u.ID, time.Hour)
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	m := auth.ClientMeta{IP: "127.0.0.1", UserAgent: "bench/console"}
	step, err := a.SignInLink(ctx, path.Base(link), m)
	if err == nil && step.Need == auth.NeedSetPassword {
		step, err = a.SetPassword(ctx, step.Challenge, "bench-"+domain.NewID(), m)
	}
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	if step.Need != auth.NeedTOTPSetup {
		return "", fmt.Errorf("sign in: expected TOTP setup, got %q", step.Need)
	}
	code, err := totp.GenerateCode(step.TOTPSecret, time.Now())
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	sess, _, err := a.VerifyTOTP(ctx, step.Challenge, code, m)
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	return sess.ID, nil
}
