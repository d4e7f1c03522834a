package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	agentv1 "github.com/lanyardhq/lanyard/proto/lanyard/agent/v1"
)

// StormResult is the replica restart storm: the server pid is killed with every stream
// open, commands are queued while the agents are away, and the simulator measures how long
// until every agent has a stream again (on the restarted replica or another one) and how
// many of those commands arrived never or more than once (by command id).
type StormResult struct {
	Signal          string  `json:"signal"`
	Agents          int     `json:"agents"`
	AllBackSeconds  float64 `json:"all_streams_back_seconds"`
	Back            int     `json:"streams_back"`
	Reconnects      int64   `json:"reconnect_attempts"`
	Commands        int     `json:"commands_queued_during_outage"`
	CommandsLost    int     `json:"commands_lost"`
	CommandsTwice   int     `json:"commands_received_twice"`
	TwiceAfterAcked int     `json:"commands_received_again_after_ack"`
	DeliveredP99ms  float64 `json:"queued_to_received_p99_ms"`
	// BackP50/P90 are when half and nine in ten of the agents had a stream again;
	// Resumed counts the reconnects whose TLS handshake resumed a session.
	BackP50 float64 `json:"streams_back_p50_seconds"`
	BackP90 float64 `json:"streams_back_p90_seconds"`
	Resumed int64   `json:"tls_resumed"`
	// CPU in cores from the signal until every stream was back: the simulator (its
	// agents' side of every handshake) and the whole machine; the rest is mostly the
	// replica taking the streams. (Postgres is left out: the dead replica's backends exit,
	// and a per-process sum loses their time.)
	CPUSimulator float64 `json:"cpu_simulator_cores"`
	CPUMachine   float64 `json:"cpu_machine_cores"`
}

// storm is the bookkeeping the agents' loops share during the storm phase.
type storm struct {
	mu       sync.Mutex
	since    time.Time // the kill; a welcome after it counts as back
	back     map[int]time.Time
	recv     map[string]int
	acked    map[string]bool
	queuedAt map[string]time.Time
	lat      []time.Duration
	attempts atomic.Int64
	resumed  atomic.Int64
}

func newStorm() *storm {
	return &storm{back: map[int]time.Time{}, recv: map[string]int{}, acked: map[string]bool{}, queuedAt: map[string]time.Time{}}
}

func (s *storm) welcomed(idx int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.since.IsZero() {
		if _, ok := s.back[idx]; !ok {
			s.back[idx] = time.Now()
		}
	}
}

// received counts a command by id; it reports whether this is a receipt after the agent
// had already acknowledged it (which the id dedupe of a real agent absorbs, but counts).
func (s *storm) received(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recv[id]++
	if t, ok := s.queuedAt[id]; ok && s.recv[id] == 1 {
		s.lat = append(s.lat, time.Since(t))
	}
}

func (s *storm) ackSent(id string) {
	s.mu.Lock()
	s.acked[id] = true
	s.mu.Unlock()
}

func (s *storm) counts() (back int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.back)
}

// runStorm kills the server, optionally restarts it, queues commands through apiURL
// (another replica's, or the restarted one's: calls are retried until it answers) and
// waits for every stream and every command.
func runStorm(ctx context.Context, o options, agents []*agent, st *storm) (*StormResult, error) {
	sig := syscall.SIGKILL
	if o.stormSignal == "TERM" {
		sig = syscall.SIGTERM
	}
	r := &StormResult{Signal: "SIG" + o.stormSignal, Agents: len(agents)}
	st.mu.Lock()
	st.since = time.Now()
	st.mu.Unlock()
	t0, c0 := time.Now(), readCPU(0)
	if err := syscall.Kill(o.serverPID, sig); err != nil {
		return nil, fmt.Errorf("storm: signal %d: %w", o.serverPID, err)
	}
	log.Printf("storm: SIG%s sent to %d", o.stormSignal, o.serverPID)
	if o.stormRestart != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", o.stormRestart)
		cmd.Stdout, cmd.Stderr = log.Writer(), log.Writer()
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("storm: restart: %w", err)
		}
		go func() { _ = cmd.Wait() }()
	}
	// Commands queued while the agents are away.
	hc := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for k := 0; k < o.stormCommands && ctx.Err() == nil; k++ {
		a := agents[rand.IntN(len(agents))]
		key := fmt.Sprintf("storm-%d-%d", t0.UnixNano(), k)
		for {
			id, err := queueLock(ctx, hc, o.stormAPI, o.token, a.deviceID, key)
			if err == nil {
				st.mu.Lock()
				st.queuedAt[id] = time.Now()
				st.mu.Unlock()
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("storm: queue command: %w", err)
			}
			time.Sleep(200 * time.Millisecond) // the replica is restarting
		}
	}
	r.Commands = o.stormCommands
	// All streams back, then all commands in.
	end := time.Now().Add(time.Duration(o.stormWait * float64(time.Second)))
	for st.counts() < len(agents) && time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	r.Back = st.counts()
	if el, c1 := time.Since(t0).Seconds(), readCPU(0); el > 0 {
		r.CPUSimulator, r.CPUMachine = (c1.self-c0.self)/el, (c1.machine-c0.machine)/el
	}
	st.mu.Lock()
	var last time.Time
	backs := make([]time.Duration, 0, len(st.back))
	for _, t := range st.back {
		if t.After(last) {
			last = t
		}
		backs = append(backs, t.Sub(t0))
	}
	st.mu.Unlock()
	r.BackP50, r.BackP90 = pct(backs, 0.5)/1000, pct(backs, 0.9)/1000
	if r.Back == len(agents) {
		r.AllBackSeconds = last.Sub(t0).Seconds()
	}
	for time.Now().Before(end) && ctx.Err() == nil {
		st.mu.Lock()
		missing := 0
		for id := range st.queuedAt {
			if st.recv[id] == 0 {
				missing++
			}
		}
		st.mu.Unlock()
		if missing == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A short quiet period catches late duplicates.
	time.Sleep(2 * time.Second)
	st.mu.Lock()
	for id := range st.queuedAt {
		switch n := st.recv[id]; {
		case n == 0:
			r.CommandsLost++
		case n > 1:
			r.CommandsTwice++
			if st.acked[id] {
				r.TwiceAfterAcked++
			}
		}
	}
	r.DeliveredP99ms = pct(st.lat, 0.99)
	st.mu.Unlock()
	r.Reconnects, r.Resumed = st.attempts.Load(), st.resumed.Load()
	log.Printf("storm: %d/%d streams back in %.1f s (half in %.1f s, 90%% in %.1f s; %d attempts, %d TLS resumptions; CPU cores: simulator %.2f, machine %.2f); %d commands: %d lost, %d twice",
		r.Back, len(agents), r.AllBackSeconds, r.BackP50, r.BackP90, r.Reconnects, r.Resumed, r.CPUSimulator, r.CPUMachine,
		r.Commands, r.CommandsLost, r.CommandsTwice)
	return r, nil
}

func queueLock(ctx context.Context, hc *http.Client, apiURL, token, deviceID, key string) (string, error) {
	body, _ := json.Marshal(map[string]any{"type": "lock", "idempotency_key": key})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/api/v1/devices/"+deviceID+"/actions", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// 200: the idempotency key was seen (a retry whose first try landed).
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d %s", resp.StatusCode, b)
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
		return "", fmt.Errorf("no command id in %s", b)
	}
	return c.ID, nil
}

// reconnect opens a new stream after the old one broke, with the agent's full-jitter
// exponential backoff and its defaults (agent/client/backoff.go, agent.go: 1 s base,
// 5 min cap), until ctx ends.
func (a *agent) reconnect(ctx context.Context, st *storm) bool {
	base, maxWait := time.Second, 5*time.Minute
	for n := 0; ctx.Err() == nil; n++ {
		d := min(base<<min(n, 10), maxWait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(base/2 + rand.N(d-base/2+1)):
		}
		st.attempts.Add(1)
		if err := a.open(ctx); err == nil {
			st.welcomed(a.idx)
			if a.resumed() {
				st.resumed.Add(1)
			}
			return true
		}
	}
	return false
}

// resumed reports whether the current stream's TLS handshake resumed a session.
func (a *agent) resumed() bool {
	a.sendMu.Lock()
	s := a.stream
	a.sendMu.Unlock()
	if s == nil {
		return false
	}
	p, ok := peer.FromContext(s.Context())
	if !ok {
		return false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && ti.State.DidResume
}

// open opens the Connect stream and waits for the welcome.
func (a *agent) open(ctx context.Context) error {
	s, err := a.cl.Connect(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&agentv1.ConnectRequest{Msg: &agentv1.ConnectRequest_Hello{Hello: &agentv1.Hello{AgentVersion: "agentsim", InventoryHash: "h0"}}}); err != nil {
		return err
	}
	if m, err := s.Recv(); err != nil || m.GetWelcome() == nil {
		return fmt.Errorf("welcome: %v", err)
	}
	a.sendMu.Lock()
	a.stream = s
	a.sendMu.Unlock()
	return nil
}
