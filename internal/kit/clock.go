package kit

import (
	"context"
	"time"
)

// Clock is the time source of whatever waits or stamps times, so that
// tests need not sleep.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx ends, whichever comes first, and
	// returns ctx's error in the second case.
	Sleep(ctx context.Context, d time.Duration) error
}

// Wall is the real clock.
type Wall struct{}

// Now is time.Now.
func (Wall) Now() time.Time { return time.Now() }

// Sleep waits for d on a timer, or until ctx ends.
func (Wall) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NowFunc is a Clock reading the time from a function (a test's fixed or
// stepped time) and sleeping on the wall clock.
type NowFunc func() time.Time

// Now calls f.
func (f NowFunc) Now() time.Time { return f() }

// Sleep is Wall's.
func (NowFunc) Sleep(ctx context.Context, d time.Duration) error { return Wall{}.Sleep(ctx, d) }
