package verify

import (
	"testing"

	"github.com/driftless/driftless/targets"
)

// hostTransport is the transport the command tests run through: the real
// local transport, placing the host's files under root.
func hostTransport(t *testing.T, root string) targets.Transport {
	t.Helper()
	tr := targets.NewLocal(root)
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close local transport: %v", err)
		}
	})
	return tr
}
