package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store/storetest"
)

// cutProxy forwards a loopback port to Postgres and can drop every connection and refuse
// new ones, the way a database failover or network cut looks to the server.
type cutProxy struct {
	target string
	mu     sync.Mutex
	ln     net.Listener
	addr   string
	conns  []net.Conn
}

func (p *cutProxy) start(t *testing.T) {
	ln, err := net.Listen("tcp", p.addrOr("127.0.0.1:0"))
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *cutProxy) addrOr(def string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addr != "" {
		return p.addr
	}
	return def
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestPostgresDownWhileServing(t *testing.T) {
	raw := storetest.PostgresURL(t)
	u, _ := url.Parse(raw)
	proxy := &cutProxy{target: u.Host}
	proxy.start(t)
	u.Host = proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, testConfig(t, u.String()), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	org := storetest.Org(t, s.DB, domain.PlanPro)
	_, token, err := s.DB.CreateToken(ctx, org.ID, "t", domain.RoleViewer, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + addr.String()
	get := func(path string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("ready", func() bool { return get("/readyz") == 200 && get("/api/v1/devices") == 200 })

	proxy.cut()
	waitFor("/readyz 503", func() bool { return get("/readyz") == 503 })
	if code := get("/api/v1/devices"); code != 503 {
		t.Fatalf("request with the database down: %d, want 503", code)
	}
	if code := get("/healthz"); code != 200 {
		t.Fatalf("/healthz while the database is down: %d (the process must stay up)", code)
	}

	proxy.start(t) // same address: the database is back
	waitFor("recovery", func() bool { return get("/readyz") == 200 && get("/api/v1/devices") == 200 })
	cancel()
	if err := <-done; err != nil && !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("run: %v", err)
	}
}
