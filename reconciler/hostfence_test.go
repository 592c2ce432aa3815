package reconciler

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// lostOwnership owns prod with one fence until lost is set.
type lostOwnership struct{ lost *atomic.Bool }

func (o lostOwnership) Owned(string) (store.Fence, bool) {
	return store.Fence{Key: "k", Token: 7}, !o.lost.Load()
}
func (o lostOwnership) OwnedEnvironments() []string { return []string{"prod"} }
func (o lostOwnership) SetEnvironments([]string)    {}
func (o lostOwnership) Replica() string             { return "a" }

// pausedAfterFence is a local transport whose replica loses its lease
// right after the host fence recorded the start of its writes: the
// replica was paused there and resumed past its lease.
type pausedAfterFence struct {
	*targets.Local
	lost *atomic.Bool
}

func (t pausedAfterFence) Run(ctx context.Context, script string, stdin []byte) (targets.Result, error) {
	res, err := t.Local.Run(ctx, script, stdin)
	if strings.Contains(script, hostFenceDir) && strings.Contains(script, "begin") {
		t.lost.Store(true)
	}
	return res, err
}

type pausedDialer struct{ lost *atomic.Bool }

func (d pausedDialer) Transport(_ context.Context, h *config.Host) (targets.Transport, error) {
	return pausedAfterFence{targets.NewLocal(h.Root), d.lost}, nil
}

// A replica that loses the environment between the host fence and its
// first write writes nothing to the host: each call to the host is made
// only while the worker's fence is still the cluster's.
func TestNoHostWriteAfterOwnershipLost(t *testing.T) {
	lost := new(atomic.Bool)
	f := newFixture(t, func(o *Options) { o.Ownership = lostOwnership{lost}; o.Dialer = pausedDialer{lost} })
	env := "environment: prod\nhosts:\n  - name: h1\n    transport: local\n    resources:\n" +
		"      - directory: /srv\n      - file: /srv/one\n        content: one\n      - symlink: /srv/link\n        target: /srv/one\n"
	runs, err := f.r.ApplyRevision(context.Background(), f.revision(map[string]string{"environments/prod.yaml": env}))
	if err == nil && len(runs) == 1 && runs[0].Result == "success" {
		t.Fatalf("the rollout succeeded after the replica lost the environment: %+v", runs)
	}
	if !lost.Load() {
		t.Fatal("the host was never fenced: the test did not reach the point it is about")
	}
	host := filepath.Join(f.sandbox, "h1")
	for _, p := range []string{"srv", "srv/one", "srv/link"} {
		if _, err := os.Lstat(filepath.Join(host, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was written after the replica lost the environment (%v)", p, err)
		}
	}
}

// A replica paused right before a host write, after its check of
// ownership (which still passes), while a newer owner fenced the host
// with a higher token, is refused by the host: the write request carries
// its token, and nothing of it is written.
func TestHostRefusesStaleTokenAtWrite(t *testing.T) {
	var f *fixture
	var hooked atomic.Int32
	f = newFixture(t, func(o *Options) {
		o.Ownership = lostOwnership{new(atomic.Bool)}
		o.BeforeHostWrite = func(env string) {
			if hooked.Add(1) > 1 {
				return
			}
			// A newer owner (token 8; this replica has 7) fenced the host
			// while this replica was paused here.
			fence := filepath.Join(f.sandbox, "h1", hostFenceDir, env)
			if err := os.WriteFile(fence, []byte("8\n"), 0o644); err != nil {
				t.Errorf("raise the host's fence: %v", err)
			}
		}
	})
	env := "environment: prod\nhosts:\n  - name: h1\n    transport: local\n    resources:\n" +
		"      - directory: /srv\n      - file: /srv/one\n        content: one\n      - symlink: /srv/link\n        target: /srv/one\n"
	runs, err := f.r.ApplyRevision(context.Background(), f.revision(map[string]string{"environments/prod.yaml": env}))
	if hooked.Load() == 0 {
		t.Fatal("no host write was reached: the test did not reach the point it is about")
	}
	if err == nil && len(runs) == 1 && runs[0].Result == "success" {
		t.Fatalf("the rollout succeeded with a stale token: %+v", runs)
	}
	if len(runs) != 1 || runs[0].ErrorClass != "interrupted" || !strings.Contains(runs[0].Error, store.ErrFenced.Error()) {
		t.Errorf("the host's refusal is not a lost ownership (an interruption): %v (runs %+v)", err, runs)
	}
	host := filepath.Join(f.sandbox, "h1")
	for _, p := range []string{"srv", "srv/one", "srv/link"} {
		if _, err := os.Lstat(filepath.Join(host, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was written with a stale token (%v)", p, err)
		}
	}
}
