// Package service runs the agent as a system service through
// kardianos/service v1.3.0: a launchd daemon (KeepAlive, RunAtLoad), a
// systemd unit of our own (Restart=always, RestartSec=10; kardianos
// hard-codes RestartSec=120) or a Windows service restarted on failure.
//
// The service names match the installers: "lanyard-agent" (systemd unit
// and Windows service) and "com.lanyard.agent" (launchd label).
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ks "github.com/kardianos/service"
)

// StopTimeout bounds how long Stop waits for the agent to finish.
const StopTimeout = 20 * time.Second

// RunFunc is the agent's main loop; it returns when ctx is cancelled.
type RunFunc func(ctx context.Context) error

// Config returns the kardianos configuration for this OS. executable is
// the installed binary (empty: the running one); runArgs follow "run" in
// the service's command line (e.g. --config for a non-default path).
func Config(executable string, runArgs ...string) *ks.Config {
	c := &ks.Config{
		Name:        serviceName,
		DisplayName: "Lanyard Device Agent",
		Description: "Enrolls this computer with the organization's Lanyard control plane and reports inventory and security posture.",
		Executable:  executable,
		Arguments:   append([]string{"run"}, runArgs...),
		Option:      options(),
	}
	c.Dependencies = dependencies()
	return c
}

type program struct {
	run    RunFunc
	log    *slog.Logger
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start must return quickly: the agent runs in its own goroutine.
func (p *program) Start(ks.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.cancel, p.done = cancel, make(chan struct{})
	p.mu.Unlock()
	go func() {
		defer close(p.done)
		if err := p.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			p.log.Error("agent stopped with an error", "err", err)
			p.err = err
		}
	}()
	return nil
}

func (p *program) Stop(ks.Service) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-time.After(StopTimeout):
		return errors.New("service: agent did not stop in time")
	}
	return nil
}

// Run runs fn under the service manager (or in the foreground when started
// from a terminal) until the manager stops it or SIGINT/SIGTERM arrives.
func Run(fn RunFunc, log *slog.Logger) error {
	p := &program{run: fn, log: log}
	s, err := ks.New(p, Config(""))
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if err := s.Run(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return p.err
}

// Control performs install, uninstall, start, stop or restart.
// Uninstall stops the service first: on Windows, deleting a running
// service only marks it for deletion and a reinstall then fails.
func Control(action, executable string, runArgs ...string) error {
	s, err := ks.New(&program{log: slog.Default()}, Config(executable, runArgs...))
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	switch action {
	case "uninstall":
		if st, err := s.Status(); err == nil && st == ks.StatusRunning {
			if err := s.Stop(); err != nil {
				return fmt.Errorf("service: stop before uninstall: %w", err)
			}
		}
		return wrap(s.Uninstall())
	case "install", "start", "stop", "restart":
		return wrap(ks.Control(s, action))
	}
	return fmt.Errorf("service: unknown action %q", action)
}

// Platform names the service manager kardianos detected ("linux-systemd",
// "unix-systemv", "darwin-launchd", "windows-service").
func Platform() string { return ks.Platform() }

// Interactive reports whether the process runs from a terminal rather than
// under the service manager.
func Interactive() bool { return ks.Interactive() }

func wrap(err error) error {
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}
