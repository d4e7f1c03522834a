// Package fakeapns is an APNs gateway for tests: real HTTP/2 over TLS on 127.0.0.1 that
// records MDM pushes, can fail chosen tokens with APNs reasons, and wakes subscribers
// (simulated Macs) when a push for their token arrives.
package fakeapns

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Push is one push the server accepted or refused.
type Push struct {
	Token      string
	Topic      string
	PushType   string
	Expiration string
	PushMagic  string
	ClientCN   string
	Status     int
	Reason     string
	At         time.Time
}

// Server is the fake gateway. Use New, then URL and RootCAs for the provider.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	pushes   []Push
	failures map[string]failure // token → forced answer
	subs     map[string][]func()
}

type failure struct {
	status int
	reason string
}

// New starts the server. It asks for (but does not verify) a client certificate, like
// APNs, and records its subject CN.
func New() *Server {
	s := &Server{failures: map[string]failure{}, subs: map[string][]func(){}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	s.srv.EnableHTTP2 = true
	s.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	s.srv.StartTLS()
	return s
}

// URL is the base URL (https://127.0.0.1:port).
func (s *Server) URL() string { return s.srv.URL }

// RootCAs trusts the server's certificate.
func (s *Server) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Fail makes every push to token answer status with reason (e.g. 410 "Unregistered").
func (s *Server) Fail(token string, status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[token] = failure{status, reason}
}

// FailAll makes every push answer status with reason (token "*").
func (s *Server) FailAll(status int, reason string) { s.Fail("*", status, reason) }

// Heal removes a forced failure.
func (s *Server) Heal(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failures, token)
}

// Subscribe calls fn (in its own goroutine) for every accepted push to token.
func (s *Server) Subscribe(token string, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[token] = append(s.subs[token], fn)
}

// Pushes returns a copy of everything received.
func (s *Server) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes...)
}

// Count returns how many accepted pushes token received.
func (s *Server) Count(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.pushes {
		if p.Token == token && p.Status == http.StatusOK {
			n++
		}
	}
	return n
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/3/device/") {
		writeReason(w, http.StatusNotFound, "BadPath")
		return
	}
	if r.ProtoMajor != 2 {
		writeReason(w, http.StatusBadRequest, "HTTP2Required")
		return
	}
	token := strings.TrimPrefix(r.URL.Path, "/3/device/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	var payload struct {
		MDM string `json:"mdm"`
	}
	p := Push{
		Token: token, Topic: r.Header.Get("apns-topic"), PushType: r.Header.Get("apns-push-type"),
		Expiration: r.Header.Get("apns-expiration"), At: time.Now(),
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		p.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	status, reason := http.StatusOK, ""
	switch {
	case json.Unmarshal(body, &payload) != nil || payload.MDM == "":
		status, reason = http.StatusBadRequest, "PayloadEmpty"
	case p.PushType != "mdm":
		status, reason = http.StatusBadRequest, "InvalidPushType"
	case p.ClientCN == "":
		status, reason = http.StatusForbidden, "BadCertificate"
	}
	p.PushMagic = payload.MDM
	s.mu.Lock()
	if f, ok := s.failures[token]; ok && status == http.StatusOK {
		status, reason = f.status, f.reason
	} else if f, ok := s.failures["*"]; ok && status == http.StatusOK {
		status, reason = f.status, f.reason
	}
	p.Status, p.Reason = status, reason
	s.pushes = append(s.pushes, p)
	var subs []func()
	if status == http.StatusOK {
		subs = append(subs, s.subs[token]...)
	}
	s.mu.Unlock()
	w.Header().Set("apns-id", uuid.NewString())
	if status != http.StatusOK {
		writeReason(w, status, reason)
		return
	}
	w.WriteHeader(http.StatusOK)
	for _, fn := range subs {
		go fn()
	}
}

func writeReason(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"reason": reason})
}
