package auth

import (
	"sync"
	"time"
)

// limiter is an in-memory token bucket per key (an IP, an email). It is per replica: the
// durable defence is the lockout in the database; this one blunts sprays across accounts.
type limiter struct {
	mu      sync.Mutex
	burst   float64
	perSec  float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// newLimiter allows burst attempts at once, refilled at one per every.
func newLimiter(burst int, every time.Duration) *limiter {
	return &limiter{burst: float64(burst), perSec: 1 / every.Seconds(), buckets: map[string]*bucket{}}
}

// allow takes one token for key at now, reporting false when the bucket is empty.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) > 100_000 {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = min(l.burst, b.tokens+el*l.perSec)
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune drops buckets that have refilled completely (they hold no state worth keeping).
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.perSec >= l.burst {
			delete(l.buckets, k)
		}
	}
}
