package agent_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/driftless/driftless/targets"
)

// TestFenceOverProtocol: write and apply requests carry the daemon's
// fencing token (targets.WithHostFence), and the agent refuses the whole
// request, writing nothing, when the host's fence file holds a higher
// token; the client reports it as targets.ErrHostFenced. The owner of
// the host's token writes.
func TestFenceOverProtocol(t *testing.T) {
	ctx := context.Background()
	c := servedClient(t)
	root := t.TempDir()
	fenceDir := filepath.Join(root, "fence")
	if err := os.MkdirAll(fenceDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fenceDir, "prod"), []byte("8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "one")
	stale := targets.WithHostFence(ctx, targets.HostFence{Env: "prod", Token: 7, Dir: fenceDir})
	if n, err := c.WriteFiles(stale, []targets.FileWrite{{Path: file, Data: []byte("stale"), Mode: 0o644}}); n != 0 || !errors.Is(err, targets.ErrHostFenced) {
		t.Errorf("write with a stale token = %d, %v; want 0, ErrHostFenced", n, err)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stale write reached the host (%v)", err)
	}
	if n, err := c.Apply(stale, nil); n != 0 || !errors.Is(err, targets.ErrHostFenced) {
		t.Errorf("apply with a stale token = %d, %v; want 0, ErrHostFenced", n, err)
	}
	owner := targets.WithHostFence(ctx, targets.HostFence{Env: "prod", Token: 8, Dir: fenceDir})
	if n, err := c.WriteFiles(owner, []targets.FileWrite{{Path: file, Data: []byte("new"), Mode: 0o644}}); n != 1 || err != nil {
		t.Fatalf("write with the host's token = %d, %v", n, err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "new" {
		t.Errorf("%s = %q, %v; want new", file, b, err)
	}
}
