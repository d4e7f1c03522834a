// Package client is the agent's connection to the control plane: enrollment
// (enrollment secret → one-time token → certificate for a key generated on
// the device), certificate renewal at 2/3 of its life, inventory reports
// (full at start, then only changed sections, compared by hash every
// minute), the Connect stream (heartbeats and command results up, commands
// down) with jittered exponential reconnect backoff, and an on-disk queue
// of command results so nothing is lost while offline or across restarts.
//
// A command goes RECEIVED (stored on disk), RUNNING, then DONE, FAILED or
// SIMULATED; the terminal result of a lock, unlock or wipe carries the
// device's evidence signed with the device key. A Done result whose plan
// ends in an irreversible step is committed (confirmed by the server, or
// given up on after CommitTimeout) before that step runs. A DONE lock holds
// the device (held-lock.json) and is re-asserted at every start until a DONE
// unlock. Recovery keys the planner can read are escrowed with the server.
//
// Generated protobuf types stop in this package.
package client

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/agent/inventory"
	"github.com/lanyardhq/lanyard/pki/identity"
	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// Options configure an Agent.
type Options struct {
	// Config is the loaded agent.json; ConfigPath its location (the secret is
	// removed from it after enrolling unless keep_secret). ConfigPath may be
	// empty when the config did not come from a file.
	Config     config.Config
	ConfigPath string
	// StateDir overrides Config.StateDirectory().
	StateDir  string
	Collector *inventory.Collector
	Planner   actions.Planner
	Runner    actions.Runner
	// ReassertRunner runs the held lock again at start (default Runner).
	// The CLI always passes the real runner: a device held locked is locked
	// for real, whatever test knobs a test build has.
	ReassertRunner actions.Runner
	// Mode is the test knobs in effect (only test builds have any). The
	// agent announces it in every Hello and inventory report and in its
	// evidence; a *actions.DryRunner runner or a Collector serial override
	// count even when Mode does not say so.
	Mode    actions.Mode
	Version string
	Logger  *slog.Logger

	// Intervals; zero means the default.
	InventoryInterval time.Duration // 1 min
	HeartbeatInterval time.Duration // 30 s, until the server's Welcome says otherwise
	BackoffBase       time.Duration // 1 s
	BackoffMax        time.Duration // 5 min
	// CommitTimeout bounds how long a Done result waits for the server's
	// confirmation before the plan's final step (power-off) runs anyway.
	CommitTimeout time.Duration // 2 min
}

// Agent runs the control-plane connection.
type Agent struct {
	o      Options
	log    *slog.Logger
	store  Store
	queue  *Queue
	status *statusFile
	holder certHolder
	mode   actions.Mode

	mu      sync.Mutex
	roots   *x509.CertPool
	ident   Identity
	api     agentv1.AgentServiceClient
	inv     *inventory.Inventory
	invHash string
	// reported is the hash of the inventory the server last accepted; Hello
	// and heartbeats carry it so the server asks for a full report only
	// when it really lacks one.
	reported string
	lastSent map[string]string // section hashes the server has
	resends  map[string]int    // result id → connections that carried it
	stream   *activeStream
	// held is the lock command holding the device ("" when not held).
	held string
	// waiters: result id → a Commit waiting for its confirmation.
	waiters map[string]waiter

	// escrowMu serializes escrow rounds (start and inventory ticks).
	escrowMu sync.Mutex

	invTrigger chan struct{}
	work       chan *agentv1.Command
	kick       chan struct{}
}

// New validates options and prepares the state directory.
func New(o Options) (*Agent, error) {
	if o.Collector == nil || o.Planner == nil || o.Runner == nil {
		return nil, errors.New("client: Collector, Planner and Runner are required")
	}
	if o.StateDir == "" {
		o.StateDir = o.Config.StateDirectory()
	}
	if o.InventoryInterval <= 0 {
		o.InventoryInterval = time.Minute
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 30 * time.Second
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReassertRunner == nil {
		o.ReassertRunner = o.Runner
	}
	mode := o.Mode
	if _, ok := o.Runner.(*actions.DryRunner); ok {
		mode.DryRun = true
	}
	if o.Collector.SerialOverride != "" {
		mode.SerialOverridden = true
	}
	a := &Agent{
		o: o, log: o.Logger.With("component", "agent"), store: Store{Dir: o.StateDir}, mode: mode,
		invTrigger: make(chan struct{}, 1), work: make(chan *agentv1.Command, 64), kick: make(chan struct{}, 1),
	}
	if err := a.store.Init(); err != nil {
		return nil, err
	}
	q, err := OpenQueue(a.store.path("results"))
	if err != nil {
		return nil, err
	}
	a.queue = q
	a.status = &statusFile{path: a.store.path(statusJSON)}
	return a, nil
}

// Run blocks until ctx is done. It enrolls first when the state directory
// has no identity and the config carries an enrollment secret.
func (a *Agent) Run(ctx context.Context) error {
	a.status.update(func(s *Status) {
		*s = Status{Version: a.o.Version, PID: pid(), DryRun: a.mode.DryRun, SerialOverridden: a.mode.SerialOverridden}
	})
	if a.mode.DryRun || a.mode.SerialOverridden {
		a.log.Warn("TEST BUILD knobs in effect; the server is told and records no result of this agent as done",
			"dry_run", a.mode.DryRun, "serial_overridden", a.mode.SerialOverridden)
	}
	if err := a.recoverInterrupted(); err != nil {
		return err
	}
	// The first inventory is taken before anything else: the serial and
	// hardware UUID are the identity a held lock is re-asserted for and
	// every command is checked against.
	if err := a.collect(ctx); err != nil {
		return err
	}
	// A device held locked is locked again before it connects or enrolls,
	// so a reboot gives nobody a window.
	a.reassertHeldLock(ctx)
	creds, err := a.ensureEnrolled(ctx)
	if err != nil {
		return err
	}
	if err := a.useCredentials(creds); err != nil {
		return err
	}
	addrs, err := a.agentAPIAddresses()
	if err != nil {
		return err
	}
	conn, err := dialAgentAPI(addrs, a.roots, &a.holder)
	if err != nil {
		return err
	}
	defer conn.Close()
	a.api = agentv1.NewAgentServiceClient(conn)
	a.status.update(func(s *Status) {
		s.AgentID, s.OrgID, s.GRPCAddresses = a.ident.AgentID, a.ident.OrgID, addrs
		s.CertNotAfter, s.CertRenewAfter = a.ident.NotAfter, a.ident.RenewAfter
	})

	// One synchronous attempt at the full report, so the stream's Hello
	// already carries the accepted hash; the inventory loop retries.
	if err := a.report(ctx); err != nil {
		a.setError(err)
		a.log.Warn("initial inventory report failed", "err", err)
	}
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){a.inventoryLoop, a.renewLoop, a.commandWorker, a.connectLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// recoverInterrupted turns results left at RECEIVED or RUNNING by a previous
// run (the agent stopped while a command ran or waited) into FAILED, so
// every command reaches a terminal state instead of hanging. A progress
// result the server already confirmed counts too: its command still never
// finished.
func (a *Agent) recoverInterrupted() error {
	unfinished, err := a.queue.Unfinished()
	if err != nil {
		return err
	}
	for _, r := range unfinished {
		r.State = agentv1.CommandState_COMMAND_STATE_FAILED
		r.Error = "agent restarted before the command finished"
		r.FinishedAt = timestamppb.Now()
		if err := a.queue.Put(r); err != nil {
			return err
		}
		a.log.Warn("command interrupted by a restart; reported failed", "command_id", r.GetCommandId())
	}
	return nil
}

// agentAPIAddresses are the endpoints the config names, else the ones the agent
// enrolled with (an identity from before address lists has one).
func (a *Agent) agentAPIAddresses() ([]string, error) {
	if a.o.Config.HasGRPCAddresses() {
		return a.o.Config.GRPCTargets()
	}
	if len(a.ident.GRPCAddresses) > 0 {
		return a.ident.GRPCAddresses, nil
	}
	if a.ident.GRPCAddress != "" {
		return []string{a.ident.GRPCAddress}, nil
	}
	return a.o.Config.GRPCTargets()
}

func (a *Agent) ensureEnrolled(ctx context.Context) (*Credentials, error) {
	creds, err := a.store.LoadCredentials()
	if err == nil {
		return creds, nil
	}
	if !errors.Is(err, ErrNotEnrolled) {
		return nil, err
	}
	if a.o.Config.EnrollmentSecret == "" {
		return nil, fmt.Errorf("%w: no enrollment_secret in the config; run `lanyard-agent enroll --url ... --secret ...`", ErrNotEnrolled)
	}
	bo := backoff{base: a.o.BackoffBase, max: a.o.BackoffMax}
	targets, err := a.o.Config.EnrollmentTargets()
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		// Each retry goes to the next replica's enrollment port: one that is down does not
		// hold the device back.
		cfg := a.o.Config
		cfg.EnrollmentAddress = targets[attempt%len(targets)]
		_, err := Enroll(ctx, EnrollOptions{Config: cfg, Store: a.store, Collector: a.o.Collector,
			Version: a.o.Version, Logger: a.log})
		if err == nil {
			break
		}
		a.setError(err)
		a.log.Warn("enrollment failed", "err", err)
		if code := status.Code(err); code == codes.Unauthenticated || code == codes.InvalidArgument ||
			errors.Is(err, ErrPinMismatch) {
			// A bad secret or pin will not fix itself quickly: wait long.
			bo.n = 30
		}
		if !sleep(ctx, bo.next()) {
			return nil, ctx.Err()
		}
	}
	if a.o.ConfigPath != "" {
		if removed, err := config.RemoveSecret(a.o.ConfigPath); err != nil {
			a.log.Warn("could not remove the enrollment secret from the config", "path", a.o.ConfigPath, "err", err)
		} else if removed {
			a.log.Info("enrollment secret removed from the config", "path", a.o.ConfigPath)
		}
	}
	return a.store.LoadCredentials()
}

func (a *Agent) useCredentials(c *Credentials) error {
	cert, err := c.TLSCertificate()
	if err != nil {
		return err
	}
	roots, err := c.RootPool()
	if err != nil {
		return err
	}
	id, err := a.store.LoadIdentity()
	if err != nil {
		return err
	}
	a.holder.p.Store(cert)
	a.mu.Lock()
	a.roots, a.ident = roots, id
	a.mu.Unlock()
	return nil
}

// --- inventory ---------------------------------------------------------

func (a *Agent) collect(ctx context.Context) error {
	inv, err := a.o.Collector.Collect(ctx)
	if err != nil {
		return err
	}
	hash := inventory.Hash(inv.SectionHashes())
	a.mu.Lock()
	a.inv, a.invHash = inv, hash
	a.mu.Unlock()
	a.status.update(func(s *Status) {
		s.SerialNumber, s.HardwareUUID, s.InventoryHash = inv.Hardware.SerialNumber, inv.Hardware.HardwareUUID, hash
	})
	return nil
}

func (a *Agent) serial() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inv == nil {
		return ""
	}
	return a.inv.Hardware.SerialNumber
}

func (a *Agent) hardwareUUID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inv == nil {
		return ""
	}
	return a.inv.Hardware.HardwareUUID
}

// TriggerInventory asks for a full report as soon as possible.
func (a *Agent) triggerFull() {
	a.mu.Lock()
	a.lastSent = nil
	a.mu.Unlock()
	select {
	case a.invTrigger <- struct{}{}:
	default:
	}
}

func (a *Agent) inventoryLoop(ctx context.Context) {
	t := time.NewTicker(a.o.InventoryInterval)
	defer t.Stop()
	first := true
	for {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-a.invTrigger:
			}
			if err := a.collect(ctx); err != nil {
				a.log.Warn("inventory collection failed", "err", err)
				continue
			}
		}
		// report sends nothing when the server already has this inventory
		// (the initial report in Run).
		first = false
		if err := a.report(ctx); err != nil && ctx.Err() == nil {
			a.setError(err)
			a.log.Warn("inventory report failed", "err", err)
		}
		if err := a.escrowKeys(ctx); err != nil && ctx.Err() == nil {
			a.setError(err)
			a.log.Warn("recovery key escrow failed; retried on the next inventory tick", "err", err)
		}
	}
}

// report sends a full inventory when the server has none from this run,
// else only the sections whose hash changed (nothing when none did).
func (a *Agent) report(ctx context.Context) error {
	a.mu.Lock()
	inv, hash, prev := a.inv, a.invHash, a.lastSent
	a.mu.Unlock()
	cur := inv.SectionHashes()
	changed := inventory.Changed(prev, cur)
	if prev != nil && len(changed) == 0 {
		return nil
	}
	req := &agentv1.ReportInventoryRequest{Full: prev == nil, InventoryHash: hash, CollectedAt: timestamppb.Now(),
		Mode: modeProto(a.mode)}
	if req.Full {
		req.Inventory = inventoryProto(inv, nil)
	} else {
		req.Inventory = inventoryProto(inv, changed)
		req.ChangedSections = changed
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.api.ReportInventory(cctx, req)
	if err != nil {
		return fmt.Errorf("client: report inventory: %w", err)
	}
	a.mu.Lock()
	a.lastSent, a.reported = cur, hash
	a.mu.Unlock()
	a.status.update(func(s *Status) {
		s.LastInventory = time.Now().UTC()
		if resp.GetDeviceId() != "" {
			s.DeviceID = resp.GetDeviceId()
		}
	})
	a.log.Debug("inventory reported", "full", req.Full, "sections", len(changed))
	if resp.GetFullInventoryRequired() && !req.Full {
		a.triggerFull()
	}
	return nil
}

// --- certificate renewal -------------------------------------------------

func (a *Agent) renewLoop(ctx context.Context) {
	bo := backoff{base: a.o.BackoffBase * 10, max: 10 * time.Minute}
	for {
		a.mu.Lock()
		at := a.ident.RenewAfter
		a.mu.Unlock()
		if !sleep(ctx, time.Until(at)) {
			return
		}
		renew := a.renew
		a.mu.Lock()
		if !time.Now().Before(a.ident.NotAfter) {
			// Expired while the machine was off: no mTLS any more, so the enrollment port.
			renew = a.renewExpired
		}
		a.mu.Unlock()
		if err := renew(ctx); err != nil {
			a.setError(err)
			a.log.Warn("certificate renewal failed", "err", err)
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
	}
}

// renew rotates the key (rekey with a new CSR) and replaces key and
// certificate in one atomic write.
func (a *Agent) renew(ctx context.Context) error {
	key, csr, err := identity.NewKeyAndCSR(a.ident.AgentID)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.api.Renew(cctx, &agentv1.RenewRequest{CsrDer: csr})
	if err != nil {
		return fmt.Errorf("client: renew: %w", err)
	}
	return a.install(key, resp.GetCertificate())
}

// renewExpired renews a certificate that expired while the device was off, on the
// enrollment port (no client certificate there), by sending the expired chain and a CSR
// signed with the same key. The server is verified with the roots from enrollment.
func (a *Agent) renewExpired(ctx context.Context) error {
	creds, err := a.store.LoadCredentials()
	if err != nil {
		return err
	}
	addrs, err := a.o.Config.EnrollmentTargets()
	if err != nil {
		return err
	}
	for _, addr := range addrs { // every replica's enrollment port in turn
		if err = a.renewExpiredAt(ctx, addr, creds); err == nil || ctx.Err() != nil {
			return err
		}
		a.log.Warn("renewing the expired certificate failed", "enrollment_address", addr, "err", err)
	}
	return err
}

func (a *Agent) renewExpiredAt(ctx context.Context, addr string, creds *Credentials) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("client: enrollment address %q: %w", addr, err)
	}
	a.mu.Lock()
	roots, agentID := a.roots, a.ident.AgentID
	a.mu.Unlock()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, ServerName: host, RootCAs: roots})))
	if err != nil {
		return fmt.Errorf("client: dial enrollment %s: %w", addr, err)
	}
	defer conn.Close()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: agentID}}, creds.Key)
	if err != nil {
		return fmt.Errorf("client: renewal request: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := agentv1.NewEnrollmentServiceClient(conn).RenewExpired(cctx, &agentv1.RenewExpiredRequest{ChainDer: creds.Chain, CsrDer: csr})
	if err != nil {
		return fmt.Errorf("client: renew expired certificate: %w", err)
	}
	return a.install(creds.Key, resp.GetCertificate())
}

// install stores a renewed certificate with its key (one atomic write each) and starts
// presenting it.
func (a *Agent) install(key crypto.Signer, b *agentv1.CertificateBundle) error {
	creds := &Credentials{Key: key, Chain: b.GetChainDer(), Roots: b.GetRootsDer()}
	if len(creds.Roots) == 0 {
		old, err := a.store.LoadCredentials()
		if err != nil {
			return err
		}
		creds.Roots = old.Roots
	}
	if _, err := creds.TLSCertificate(); err != nil {
		return err
	}
	if err := a.store.SaveCredentials(creds); err != nil {
		return err
	}
	a.mu.Lock()
	id := a.ident
	a.mu.Unlock()
	applyBundle(&id, b)
	if len(b.GetRootsDer()) == 0 {
		id.RootFingerprints = a.ident.RootFingerprints
	}
	if err := a.store.SaveIdentity(id); err != nil {
		return err
	}
	if err := a.useCredentials(creds); err != nil {
		return err
	}
	a.status.update(func(s *Status) { s.CertNotAfter, s.CertRenewAfter = id.NotAfter, id.RenewAfter })
	a.log.Info("certificate renewed", "not_after", id.NotAfter)
	return nil
}

// --- helpers -------------------------------------------------------------

func (a *Agent) setError(err error) {
	a.status.update(func(s *Status) { s.LastError, s.LastErrorAt = err.Error(), time.Now().UTC() })
}

// Status returns the agent's current status.
func (a *Agent) Status() Status { return a.status.snapshot() }

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
