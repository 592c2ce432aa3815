package feedback

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// Do calls fn until it succeeds, returns a permanent error, the attempts
// run out or ctx ends. The waits are jittered by up to a quarter so that
// many daemons failing together do not retry in lockstep.
func (b Backoff) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	attempts, wait, maxWait := b.Attempts, b.Initial, b.Max
	if attempts <= 0 {
		attempts = 4
	}
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 10 * time.Second
	}
	var err error
	for i := 1; ; i++ {
		if err = fn(ctx); err == nil || IsPermanent(err) {
			return err
		}
		if i >= attempts {
			return fmt.Errorf("after %d attempts: %w", attempts, err)
		}
		d := min(wait, maxWait)
		d += time.Duration(rand.Int64N(int64(d)/4 + 1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gave up after %d attempts: %w (last error: %w)", i, ctx.Err(), err)
		case <-t.C:
		}
		wait *= 2
	}
}
