package agentapi

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// RateLimit is how many calls one source may make: Burst at once, then PerSecond.
// The zero value is no limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// ParseRateLimit reads "RATE/s,BURST" (e.g. "1/s,60"), or "off" for no limit.
func ParseRateLimit(s string) (RateLimit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return RateLimit{}, nil
	}
	r, b, ok := strings.Cut(s, ",")
	r, perSec := strings.CutSuffix(strings.TrimSpace(r), "/s")
	if !ok || !perSec {
		return RateLimit{}, fmt.Errorf("rate limit %q: want RATE/s,BURST such as 1/s,60, or off", s)
	}
	ps, err := strconv.ParseFloat(r, 64)
	if err != nil || ps <= 0 || math.IsInf(ps, 0) || math.IsNaN(ps) {
		return RateLimit{}, fmt.Errorf("rate limit %q: rate must be a positive number per second", s)
	}
	burst, err := strconv.Atoi(strings.TrimSpace(b))
	if err != nil || burst < 1 {
		return RateLimit{}, fmt.Errorf("rate limit %q: burst must be a positive whole number", s)
	}
	return RateLimit{PerSecond: ps, Burst: burst}, nil
}

func (l RateLimit) off() bool { return l.PerSecond <= 0 }

// sourceLimiter keeps one token bucket per source: the enrollment port takes calls from
// anyone (no client certificate), so a flood from one address must not starve the CA and
// the database for everyone else. IPv6 sources are grouped by /64, which one host or one
// office usually holds whole.
type sourceLimiter struct {
	limit RateLimit
	mu    sync.Mutex
	by    map[netip.Prefix]*sourceBucket
	swept time.Time
}

type sourceBucket struct {
	l    *rate.Limiter
	last time.Time
}

// maxSources bounds the map: past it, buckets idle for a minute are dropped early.
const maxSources = 100_000

func newSourceLimiter(l RateLimit) *sourceLimiter {
	return &sourceLimiter{limit: l, by: map[netip.Prefix]*sourceBucket{}}
}

// allow takes a token for addr's source at now, or says how long until one is free.
func (s *sourceLimiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	key := sourceOf(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	b := s.by[key]
	if b == nil {
		b = &sourceBucket{l: rate.NewLimiter(rate.Limit(s.limit.PerSecond), s.limit.Burst)}
		s.by[key] = b
	}
	b.last = now
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets that have refilled completely (their source has been quiet long
// enough that forgetting it changes nothing), at most once a minute unless the map is full.
func (s *sourceLimiter) sweep(now time.Time) {
	full := len(s.by) >= maxSources
	if !full && now.Sub(s.swept) < time.Minute {
		return
	}
	s.swept = now
	refill := time.Duration(float64(s.limit.Burst) / s.limit.PerSecond * float64(time.Second))
	if full {
		refill = min(refill, time.Minute)
	}
	for k, b := range s.by {
		if now.Sub(b.last) >= refill {
			delete(s.by, k)
		}
	}
}

func sourceOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

func peerAddr(ctx context.Context) (netip.Addr, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}, false
	}
	if tcp, ok := p.Addr.(*net.TCPAddr); ok {
		return tcp.AddrPort().Addr(), true
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	return ap.Addr(), err == nil
}

// unary refuses calls over the source's limit with ResourceExhausted before any
// work is done; the agent retries with backoff.
func (s *sourceLimiter) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	addr, ok := peerAddr(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no peer address")
	}
	if allowed, wait := s.allow(addr, time.Now()); !allowed {
		return nil, status.Errorf(codes.ResourceExhausted, "too many enrollment requests from this address; retry in %s", wait.Round(time.Second)+time.Second)
	}
	return handler(ctx, req)
}
