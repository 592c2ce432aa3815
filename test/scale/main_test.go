package scale

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the benchmark leaves no goroutine behind: every SSH
// connection of the pool must be closed and every sampler stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
