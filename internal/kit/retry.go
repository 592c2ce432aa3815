package kit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Backoff retries a call that failed for a reason that may pass (a network
// error, a 5xx, a rate limit), waiting longer after each failure. The zero
// value makes 4 attempts, 500 ms apart at first, never more than 10 s.
type Backoff struct {
	// Attempts is the most calls made, the first included (0: 4).
	Attempts int
	// Initial is the wait after the first failure (0: 500 ms); it doubles each time.
	Initial time.Duration
	// Max caps one wait (0: 10 s).
	Max time.Duration
}

// permanentError marks a failure that another attempt cannot fix, such as
// a 401 or a 422: retrying would only repeat it.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that Backoff.Do returns it at once instead of retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryAfterError carries the wait a server asked for (a Retry-After
// header, a rate limit's reset time).
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter wraps err with the wait the server asked for before another
// attempt; Backoff.Do waits at least that long, or gives up at once when
// the wait would outlast its context.
func RetryAfter(err error, after time.Duration) error {
	if err == nil || after <= 0 {
		return err
	}
	return &retryAfterError{err: err, after: after}
}

// ParseRetryAfter reads a Retry-After header: seconds, or an HTTP date
// (RFC 9110 10.2.3). It returns 0 when the header is absent or malformed.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// The zero Backoff's settings.
const (
	defaultAttempts = 4
	defaultInitial  = 500 * time.Millisecond
	defaultMax      = 10 * time.Second
)

// Delay is the wait after the n-th failure in a row (n from 1): Initial,
// doubled after each further failure, capped at Max, plus a jitter of up
// to a quarter so that many callers failing together do not retry in
// lockstep.
func (b Backoff) Delay(n int) time.Duration {
	wait, maxWait := b.Initial, b.Max
	if wait <= 0 {
		wait = defaultInitial
	}
	if maxWait <= 0 {
		maxWait = defaultMax
	}
	for i := 1; i < n && wait < maxWait; i++ {
		wait *= 2
	}
	d := min(wait, maxWait)
	return d + time.Duration(rand.Int64N(int64(d)/4+1))
}

// Do calls fn until it succeeds, returns a permanent error, the attempts
// run out or ctx ends, waiting Delay between attempts (longer when the
// server asked for it).
func (b Backoff) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	attempts := b.Attempts
	if attempts <= 0 {
		attempts = defaultAttempts
	}
	var err error
	for i := 1; ; i++ {
		if err = fn(ctx); err == nil || IsPermanent(err) {
			return err
		}
		if i >= attempts {
			return fmt.Errorf("after %d attempts: %w", attempts, err)
		}
		d := b.Delay(i)
		var ra *retryAfterError
		if errors.As(err, &ra) && ra.after > d {
			// The server said when; asking sooner would only be refused again.
			d = ra.after
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
				return fmt.Errorf("gave up after %d attempts: the server asks to wait %v, past the deadline: %w", i, d, err)
			}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gave up after %d attempts: %w (last error: %w)", i, ctx.Err(), err)
		case <-t.C:
		}
	}
}
