// Package cli is the lanyard-agent command line: run, install, uninstall,
// start, stop, enroll, status, inventory, version. cmd/lanyard-agent only
// calls Run.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lanyardhq/lanyard/agent/actions"
	"github.com/lanyardhq/lanyard/agent/client"
	"github.com/lanyardhq/lanyard/agent/config"
	"github.com/lanyardhq/lanyard/agent/inventory"
	"github.com/lanyardhq/lanyard/agent/service"
)

// Version is set at build time: -ldflags "-X github.com/lanyardhq/lanyard/agent/cli.Version=1.2.3".
var Version = "dev"

const usage = `usage: lanyard-agent <command> [flags]

commands:
  run         run the agent (what the service manager starts)
  install     register the system service (launchd, systemd, Windows SCM)
  uninstall   stop and remove the system service
  start       start the installed service
  stop        stop the installed service
  enroll      enroll this device: enroll --url URL --secret SECRET
  status      show enrollment and connection status
  inventory   print this device's inventory (--json for JSON)
  version     print the agent version
`

// Run executes the command line args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCmd(ctx, rest, stderr)
	case "install", "uninstall", "start", "stop":
		return controlCmd(cmd, rest, stdout, stderr)
	case "enroll":
		return enrollCmd(ctx, rest, stdout, stderr)
	case "status":
		return statusCmd(rest, stdout, stderr)
	case "inventory":
		return inventoryCmd(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		if TestBuild {
			fmt.Fprintln(stdout, Version+" (test build: lanyardtest knobs)")
			return nil
		}
		fmt.Fprintln(stdout, Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

type common struct {
	configPath string
	stateDir   string
	logLevel   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configPath, "config", config.DefaultPath(), "agent config file")
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory (default: from config, else "+config.DefaultStateDir()+")")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
}

func (c *common) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// loadConfig reads the config file; a missing file is an empty config.
func (c *common) loadConfig() (config.Config, error) {
	cfg, err := config.Load(c.configPath)
	if errors.Is(err, config.ErrNotExist) {
		return config.Config{}, nil
	}
	return cfg, err
}

func (c *common) state(cfg config.Config) string {
	if c.stateDir != "" {
		return c.stateDir
	}
	return cfg.StateDirectory()
}

// collector is the inventory collector; only a test build may override the
// serial (testSerial is "" in release builds).
func collector(log *slog.Logger) *inventory.Collector {
	c := &inventory.Collector{AgentVersion: Version}
	if s := testSerial(); s != "" {
		log.Warn("TEST BUILD: serial number overridden; the server is told", "serial", s)
		c.SerialOverride = s
	}
	return c
}

// flagSet parses one command's flags. A bad flag is one line of error (the
// usage only on -h), so `run --dry-run` on a release build says exactly what
// is wrong.
type flagSet struct {
	*flag.FlagSet
	name   string
	stderr io.Writer
}

func newFlags(name string, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet("lanyard-agent "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, name: name, stderr: stderr}
}

func (f *flagSet) Parse(args []string) error {
	err := f.FlagSet.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(f.stderr, "usage of lanyard-agent %s:\n", f.name)
		f.SetOutput(f.stderr)
		f.PrintDefaults()
		return err
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

func runCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	var c common
	c.register(fs.FlagSet)
	knobs := registerRunKnobs(fs.FlagSet)
	invEvery := fs.Duration("inventory-interval", time.Minute, "how often inventory is collected and compared")
	hbEvery := fs.Duration("heartbeat-interval", 30*time.Second, "heartbeat interval until the server sets one")
	boMax := fs.Duration("backoff-max", 5*time.Minute, "longest wait between reconnection attempts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := c.logger(stderr)
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	var runner actions.Runner = actions.ExecRunner{}
	dry := knobs.dry()
	if dry {
		log.Warn("TEST BUILD dry-run executor: commands are recorded, nothing is executed; results are simulated")
		runner = &actions.DryRunner{}
	}
	col := collector(log)
	a, err := client.New(client.Options{
		Config: cfg, ConfigPath: c.configPath, StateDir: c.state(cfg),
		Collector: col, Planner: actions.NewPlanner(actions.PlannerOptions{StateDir: c.state(cfg)}), Runner: runner,
		// A held lock is re-asserted for real, dry run or not.
		ReassertRunner: actions.ExecRunner{},
		Mode:           actions.Mode{DryRun: dry, SerialOverridden: col.SerialOverride != ""},
		Version:        Version, Logger: log,
		InventoryInterval: *invEvery, HeartbeatInterval: *hbEvery, BackoffMax: *boMax,
	})
	if err != nil {
		return err
	}
	if !service.Interactive() {
		return service.Run(a.Run, log)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func controlCmd(action string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(action, stderr)
	cfgPath := fs.String("config", config.DefaultPath(), "config file the service reads (install)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exe := ""
	var runArgs []string
	if action == "install" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return err
		}
		if *cfgPath != config.DefaultPath() {
			runArgs = []string{"--config", *cfgPath}
		}
	}
	if err := service.Control(action, exe, runArgs...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%s)\n", action, service.Platform())
	return nil
}

func enrollCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("enroll", stderr)
	var c common
	c.register(fs.FlagSet)
	url := fs.String("url", "", "control-plane URL, e.g. https://lanyard.example.com")
	secret := fs.String("secret", "", "enrollment secret (lyes_...)")
	grpcAddr := fs.String("grpc-address", "", "agent API host:port (default: URL host, port 8443)")
	enrollAddr := fs.String("enroll-address", "", "enrollment host:port (default: URL host, port 8444)")
	fp := fs.String("ca-fingerprint", "", "SHA-256 fingerprint of the control plane's root CA to pin")
	keep := fs.Bool("keep-secret", false, "keep the secret in the config file after enrolling")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := c.logger(stderr)
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	for dst, v := range map[*string]string{
		&cfg.ControlPlaneURL: *url, &cfg.EnrollmentSecret: *secret, &cfg.GRPCAddress: *grpcAddr,
		&cfg.EnrollmentAddress: *enrollAddr, &cfg.CAFingerprintSHA256: *fp,
	} {
		if v != "" {
			*dst = v
		}
	}
	if *keep {
		cfg.KeepSecret = true
	}
	if cfg.CAFingerprintSHA256 != "" {
		if cfg.CAFingerprintSHA256, err = config.NormalizeFingerprint(cfg.CAFingerprintSHA256); err != nil {
			return err
		}
	}
	if c.stateDir != "" {
		cfg.StateDir = c.stateDir
	}
	if err := cfg.ValidateForEnroll(); err != nil {
		return err
	}
	id, err := client.Enroll(ctx, client.EnrollOptions{Config: cfg, Store: client.Store{Dir: c.state(cfg)},
		Collector: collector(log), Version: Version, Logger: log})
	if err != nil {
		return err
	}
	if !cfg.KeepSecret {
		cfg.EnrollmentSecret = ""
	}
	if err := config.Write(c.configPath, cfg); err != nil {
		return fmt.Errorf("enrolled, but writing %s failed: %w", c.configPath, err)
	}
	fmt.Fprintf(stdout, "enrolled: agent %s (org %s), certificate valid until %s\n",
		id.AgentID, id.OrgID, id.NotAfter.Format(time.RFC3339))
	return nil
}

func statusCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	var c common
	c.register(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	dir := c.state(cfg)
	id, idErr := client.Store{Dir: dir}.LoadIdentity()
	st, stErr := client.ReadStatus(dir)
	held, locked, heldErr := client.ReadHeldLock(dir)
	if heldErr != nil {
		// Unreadable: the agent treats the device as locked, so do we.
		locked, held = true, client.HeldLock{CommandID: "unknown (" + heldErr.Error() + ")"}
	}
	if *asJSON {
		out := map[string]any{"enrolled": idErr == nil, "state_dir": dir, "locked": locked}
		if locked {
			out["held_lock"] = held
		}
		if idErr == nil {
			out["identity"] = id
		}
		if stErr == nil {
			out["status"] = st
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		w := func(k string, v any) { fmt.Fprintf(stdout, "%-20s %v\n", k+":", v) }
		w("state directory", dir)
		if idErr != nil {
			w("enrolled", "no")
		} else {
			w("enrolled", "yes")
			w("agent id", id.AgentID)
			w("org id", id.OrgID)
			w("certificate until", id.NotAfter.Format(time.RFC3339))
		}
		if locked {
			w("locked", "yes, by command "+held.CommandID+" since "+formatTime(held.LockedAt)+"; re-asserted at every start")
		} else {
			w("locked", "no")
		}
		if stErr != nil {
			w("agent", stErr.Error())
		} else {
			w("test knobs", knobsText(st))
			w("connected", st.Connected)
			w("device id", st.DeviceID)
			w("serial number", st.SerialNumber)
			w("hardware uuid", st.HardwareUUID)
			if st.Locked && !st.LockReassertedAt.IsZero() {
				msg := st.LockReassertState + " at " + formatTime(st.LockReassertedAt)
				if st.LockReassertError != "" {
					msg += ": " + st.LockReassertError
				}
				w("lock re-asserted", msg)
			}
			w("last heartbeat ack", formatTime(st.LastHeartbeatAck))
			w("last inventory", formatTime(st.LastInventory))
			w("pending results", st.PendingResults)
			if st.LastError != "" {
				w("last error", st.LastError)
			}
			w("updated", formatTime(st.UpdatedAt))
		}
	}
	if idErr != nil {
		return client.ErrNotEnrolled
	}
	return nil
}

// knobsText says which test knobs the running agent announced.
func knobsText(st client.Status) string {
	var k []string
	if st.DryRun {
		k = append(k, "dry-run (results are simulated)")
	}
	if st.SerialOverridden {
		k = append(k, "serial override")
	}
	if len(k) == 0 {
		return "none"
	}
	return "TEST BUILD: " + strings.Join(k, ", ")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(time.RFC3339) + " (" + time.Since(t).Round(time.Second).String() + " ago)"
}

func inventoryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inventory", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	inv, err := collector(log).Collect(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inv)
	}
	hw := inv.Hardware
	serial := hw.SerialNumber
	if serial == "" {
		serial = "(" + hw.SerialSource + ")"
	}
	fmt.Fprintf(stdout, "hostname:  %s\nos:        %s %s %s (%s, kernel %s)\nhardware:  %s %s, serial %s, uuid %s\n",
		inv.Hostname, inv.OS.Name, inv.OS.Version, inv.OS.Build, inv.OS.Arch, inv.OS.KernelVersion,
		hw.Vendor, hw.Model, serial, hw.HardwareUUID)
	fmt.Fprintf(stdout, "cpu:       %s (%d cores, %d threads)\nmemory:    %d MiB\n",
		inv.CPU.Model, inv.CPU.PhysicalCores, inv.CPU.LogicalCores, inv.MemoryBytes>>20)
	p := inv.Posture
	fmt.Fprintf(stdout, "posture:   disk encryption %s, firewall %s, screen lock %s, auto updates %s\n",
		p.DiskEncryption, p.Firewall, p.ScreenLock, p.AutoUpdates)
	var users []string
	for _, u := range inv.Users {
		users = append(users, u.Username)
	}
	fmt.Fprintf(stdout, "users:     %s\n", strings.Join(users, ", "))
	for _, w := range inv.Warnings {
		fmt.Fprintf(stdout, "warning:   %s\n", w)
	}
	return nil
}
