// Package fakereceiver is a webhook receiver over loopback HTTP for tests and the demo.
// It verifies every request the way a careful receiver does (webhook.Verify: signature
// and timestamp) and records what arrived by webhook-id, so a duplicate delivery is
// visible. Knobs: fail the next N requests with a status (500, 429 with Retry-After),
// hang (accept and never answer), down/up (stop listening and come back on the same port).
package fakereceiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/notify/webhook"
)

// Received is one request, verified or not.
type Received struct {
	ID      string
	Payload webhook.Payload
	Body    []byte
	// Err is why verification refused it (nil: signature and timestamp good).
	Err error
	At  time.Time
}

// Server is a running receiver.
type Server struct {
	mu        sync.Mutex
	secrets   []string
	tolerance time.Duration
	got       []Received
	failN     int
	failCode  int
	retryAft  string
	hang      bool
	inflight  int
	changed   chan struct{}

	addr   string
	srv    *http.Server
	hangCh chan struct{}
}

// Start listens on 127.0.0.1 (a free port) and verifies with secrets.
func Start(ctx context.Context, secrets ...string) (*Server, error) {
	s := &Server{secrets: secrets, tolerance: webhook.DefaultTolerance, changed: make(chan struct{}), hangCh: make(chan struct{})}
	if err := s.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return s, nil
}

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fakereceiver listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.addr, s.srv = ln.Addr().String(), srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// URL is where to post.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr + "/hooks/lanyard"
}

// SetSecrets replaces the secrets the receiver accepts (a receiver switching over).
func (s *Server) SetSecrets(secrets ...string) {
	s.mu.Lock()
	s.secrets = secrets
	s.mu.Unlock()
}

// Fail answers the next n requests with status (429 carries Retry-After: retryAfter
// seconds when retryAfter > 0). The failed requests are not recorded.
func (s *Server) Fail(n, status, retryAfter int) {
	s.mu.Lock()
	s.failN, s.failCode = n, status
	s.retryAft = ""
	if retryAfter > 0 {
		s.retryAft = strconv.Itoa(retryAfter)
	}
	s.mu.Unlock()
}

// Hang makes the receiver accept requests and never answer (until Hang(false)).
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == on {
		return
	}
	s.hang = on
	if !on {
		close(s.hangCh)
		s.hangCh = make(chan struct{})
	}
}

// Down stops listening (connections are refused); Up listens again on the same port.
func (s *Server) Down() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the port Down released.
func (s *Server) Up() error {
	s.mu.Lock()
	addr := s.addr
	s.mu.Unlock()
	return s.listen(addr)
}

// Close stops the receiver.
func (s *Server) Close() {
	s.Hang(false)
	s.Down()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if s.hang {
		// Hold the request; when released, answer it normally (a slow receiver), unless
		// the sender gave up meanwhile (then nothing is recorded: it never got an answer).
		ch := s.hangCh
		s.inflight++
		s.mu.Unlock()
		select {
		case <-ch:
		case <-r.Context().Done():
		}
		s.mu.Lock()
		s.inflight--
		if r.Context().Err() != nil {
			s.mu.Unlock()
			return
		}
	}
	if s.failN > 0 {
		s.failN--
		code, ra := s.failCode, s.retryAft
		s.mu.Unlock()
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		http.Error(w, "receiver told to fail", code)
		return
	}
	secrets, tol := s.secrets, s.tolerance
	s.mu.Unlock()
	rec := Received{ID: r.Header.Get(webhook.HeaderID), Body: body, At: time.Now()}
	rec.Err = webhook.Verify(secrets, r.Header, body, tol, time.Now())
	if rec.Err == nil {
		if err := json.Unmarshal(body, &rec.Payload); err != nil {
			rec.Err = fmt.Errorf("payload: %w", err)
		} else if rec.Payload.ID != rec.ID {
			rec.Err = errors.New("payload id differs from webhook-id")
		}
	}
	s.mu.Lock()
	s.got = append(s.got, rec)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if rec.Err != nil {
		http.Error(w, rec.Err.Error(), http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// InFlight is how many requests are being held by Hang.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// Received returns everything recorded so far, in arrival order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.got...)
}

// Counts returns how many verified requests arrived per webhook-id (a value above 1 is a
// duplicate).
func (s *Server) Counts() map[string]int {
	out := map[string]int{}
	for _, r := range s.Received() {
		if r.Err == nil {
			out[r.ID]++
		}
	}
	return out
}

// WaitFor waits until pred holds over what arrived, or ctx ends.
func (s *Server) WaitFor(ctx context.Context, pred func([]Received) bool) ([]Received, error) {
	for {
		s.mu.Lock()
		got, ch := append([]Received(nil), s.got...), s.changed
		s.mu.Unlock()
		if pred(got) {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("fakereceiver: condition not met (%d received): %w", len(got), ctx.Err())
		case <-ch:
		}
	}
}
