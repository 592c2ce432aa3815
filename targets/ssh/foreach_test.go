package ssh_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/targets/ssh"
)

// TestForEachBound checks that ForEach runs exactly n calls at once: the
// first n calls wait for each other at a gate, so a bound below n would
// never open it (the context then ends the test), and the high-water mark
// of calls in flight shows any call beyond n.
func TestForEachBound(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		items int
		want  int
	}{
		{"three of twelve", 3, 12, 3},
		{"one at a time", 1, 5, 1},
		{"default", 0, 2 * ssh.DefaultParallelism, ssh.DefaultParallelism},
		{"more slots than items", 8, 4, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var mu sync.Mutex
			cur, high := 0, 0
			gate := make(chan struct{})
			var once sync.Once
			items := make([]int, tc.items)
			errs := ssh.ForEach(ctx, tc.n, items, func(ctx context.Context, _ int) error {
				mu.Lock()
				cur++
				high = max(high, cur)
				if cur == tc.want {
					once.Do(func() { close(gate) })
				}
				mu.Unlock()
				defer func() {
					mu.Lock()
					cur--
					mu.Unlock()
				}()
				select {
				case <-gate:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("item %d: %v (fewer than %d calls ran at once)", i, err, tc.want)
				}
			}
			if high != tc.want {
				t.Fatalf("%d calls ran at once, want %d", high, tc.want)
			}
		})
	}
}
