package agentapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/lanyardhq/lanyard/controlplane/store"
	"github.com/lanyardhq/lanyard/pki/identity"
)

// revocations is the in-memory set of revoked agents, so the handshake and every message
// are checked without a database round trip. It is filled at start, then kept current by
// local revocations, NOTIFY from other replicas and a poll.
type revocations struct {
	mu    sync.RWMutex
	ids   map[string]struct{}
	since time.Time
	// loaded is false until the first successful read: until then no agent is let in, so
	// a database outage at start never admits a revoked agent.
	loaded atomic.Bool
}

func newRevocations() *revocations { return &revocations{ids: map[string]struct{}{}} }

func (r *revocations) load(ctx context.Context, db *store.DB) error {
	_, err := r.refresh(ctx, db)
	return err
}

// refresh adds agents revoked since the last refresh and returns them.
func (r *revocations) refresh(ctx context.Context, db *store.DB) ([]string, error) {
	r.mu.RLock()
	since := r.since
	r.mu.RUnlock()
	// Re-read a small overlap: clocks of replicas differ a little.
	if !since.IsZero() {
		since = since.Add(-time.Minute)
	}
	ids, latest, err := db.RevokedAgentsSince(ctx, since)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var fresh []string
	for _, id := range ids {
		if _, ok := r.ids[id]; !ok {
			r.ids[id] = struct{}{}
			fresh = append(fresh, id)
		}
	}
	if latest.After(r.since) {
		r.since = latest
	}
	r.loaded.Store(true)
	return fresh, nil
}

func (r *revocations) add(ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.ids[id] = struct{}{}
	}
}

func (r *revocations) has(id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.ids[id]
	return ok
}

var errRevoked = status.Error(codes.Unauthenticated, "agent certificate revoked")

// verifyConnection runs on every handshake (resumptions included): the verified client
// certificate must carry an agent identity that is not revoked.
func (s *Server) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return errors.New("agentapi: no verified client certificate")
	}
	id, err := identity.FromCertificate(cs.VerifiedChains[0][0])
	if err != nil {
		return err
	}
	if !s.revoked.loaded.Load() {
		return errors.New("agentapi: revocation list not loaded yet (database unavailable)")
	}
	if s.revoked.has(id.AgentID) {
		return errors.New("agentapi: agent certificate revoked")
	}
	return nil
}

type callerKey struct{}

// caller is the authenticated agent of an RPC.
type caller struct {
	identity.Agent
	Leaf *x509.Certificate
}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// authenticate extracts and checks the agent identity of ctx's peer.
func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ctx, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ctx, status.Error(codes.Unauthenticated, "a verified client certificate is required")
	}
	leaf := ti.State.VerifiedChains[0][0]
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return ctx, status.Error(codes.Unauthenticated, "the client certificate carries no agent identity")
	}
	if time.Now().After(leaf.NotAfter) {
		return ctx, status.Error(codes.Unauthenticated, "client certificate expired")
	}
	if !s.revoked.loaded.Load() {
		return ctx, status.Error(codes.Unavailable, "revocation list not loaded yet")
	}
	if s.revoked.has(id.AgentID) {
		return ctx, errRevoked
	}
	return context.WithValue(ctx, callerKey{}, caller{Agent: id, Leaf: leaf}), nil
}

func (s *Server) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return h(srv, &checkedStream{ServerStream: ss, ctx: ctx, s: s})
}

// checkedStream re-checks revocation on every message received.
type checkedStream struct {
	grpc.ServerStream
	ctx context.Context
	s   *Server
}

func (c *checkedStream) Context() context.Context { return c.ctx }

func (c *checkedStream) RecvMsg(m any) error {
	if err := c.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if c.s.revoked.has(callerFrom(c.ctx).AgentID) {
		return errRevoked
	}
	return nil
}
