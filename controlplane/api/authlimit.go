package api

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// authLimiter counts failed authentications per source IP in a token bucket: Burst
// failures are free, then one more every Every. A source over its budget gets 429 with
// Retry-After instead of 401 for a bad token.
//
// A good token is always checked and admitted, even from a limited source: offices share
// one address behind NAT, and a colleague's broken script must not lock everyone out.
// That leaks nothing worth guessing: tokens are random secrets, so a flood's only effect
// is load and log noise, which the limit answers cheaply (no owner, org or audit lookups).
type authLimiter struct {
	burst float64
	every time.Duration
	now   func() time.Time
	max   int // sources remembered; past it, sources back at full budget are forgotten

	mu      sync.Mutex
	sources map[string]*authBucket
}

type authBucket struct {
	tokens float64
	at     time.Time
	// limited is set while the source is over budget, so the log says so once per episode.
	limited bool
}

func newAuthLimiter(burst int, every time.Duration, now func() time.Time) *authLimiter {
	if burst <= 0 {
		burst = 20
	}
	if every <= 0 {
		every = 3 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &authLimiter{burst: float64(burst), every: every, now: now, max: 10000, sources: map[string]*authBucket{}}
}

// fail records one failed authentication from ip. It returns whether the source is now
// over budget, how many seconds until it may fail again, and whether it just crossed over
// (the caller logs that once).
func (l *authLimiter) fail(ip string) (limited bool, retryAfter int, crossed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.sources[ip]
	if b == nil {
		if len(l.sources) >= l.max {
			l.forgetFull(now)
		}
		for ip := range l.sources { // still full: forget any one, memory stays bounded
			if len(l.sources) < l.max {
				break
			}
			delete(l.sources, ip)
		}
		b = &authBucket{tokens: l.burst, at: now}
		l.sources[ip] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		b.limited = false
		return false, 0, false
	}
	crossed = !b.limited
	b.limited = true
	wait := time.Duration((1 - b.tokens) * float64(l.every))
	return true, int(math.Ceil(wait.Seconds())), crossed
}

func (l *authLimiter) refill(b *authBucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+float64(d)/float64(l.every))
		b.at = now
	}
}

// forgetFull drops the sources whose budget has refilled: they carry no state worth
// keeping, and dropping them bounds memory under a spray of source addresses.
func (l *authLimiter) forgetFull(now time.Time) {
	for ip, b := range l.sources {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.sources, ip)
		}
	}
}

// sourceIP is the peer address without the port. Lanyard does not trust X-Forwarded-For:
// a header any client can set would let a flood pick a fresh "source" per request.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
