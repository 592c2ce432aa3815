package sources

import (
	"math/rand/v2"
	"time"
)

// Clock is the time source of the sources: when a revision was produced and
// how long to wait before the next poll. Tests may pass their own.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// After waits for d on a real timer.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// jitter spreads d by ±10% so that many daemons polling the same Git host
// do not all arrive at the same second.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// backoff doubles the wait after each consecutive failure, starting at min
// and never above max, so a broken remote is not hammered but is retried at
// least once per poll interval.
func backoff(failures int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
