// Package apitest drives the admin API over real HTTP in tests: a server on 127.0.0.1,
// tokens of any role, and the generated tenant-isolation and role checks every route
// table must pass.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Harness is an API server over a test database.
type Harness struct {
	T      testing.TB
	DB     *store.DB
	API    *api.Server
	Server *httptest.Server
	// Client sends Do's requests; http.DefaultClient when nil (see FromSource).
	Client *http.Client
}

// FromSource is the harness with requests sent from local address ip (any of
// 127.0.0.0/8 on Linux), for per-source behaviour such as the failed-auth limit.
func (h *Harness) FromSource(ip string) *Harness {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c := *h
	c.Client = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	return &c
}

// New starts the API with the core routes plus extra route tables.
func New(t testing.TB, db *store.DB, opts api.Options, extra ...[]api.Route) *Harness {
	t.Helper()
	opts.Store = db
	if opts.Ready == nil {
		opts.Ready = []api.ReadyCheck{db.Ready}
	}
	s := api.New(opts, extra...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &Harness{T: t, DB: db, API: s, Server: srv}
}

// Token mints a token of role in org.
func (h *Harness) Token(orgID string, role domain.Role) string {
	h.T.Helper()
	_, secret, err := h.DB.CreateToken(context.Background(), orgID, "test-"+string(role), role, nil)
	if err != nil {
		h.T.Fatalf("create token: %v", err)
	}
	return secret
}

// Response is a decoded reply.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %d body %q: %v", r.Status, r.Body, err)
	}
}

// Map decodes the body as an object.
func (r Response) Map(t testing.TB) map[string]any {
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// Do sends a request; body may be nil, a []byte or string (sent verbatim), or a value
// marshalled to JSON.
func (h *Harness) Do(method, path, token string, body any) Response {
	h.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			h.T.Fatalf("marshal body: %v", err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, h.Server.URL+path, rd)
	if err != nil {
		h.T.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		h.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Wrap builds a harness around an already-built API server (e.g. the fully wired control
// plane), serving handler on 127.0.0.1.
func Wrap(t testing.TB, db *store.DB, s *api.Server, handler http.Handler) *Harness {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return &Harness{T: t, DB: db, API: s, Server: srv}
}
