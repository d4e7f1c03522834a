// Command agentsim is the load simulator for Lanyard's agent gRPC API. It runs as its own
// process against one `lanyard serve` and measures, in order:
//
//  1. enrollment of N agents (secret → one-time token → certificate),
//  2. one full inventory report per agent (links or creates N devices),
//  3. N concurrent Connect streams held open: server memory per stream (from /proc of the
//     server pid),
//  4. sustained inventory reports per second with the streams open,
//  5. lock command latency: admin API POST /devices/{id}/actions → the agent receives the
//     command on its stream and sends its acknowledgement (p50/p99).
//
// Every loop is bounded in count and time and talks only to the addresses given (use
// 127.0.0.1). See docs/benchmarks.md "Agent gRPC" for how it is run.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/lanyardhq/lanyard/agent/client"
	"github.com/lanyardhq/lanyard/internal/procstat"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

type options struct {
	enrollAddr, agentAddr, secret, caSHA, apiURL, token, out, serial string
	profileURL, profileOut, selfProfile                              string
	stormSignal, stormRestart, stormAPI                              string
	stormCommands                                                    int
	stormWait                                                        float64
	n, serverPID, enrollConc, dialConc, invWorkers, locks            int
	invSeconds, lockRate, settle, idleSeconds                        float64
	heartbeat                                                        time.Duration
}

type agent struct {
	idx      int
	id       string
	deviceID string
	cc       *grpc.ClientConn
	cl       agentv1.AgentServiceClient
	stream   agentv1.AgentService_ConnectClient
	sendMu   sync.Mutex
}

// Result is what the run prints as JSON.
type Result struct {
	Agents              int     `json:"agents"`
	EnrollSeconds       float64 `json:"enroll_seconds"`
	EnrollPerSecond     float64 `json:"enroll_per_second"`
	FirstReportsPerSec  float64 `json:"first_reports_per_second"`
	StreamsOpen         int     `json:"streams_open"`
	StreamsOpenSeconds  float64 `json:"streams_open_seconds"`
	ServerRSSEnrolledMB float64 `json:"server_rss_after_enrollment_mb"`
	ServerRSSBeforeMB   float64 `json:"server_rss_connections_no_streams_mb"`
	ServerRSSAfterMB    float64 `json:"server_rss_with_streams_mb"`
	PerAgentKB          float64 `json:"server_memory_per_agent_kb"`
	PerStreamKB         float64 `json:"server_memory_per_stream_only_kb"`
	// RSS right after the inventory phase: the heap has grown towards its collection
	// goal (twice the live heap at Go's default GOGC), which a reading taken while the
	// streams are new has not.
	ServerRSSAfterLoadMB float64 `json:"server_rss_after_inventory_mb"`
	PerAgentAfterLoadKB  float64 `json:"server_memory_per_agent_after_inventory_kb"`
	InventoryReports     int64   `json:"inventory_reports"`
	InventoryErrors      int64   `json:"inventory_errors"`
	InventoryPerSecond   float64 `json:"inventory_reports_per_second"`
	InventoryP50ms       float64 `json:"inventory_p50_ms"`
	InventoryP99ms       float64 `json:"inventory_p99_ms"`
	Locks                int     `json:"locks"`
	LocksAcked           int     `json:"locks_acked"`
	LockP50ms            float64 `json:"lock_to_ack_p50_ms"`
	LockP99ms            float64 `json:"lock_to_ack_p99_ms"`
	LockMaxms            float64 `json:"lock_to_ack_max_ms"`
	LockAPIP50ms         float64 `json:"lock_api_p50_ms"`
	SimulatorRSSMB       float64 `json:"simulator_rss_mb"`
	// CPU during the inventory phase, in cores (1.0 = one core busy): who spent the machine.
	InventoryCPUServer    float64 `json:"inventory_cpu_server_cores"`
	InventoryCPUSimulator float64 `json:"inventory_cpu_simulator_cores"`
	InventoryCPUPostgres  float64 `json:"inventory_cpu_postgres_cores"`
	InventoryCPUMachine   float64 `json:"inventory_cpu_machine_cores"`
	StreamErrorsAtClose   int64   `json:"stream_errors"`
	// Goroutines of the server (from its pprof endpoint): per connection without a stream,
	// and per stream on top; load-independent, unlike the timings.
	ServerGoroutinesPerConn   float64 `json:"server_goroutines_per_connection"`
	ServerGoroutinesPerStream float64 `json:"server_goroutines_per_stream"`
	// Idle phase: streams open, heartbeats only, server CPU over the window in cores.
	IdleSeconds        float64      `json:"idle_seconds"`
	IdleHeartbeatsPerS float64      `json:"idle_heartbeats_per_second,omitempty"`
	IdleCPUServer      float64      `json:"idle_cpu_server_cores"`
	Storm              *StormResult `json:"storm,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.enrollAddr, "enroll", "127.0.0.1:8444", "enrollment listener")
	flag.StringVar(&o.agentAddr, "agent", "127.0.0.1:8443", "agent (mTLS) listener")
	flag.StringVar(&o.secret, "secret", "", "enrollment secret")
	flag.StringVar(&o.caSHA, "ca-sha256", "", "root fingerprint to pin")
	flag.StringVar(&o.apiURL, "api", "http://127.0.0.1:8080", "admin API")
	flag.StringVar(&o.token, "token", "", "admin API token (for the lock phase)")
	flag.StringVar(&o.out, "out", "", "write the result JSON here too")
	flag.StringVar(&o.serial, "serial-prefix", "SIM", "serial number prefix")
	flag.IntVar(&o.n, "n", 1000, "agents")
	flag.IntVar(&o.serverPID, "server-pid", 0, "pid of lanyard serve (for RSS and CPU)")
	flag.StringVar(&o.profileURL, "cpu-profile-url", "", "server pprof base (debug-addr) to take a CPU profile of the inventory phase from")
	flag.StringVar(&o.profileOut, "cpu-profile-out", "", "where to write that profile")
	flag.StringVar(&o.selfProfile, "self-cpu-profile", "", "write the simulator's own CPU profile of the inventory phase here")
	flag.IntVar(&o.enrollConc, "enroll-concurrency", 32, "parallel enrollments and first reports")
	flag.IntVar(&o.dialConc, "dial-concurrency", 64, "parallel stream opens (caps the handshake storm)")
	flag.IntVar(&o.invWorkers, "inventory-workers", 64, "concurrent inventory reporters")
	flag.Float64Var(&o.invSeconds, "inventory-seconds", 20, "length of the inventory phase")
	flag.IntVar(&o.locks, "locks", 200, "lock commands in the latency phase")
	flag.Float64Var(&o.lockRate, "lock-rate", 20, "lock commands per second")
	flag.Float64Var(&o.settle, "settle-seconds", 5, "wait after opening streams before measuring memory")
	flag.DurationVar(&o.heartbeat, "heartbeat", 30*time.Second, "heartbeat interval")
	flag.Float64Var(&o.idleSeconds, "idle-seconds", 0, "idle phase (heartbeats only) before the inventory phase: server CPU over this window; 0 skips it")
	flag.StringVar(&o.stormSignal, "storm", "", "after the lock phase: KILL or TERM the server pid with every stream open and measure the reconnect storm")
	flag.StringVar(&o.stormRestart, "storm-restart", "", "shell command run right after the signal (restarts the replica; empty when a second replica takes over)")
	flag.StringVar(&o.stormAPI, "storm-api", "", "admin API to queue the storm's commands on (default -api; retried while it restarts)")
	flag.IntVar(&o.stormCommands, "storm-commands", 200, "commands queued during the outage")
	flag.Float64Var(&o.stormWait, "storm-wait-seconds", 90, "how long to wait for every stream and command")
	flag.Parse()
	if o.stormAPI == "" {
		o.stormAPI = o.apiURL
	}
	if o.secret == "" {
		log.Fatal("-secret is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := run(ctx, o)
	if err != nil {
		log.Fatal(err)
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(b))
	if o.out != "" {
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func pinnedTLS(pin string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "localhost", InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, der := range raw {
				sum := sha256.Sum256(der)
				if pin == "" || hex.EncodeToString(sum[:]) == strings.ToLower(pin) {
					return nil
				}
			}
			return errors.New("agentsim: root fingerprint mismatch")
		}}
}

func parallel(ctx context.Context, n, conc int, fn func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

func inventory(o options, i int, uptime uint64) *agentv1.Inventory {
	serial := fmt.Sprintf("%s-%05d", o.serial, i)
	return &agentv1.Inventory{
		Hostname: "sim-" + strconv.Itoa(i), AgentVersion: "agentsim",
		Os:       &agentv1.OperatingSystem{Platform: "linux", Name: "Debian GNU/Linux", Version: "12.11", KernelVersion: "6.1.0-37-amd64", Arch: "amd64", Family: "debian"},
		Hardware: &agentv1.Hardware{SerialNumber: serial, HardwareUuid: "uuid-" + serial, Vendor: "Dell Inc.", Model: "Latitude 7440"},
		Cpu:      &agentv1.Cpu{Model: "13th Gen Intel(R) Core(TM) i7-1365U", PhysicalCores: 10, LogicalCores: 12}, MemoryBytes: 32 << 30,
		Disks: []*agentv1.Disk{{Device: "/dev/mapper/root", Mountpoint: "/", Fstype: "ext4", TotalBytes: 512 << 30, FreeBytes: 200 << 30,
			Encrypted: agentv1.PostureState_POSTURE_STATE_ON}},
		NetworkInterfaces: []*agentv1.NetworkInterface{{Name: "wlp0s20f3", MacAddress: fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
			IpAddresses: []string{"192.0.2.10/24", "fe80::1/64"}, Up: true}},
		Users:         []*agentv1.User{{Username: "user" + strconv.Itoa(i), Uid: "1000", FullName: "Sim User", Home: "/home/u", Admin: true, LoggedIn: true}},
		UptimeSeconds: uptime,
		Posture: &agentv1.Posture{DiskEncryption: agentv1.PostureState_POSTURE_STATE_ON, Firewall: agentv1.PostureState_POSTURE_STATE_ON,
			ScreenLock: agentv1.PostureState_POSTURE_STATE_UNKNOWN, AutoUpdates: agentv1.PostureState_POSTURE_STATE_ON, OsVersion: "12.11"},
	}
}

func rssMB(pid int) float64 {
	if pid == 0 {
		pid = os.Getpid()
	}
	kb, _ := procstat.RSSKB(pid)
	return float64(kb) / 1024
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(float64(len(d)-1) * p)
	return float64(d[i].Microseconds()) / 1000
}

func run(ctx context.Context, o options) (*Result, error) {
	res := &Result{Agents: o.n}
	agents := make([]*agent, o.n)

	// 1. Enrollment.
	encc, err := grpc.NewClient(o.enrollAddr, grpc.WithTransportCredentials(credentials.NewTLS(pinnedTLS(o.caSHA))))
	if err != nil {
		return nil, err
	}
	defer encc.Close()
	ec := agentv1.NewEnrollmentServiceClient(encc)
	start := time.Now()
	err = parallel(ctx, o.n, o.enrollConc, func(i int) error {
		serial := fmt.Sprintf("%s-%05d", o.serial, i)
		ex, err := ec.ExchangeSecret(ctx, &agentv1.ExchangeSecretRequest{EnrollmentSecret: o.secret, Hostname: "sim-" + strconv.Itoa(i),
			SerialNumber: serial, HardwareUuid: "uuid-" + serial, Platform: "linux", AgentVersion: "agentsim"})
		if err != nil {
			return fmt.Errorf("exchange %d: %w", i, err)
		}
		key, csr, err := identity.NewKeyAndCSR("sim")
		if err != nil {
			return err
		}
		en, err := ec.Enroll(ctx, &agentv1.EnrollRequest{Token: ex.GetToken(), CsrDer: csr})
		if err != nil {
			return fmt.Errorf("enroll %d: %w", i, err)
		}
		roots := x509.NewCertPool()
		for _, der := range en.GetCertificate().GetRootsDer() {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return err
			}
			roots.AddCert(c)
		}
		// A session cache like the agent's, so reconnects resume TLS sessions.
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "localhost", RootCAs: roots,
			Certificates:       []tls.Certificate{{Certificate: en.GetCertificate().GetChainDer(), PrivateKey: key}},
			ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		cc, err := dialAgents(o.agentAddr, cfg)
		if err != nil {
			return err
		}
		agents[i] = &agent{idx: i, id: en.GetAgentId(), cc: cc, cl: agentv1.NewAgentServiceClient(cc)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.EnrollSeconds = time.Since(start).Seconds()
	res.EnrollPerSecond = float64(o.n) / res.EnrollSeconds
	log.Printf("enrolled %d agents in %.1fs", o.n, res.EnrollSeconds)

	// 2. First full report: links or creates the device. Each agent opens its own TLS
	// connection here (the stream later rides on it).
	res.ServerRSSEnrolledMB = rssMB(o.serverPID)
	gEnrolled := goroutines(ctx, o.profileURL)
	start = time.Now()
	err = parallel(ctx, o.n, o.enrollConc, func(i int) error {
		a := agents[i]
		r, err := a.cl.ReportInventory(ctx, &agentv1.ReportInventoryRequest{Full: true, Inventory: inventory(o, i, 100), InventoryHash: "h0"})
		if err != nil {
			return fmt.Errorf("first report %d: %w", i, err)
		}
		a.deviceID = r.GetDeviceId()
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.FirstReportsPerSec = float64(o.n) / time.Since(start).Seconds()
	log.Printf("first reports: %.0f/s", res.FirstReportsPerSec)

	// 3. Streams.
	runtime.GC()
	time.Sleep(2 * time.Second)
	res.ServerRSSBeforeMB = rssMB(o.serverPID)
	g0 := goroutines(ctx, o.profileURL)
	acks := newAckBook()
	var streamErrs, heartbeats atomic.Int64
	sctx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	start = time.Now()
	var st *storm
	if o.stormSignal != "" {
		st = newStorm()
	}
	err = parallel(ctx, o.n, o.dialConc, func(i int) error {
		a := agents[i]
		if err := a.open(sctx); err != nil {
			return fmt.Errorf("connect %d: %w", i, err)
		}
		go a.loop(sctx, acks, &streamErrs, &heartbeats, o.heartbeat, st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.StreamsOpen = o.n
	res.StreamsOpenSeconds = time.Since(start).Seconds()
	log.Printf("%d streams open in %.1fs", o.n, res.StreamsOpenSeconds)
	time.Sleep(time.Duration(o.settle * float64(time.Second)))
	res.ServerRSSAfterMB = rssMB(o.serverPID)
	if o.serverPID != 0 {
		res.PerAgentKB = (res.ServerRSSAfterMB - res.ServerRSSEnrolledMB) * 1024 / float64(o.n)
		res.PerStreamKB = (res.ServerRSSAfterMB - res.ServerRSSBeforeMB) * 1024 / float64(o.n)
	}
	log.Printf("server RSS: %.0f MB enrolled, %.0f MB with %d connections, %.0f MB with streams (%.1f KB per agent)",
		res.ServerRSSEnrolledMB, res.ServerRSSBeforeMB, o.n, res.ServerRSSAfterMB, res.PerAgentKB)
	if g1 := goroutines(ctx, o.profileURL); g0 > 0 && g1 > 0 {
		res.ServerGoroutinesPerConn = float64(g0-gEnrolled) / float64(o.n)
		res.ServerGoroutinesPerStream = float64(g1-g0) / float64(o.n)
		log.Printf("server goroutines: %d with connections, %d with streams (%.2f per stream)", g0, g1, res.ServerGoroutinesPerStream)
	}

	// 3b. Idle: heartbeats only. The window should span a few heartbeat intervals.
	if o.idleSeconds > 0 {
		hb0, cpu0 := heartbeats.Load(), readCPU(o.serverPID)
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(o.idleSeconds * float64(time.Second))):
		}
		el, cpu1 := time.Since(t0).Seconds(), readCPU(o.serverPID)
		res.IdleSeconds = el
		res.IdleHeartbeatsPerS = float64(heartbeats.Load()-hb0) / el
		res.IdleCPUServer = (cpu1.server - cpu0.server) / el
		log.Printf("idle: %.0f heartbeats/s, server %.1f%% of a core over %.0f s", res.IdleHeartbeatsPerS, 100*res.IdleCPUServer, el)
	}

	// 4. Inventory throughput with the streams open: deltas (uptime changed).
	var ok, bad atomic.Int64
	var latMu sync.Mutex
	var lats []time.Duration
	invEnd := time.Now().Add(time.Duration(o.invSeconds * float64(time.Second)))
	ictx, icancel := context.WithDeadline(ctx, invEnd)
	defer icancel()
	var wg sync.WaitGroup
	if o.profileURL != "" && o.profileOut != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fetchProfile(ctx, o.profileURL, int(o.invSeconds)-1, o.profileOut); err != nil {
				log.Printf("cpu profile: %v", err)
			}
		}()
	}
	if o.selfProfile != "" {
		f, err := os.Create(o.selfProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	cpu0 := readCPU(o.serverPID)
	start = time.Now()
	for w := 0; w < o.invWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var local []time.Duration
			for k := 0; ictx.Err() == nil && time.Now().Before(invEnd); k++ {
				i := (w + k*o.invWorkers) % o.n
				t0 := time.Now()
				_, err := agents[i].cl.ReportInventory(ictx, &agentv1.ReportInventoryRequest{ChangedSections: []string{"uptime_seconds"},
					Inventory: &agentv1.Inventory{UptimeSeconds: uint64(1000 + k)}, InventoryHash: "h" + strconv.Itoa(k)})
				if err != nil {
					if ictx.Err() == nil && time.Now().Before(invEnd) {
						if bad.Add(1) <= 3 {
							log.Printf("inventory report failed: %v", err)
						}
					}
					continue
				}
				ok.Add(1)
				local = append(local, time.Since(t0))
			}
			latMu.Lock()
			lats = append(lats, local...)
			latMu.Unlock()
		}(w)
	}
	wg.Wait()
	icancel()
	el := time.Since(start).Seconds()
	cpu1 := readCPU(o.serverPID)
	if o.selfProfile != "" {
		pprof.StopCPUProfile()
	}
	if o.serverPID != 0 {
		res.ServerRSSAfterLoadMB = rssMB(o.serverPID)
		res.PerAgentAfterLoadKB = (res.ServerRSSAfterLoadMB - res.ServerRSSEnrolledMB) * 1024 / float64(o.n)
		log.Printf("server RSS after the inventory phase: %.0f MB (%.1f KB per agent)", res.ServerRSSAfterLoadMB, res.PerAgentAfterLoadKB)
	}
	res.InventoryCPUServer = (cpu1.server - cpu0.server) / el
	res.InventoryCPUSimulator = (cpu1.self - cpu0.self) / el
	res.InventoryCPUPostgres = (cpu1.postgres - cpu0.postgres) / el
	res.InventoryCPUMachine = (cpu1.machine - cpu0.machine) / el
	log.Printf("inventory phase CPU (cores): server %.2f, simulator %.2f, postgres %.2f, whole machine %.2f",
		res.InventoryCPUServer, res.InventoryCPUSimulator, res.InventoryCPUPostgres, res.InventoryCPUMachine)
	res.InventoryReports, res.InventoryErrors = ok.Load(), bad.Load()
	res.InventoryPerSecond = float64(ok.Load()) / el
	res.InventoryP50ms, res.InventoryP99ms = pct(lats, 0.5), pct(lats, 0.99)
	log.Printf("inventory: %.0f reports/s (p50 %.1f ms, p99 %.1f ms, %d errors)", res.InventoryPerSecond, res.InventoryP50ms, res.InventoryP99ms, bad.Load())

	// 5. Lock API call → agent ack.
	if o.token != "" && o.locks > 0 {
		var apiLats []time.Duration
		interval := time.Duration(float64(time.Second) / o.lockRate)
		hc := &http.Client{Timeout: 30 * time.Second}
		var lwg sync.WaitGroup
		var apiMu sync.Mutex
		for k := 0; k < o.locks && ctx.Err() == nil; k++ {
			a := agents[rand.IntN(o.n)]
			if a.deviceID == "" {
				continue
			}
			lwg.Add(1)
			go func(a *agent, k int) {
				defer lwg.Done()
				key := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), k)
				t0 := time.Now()
				acks.expect(key, t0)
				if _, err := queueLock(ctx, hc, o.apiURL, o.token, a.deviceID, key); err != nil {
					log.Printf("lock %d: %v", k, err)
					return
				}
				apiMu.Lock()
				apiLats = append(apiLats, time.Since(t0))
				apiMu.Unlock()
			}(a, k)
			time.Sleep(interval)
		}
		lwg.Wait()
		deadline := time.Now().Add(15 * time.Second)
		for acks.pending() > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		d := acks.latencies()
		res.Locks, res.LocksAcked = o.locks, len(d)
		res.LockP50ms, res.LockP99ms, res.LockMaxms = pct(d, 0.5), pct(d, 0.99), pct(d, 1)
		res.LockAPIP50ms = pct(apiLats, 0.5)
		log.Printf("lock → ack: %d/%d acked, p50 %.1f ms, p99 %.1f ms, max %.1f ms", len(d), o.locks, res.LockP50ms, res.LockP99ms, res.LockMaxms)
	}
	if st != nil {
		if res.Storm, err = runStorm(ctx, o, agents, st); err != nil {
			return nil, err
		}
	}
	res.SimulatorRSSMB = rssMB(0)
	stopStreams()
	for _, a := range agents {
		_ = a.cc.Close()
	}
	res.StreamErrorsAtClose = streamErrs.Load()
	return res, nil
}

// loop reads commands, acknowledges them at once and sends heartbeats. In a storm (st
// set) a broken stream is reopened with backoff; otherwise the loop ends with it.
func (a *agent) loop(ctx context.Context, acks *ackBook, errs, beats *atomic.Int64, hb time.Duration, st *storm) {
	go func() {
		t := time.NewTicker(hb + time.Duration(rand.Int64N(int64(hb/10)+1)))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.sendMu.Lock()
				if a.stream.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{InventoryHash: ""}}}) == nil {
					beats.Add(1)
				}
				a.sendMu.Unlock()
			}
		}
	}()
	for {
		a.sendMu.Lock()
		stream := a.stream
		a.sendMu.Unlock()
		m, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The first few are logged: a stream that breaks outside a storm is a finding.
			if n := errs.Add(1); n <= 3 && st == nil {
				log.Printf("stream of agent %d ended: %v", a.idx, err)
			}
			if st == nil || !a.reconnect(ctx, st) {
				return
			}
			continue
		}
		c := m.GetCommand()
		if c == nil {
			continue
		}
		if st != nil {
			st.received(c.GetId())
		}
		a.sendMu.Lock()
		err = stream.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_CommandResult{CommandResult: &agentv1.CommandResult{
			CommandId: c.GetId(), State: agentv1.CommandState_COMMAND_STATE_ACKNOWLEDGED}}})
		a.sendMu.Unlock()
		if err == nil {
			acks.acked(c.GetIdempotencyKey(), time.Now())
			if st != nil {
				st.ackSent(c.GetId())
			}
		}
	}
}

// dialAgents opens an agent's channel over one or more comma-separated addresses, in
// order (pick_first): every agent starts on the first replica and fails over to the next,
// like an agent with grpc_addresses.
func dialAgents(addrs string, cfg *tls.Config) (*grpc.ClientConn, error) {
	list := strings.Split(addrs, ",")
	if len(list) == 1 {
		return grpc.NewClient(list[0], append(client.TransportOptions(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))...)
	}
	var state resolver.State
	for _, a := range list {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: strings.TrimSpace(a)})
	}
	r := manual.NewBuilderWithScheme("agentsim")
	r.InitialState(state)
	return grpc.NewClient(r.Scheme()+":///agents", append(client.TransportOptions(), grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{}}]}`),
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)))...)
}

type ackBook struct {
	mu    sync.Mutex
	start map[string]time.Time
	lat   []time.Duration
}

func newAckBook() *ackBook { return &ackBook{start: map[string]time.Time{}} }

func (b *ackBook) expect(key string, t time.Time) {
	b.mu.Lock()
	b.start[key] = t
	b.mu.Unlock()
}

func (b *ackBook) acked(key string, t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.start[key]; ok {
		b.lat = append(b.lat, t.Sub(s))
		delete(b.start, key)
	}
}

func (b *ackBook) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.start)
}

func (b *ackBook) latencies() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.lat...)
}

type cpuTimes struct{ server, self, postgres, machine float64 }

// readCPU reads busy CPU seconds of the server, this process, Postgres and the whole
// machine (Linux only; zeros elsewhere).
func readCPU(serverPID int) cpuTimes {
	t := cpuTimes{self: procCPU(os.Getpid()), postgres: procstat.CommandCPU("postgres").Seconds()}
	if serverPID != 0 {
		t.server = procCPU(serverPID)
	}
	if busy, err := procstat.MachineBusy(); err == nil {
		t.machine = busy.Seconds()
	}
	return t
}

func procCPU(pid int) float64 {
	p, _ := procstat.Stat(pid)
	return p.CPU.Seconds()
}

func fetchProfile(ctx context.Context, base string, seconds int, out string) error {
	if seconds < 1 {
		seconds = 1
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// goroutines reads the server's goroutine count from its pprof endpoint (0 when there is
// none): a load-independent cost per connection and per stream.
func goroutines(ctx context.Context, base string) int {
	if base == "" {
		return 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	// "goroutine profile: total 1234"
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total ")))
	return n
}
