// Package fakehttp is what the provider fakes (fakegraph, fakegithub,
// fakeslackscim) share: a loopback listener, and the failure knobs tests turn
// (throttle with Retry-After, fail the next N requests, hang until released),
// applied before the provider's own handler so each fake answers a knob in its
// provider's own error shape.
package fakehttp

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// ErrorWriter writes the provider's error body for a knob-made failure.
// retryAfter is non-zero for throttling.
type ErrorWriter func(w http.ResponseWriter, status int, retryAfter time.Duration)

// Server is a loopback HTTP server with failure knobs.
type Server struct {
	URL string // http://127.0.0.1:port, no trailing slash

	srv  *http.Server
	ln   net.Listener
	errw ErrorWriter

	mu         sync.Mutex
	throttle   int
	retryAfter time.Duration
	fail       int
	failStatus int
	hang       chan struct{} // non-nil while hanging; closed to release
	requests   map[string]int
}

// Start serves h on 127.0.0.1 until ctx ends or Close is called.
func Start(ctx context.Context, h http.Handler, errw ErrorWriter) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakehttp: listen: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), ln: ln, errw: errw, requests: map[string]int{}}
	s.srv = &http.Server{Handler: s.wrap(h), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	return s, nil
}

// Close stops the server and releases hanging requests.
func (s *Server) Close() error {
	s.SetHang(false)
	return s.srv.Close()
}

// Throttle makes the next n requests answer 429 with Retry-After.
func (s *Server) Throttle(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle, s.retryAfter = n, retryAfter
}

// FailNext makes the next n requests answer status (a 5xx).
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failStatus = n, status
}

// SetHang makes requests block (true) until released (false) or the client
// gives up: a provider that accepts the connection and never answers.
func (s *Server) SetHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.hang == nil:
		s.hang = make(chan struct{})
	case !on && s.hang != nil:
		close(s.hang)
		s.hang = nil
	}
}

// Requests is how many requests for "METHOD /path" arrived (knob-failed ones
// included); "" counts all.
func (s *Server) Requests(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key == "" {
		n := 0
		for _, v := range s.requests {
			n += v
		}
		return n
	}
	return s.requests[key]
}

// SortedKeys returns m's keys in order (fakes answer in a stable order).
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.Method+" "+r.URL.Path]++
		hang := s.hang
		status, retry := 0, time.Duration(0)
		switch {
		case s.throttle > 0:
			s.throttle--
			status, retry = http.StatusTooManyRequests, s.retryAfter
		case s.fail > 0:
			s.fail--
			status = s.failStatus
		}
		s.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			s.errw(w, status, retry)
			return
		}
		h.ServeHTTP(w, r)
	})
}
