package client

import (
	"math/rand/v2"
	"time"
)

// backoff is jittered exponential backoff ("full jitter"): the n-th wait is
// uniform in [base/2, min(max, base·2ⁿ)], so a fleet reconnecting after a
// control-plane restart spreads out instead of arriving at once.
type backoff struct {
	base, max time.Duration
	n         int
}

func (b *backoff) next() time.Duration {
	d := b.base << min(b.n, 20)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.n++
	lo := b.base / 2
	if d <= lo {
		return d
	}
	return lo + rand.N(d-lo)
}

func (b *backoff) reset() { b.n = 0 }
