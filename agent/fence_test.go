package agent_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// TestFenceMarkOverProtocol: a fence request records the replica's
// event on the host (targets.MarkHostFence): a begin with a stale token
// is refused (targets.ErrHostFenced) with nothing recorded, a begin with
// a higher one raises the host's token and opens the record, an end
// closes it.
func TestFenceMarkOverProtocol(t *testing.T) {
	ctx := context.Background()
	c := servedClient(t)
	dir := filepath.Join(t.TempDir(), "fence")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prod"), []byte("8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := func(event string, token int64) targets.FenceMark {
		return targets.FenceMark{Fence: targets.HostFence{Env: "prod", Token: token, Dir: dir}, Event: event, Op: "apply", Replica: "r1"}
	}
	if err := c.MarkFence(ctx, mark(targets.FenceBegin, 7)); !errors.Is(err, targets.ErrHostFenced) {
		t.Errorf("begin with a stale token = %v; want ErrHostFenced", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "prod.log")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stale begin was recorded (%v)", err)
	}
	for _, m := range []targets.FenceMark{mark(targets.FenceBegin, 9), mark(targets.FenceEnd, 9)} {
		if err := c.MarkFence(ctx, m); err != nil {
			t.Fatalf("%s with a newer token: %v", m.Event, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "prod")); string(b) != "9\n" {
		t.Errorf("host's token = %q; want 9", b)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "prod.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "begin ") || !strings.HasSuffix(lines[0], ` 9 apply "r1"`) ||
		!strings.HasPrefix(lines[1], "end ") || !strings.HasSuffix(lines[1], ` 9 apply "r1"`) {
		t.Errorf("record = %q; want a begin and an end of token 9", b)
	}
}
