package uplink

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays with full jitter: the delay before
// retry number attempt (0 for the first retry) is uniform in
// [0, min(Max, Min*2^attempt)].
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a uniform integer in [0, n) for n > 0; nil means
	// math/rand/v2.Int64N.
	Rand func(n int64) int64
}

// Ceiling returns min(Max, Min*2^attempt), the largest delay of that
// attempt; a negative attempt counts as 0.
func (b Backoff) Ceiling(attempt int) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	if b.Min <= 0 {
		return max(b.Max, 0)
	}
	c := b.Min
	for range attempt {
		if c >= b.Max || c > (1<<62)/2 { // capped, or doubling would overflow
			break
		}
		c *= 2
	}
	return min(c, b.Max)
}

// Delay returns a random delay in [0, Ceiling(attempt)].
func (b Backoff) Delay(attempt int) time.Duration {
	c := b.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	rnd := b.Rand
	if rnd == nil {
		rnd = rand.Int64N
	}
	return time.Duration(rnd(int64(c) + 1))
}

// clock is the uplink's time source; tests replace it.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
