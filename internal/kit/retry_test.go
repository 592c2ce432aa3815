package kit

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// fastBackoff keeps retried tests quick while still waiting between attempts.
var fastBackoff = Backoff{Attempts: 3, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		errs      []error
		timeout   time.Duration
		wantCalls int
		wantErr   bool
		minTime   time.Duration
	}{
		{"success at once", []error{nil}, time.Second, 1, false, 0},
		{"third attempt succeeds", []error{boom, boom, nil}, time.Second, 3, false, 0},
		{"attempts run out", []error{boom, boom, boom, nil}, time.Second, 3, true, 0},
		{"permanent is not retried", []error{Permanent(boom), nil}, time.Second, 1, true, 0},
		{"retry-after is honoured", []error{RetryAfter(boom, 300*time.Millisecond), nil}, 5 * time.Second, 2, false, 300 * time.Millisecond},
		{"retry-after past the deadline gives up", []error{RetryAfter(boom, time.Hour), nil}, time.Second, 1, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			calls := 0
			start := time.Now()
			err := fastBackoff.Do(ctx, func(context.Context) error {
				calls++
				return tt.errs[calls-1]
			})
			if calls != tt.wantCalls || (err != nil) != tt.wantErr {
				t.Errorf("calls %d, err %v; want %d calls, error %v", calls, err, tt.wantCalls, tt.wantErr)
			}
			if err != nil && !errors.Is(err, boom) {
				t.Errorf("error %v does not wrap the last failure", err)
			}
			if d := time.Since(start); d < tt.minTime || d > tt.timeout {
				t.Errorf("took %v, want between %v and %v", d, tt.minTime, tt.timeout)
			}
		})
	}
}
