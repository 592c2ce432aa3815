package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
	"github.com/driftless/driftless/test/hostrecord"
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

func (t pausedAfterFence) MarkHostFence(ctx context.Context, m targets.FenceMark) error {
	err := t.Local.MarkHostFence(ctx, m)
	if m.Event == targets.FenceBegin {
		t.lost.Store(true)
	}
	return err
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

// The fence script (a transport that cannot record the fence in Go on
// the host) and targets.MarkHostFence (the local transport, the agent)
// keep a host's fence alike: the token raised, a lower one refused with
// nothing recorded, the same record lines, the record cut to its newest
// lines once past its size.
func TestHostFenceScriptAndGoAgree(t *testing.T) {
	ctx := context.Background()
	type result struct {
		token   string
		refused bool
		lines   []string
	}
	run := func(t *testing.T, mark func(targets.FenceMark) error) result {
		dir := t.TempDir()
		file := filepath.Join(dir, "prod")
		if err := os.WriteFile(file, []byte("5\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		m := func(event string, token int64) targets.FenceMark {
			return targets.FenceMark{Fence: targets.HostFence{Env: "prod", Token: token, Dir: dir}, Event: event, Op: hostOpApply, Replica: `r "1"`}
		}
		for _, ev := range []targets.FenceMark{m(targets.FenceBegin, 7), m(targets.FenceEnd, 7)} {
			if err := mark(ev); err != nil {
				t.Fatalf("%s: %v", ev.Event, err)
			}
		}
		var res result
		err := mark(m(targets.FenceBegin, 6))
		res.refused = errors.Is(err, targets.ErrHostFenced)
		if err != nil && !res.refused {
			t.Fatalf("stale begin: %v", err)
		}
		token, _ := os.ReadFile(file)
		res.token = string(token)
		// Past its size the record keeps its newest lines.
		old := strings.Repeat("end 1 3 apply \"old\"\n", targets.HostLogMax/20+10)
		f, err := os.OpenFile(file+".log", os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(old); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := mark(m(targets.FenceBegin, 7)); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(file + ".log")
		ev, err := hostrecord.Parse(data)
		if err != nil {
			t.Fatalf("record: %v", err)
		}
		for _, e := range ev {
			res.lines = append(res.lines, fmt.Sprintf("%v %d %s %s", e.Begin, e.Token, e.Op, e.Replica))
		}
		return res
	}
	local := targets.NewLocal("")
	script := run(t, func(m targets.FenceMark) error { return fenceScript(ctx, local, m) })
	native := run(t, func(m targets.FenceMark) error { return local.MarkHostFence(ctx, m) })
	if script.token != "7\n" || !script.refused {
		t.Errorf("fence script: token %q, stale begin refused %v", script.token, script.refused)
	}
	if n := len(script.lines); n != targets.HostLogKeep+1 || script.lines[n-1] != `true 7 apply r "1"` {
		t.Errorf("fence script: record of %d lines, the last %q", n, script.lines[n-1])
	}
	if !reflect.DeepEqual(native, script) {
		t.Errorf("MarkHostFence differs from the fence script: token %q, refused %v, %d lines (last %q)",
			native.token, native.refused, len(native.lines), native.lines[len(native.lines)-1])
	}
}
