package webhook

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the handler's
// tests start HTTP servers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
