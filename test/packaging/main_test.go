package packaging

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the daemon
// tests read a child process's output and talk HTTP to it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
