package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/targets"
)

// countingNative is the local transport applying natively with the
// kinds' own code in process, counting its native calls and its scripts.
type countingNative struct {
	*targets.Local
	calls, steps, scripts *atomic.Int64
}

func (c countingNative) ApplyNative(ctx context.Context, steps []targets.Step) (int, error) {
	c.calls.Add(1)
	c.steps.Add(int64(len(steps)))
	return c.Local.ApplyNative(ctx, steps)
}

func (c countingNative) Run(ctx context.Context, script string, stdin []byte) (targets.Result, error) {
	c.scripts.Add(1)
	return c.Local.Run(ctx, script, stdin)
}

type nativeDialer struct{ calls, steps, scripts *atomic.Int64 }

func (d nativeDialer) Transport(_ context.Context, h *config.Host) (targets.Transport, error) {
	return countingNative{targets.NewLocal(h.Root), d.calls, d.steps, d.scripts}, nil
}

// TestNativeStepsJoined applies a revision of twenty directories through
// a transport that applies natively: they reach the host in one call and
// no script; a failure in the middle stops the call there, and the
// rollback restores the directories made before it, again in one call.
func TestNativeStepsJoined(t *testing.T) {
	d := nativeDialer{new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)}
	f := newFixture(t, func(o *Options) { o.Dialer = d })
	const n = 20
	env := func(count int) string {
		var b strings.Builder
		b.WriteString("environment: prod\nhosts:\n  - name: h1\n    transport: local\n    resources:\n")
		for i := range count {
			fmt.Fprintf(&b, "      - directory: /srv/d%02d\n        mode: \"0750\"\n", i)
		}
		return b.String()
	}
	apply := func(count int) store.Run {
		t.Helper()
		runs, err := f.r.ApplyRevision(context.Background(), f.revision(map[string]string{"environments/prod.yaml": env(count)}))
		if len(runs) != 1 {
			t.Fatalf("runs %+v: %v", runs, err)
		}
		return runs[0]
	}
	if run := apply(n); run.Result != status.ResultSuccess || run.Changes != n {
		t.Fatalf("run %+v", run)
	}
	if c, s := d.calls.Load(), d.steps.Load(); c != 1 || s != n {
		t.Errorf("%d directories were applied in %d native calls of %d steps, want 1 call of %d", n, c, s, n)
	}
	if s := d.scripts.Load(); s != 0 {
		t.Errorf("the apply ran %d scripts, want none", s)
	}
	host := filepath.Join(f.sandbox, "h1")
	dir := func(i int) string { return filepath.Join(host, fmt.Sprintf("srv/d%02d", i)) }
	for i := range n {
		fi, err := os.Stat(dir(i))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
			t.Fatalf("d%02d: %v %v", i, fi, err)
		}
	}
	// Twenty more, the sixth of them in the way of a file: the call stops
	// there and the rollback removes the five made before it, in one call.
	if err := os.WriteFile(dir(n+5), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	calls := d.calls.Load()
	run := apply(2 * n)
	if run.Result != status.ResultRolledBack || !strings.Contains(run.Error, fmt.Sprintf("directory:/srv/d%02d", n+5)) {
		t.Fatalf("run %s: %s", run.Result, run.Error)
	}
	if c := d.calls.Load() - calls; c != 2 {
		t.Errorf("the failed apply and its rollback made %d native calls, want 2", c)
	}
	for i := range 2 * n {
		_, err := os.Stat(dir(i))
		if want := i < n || i == n+5; (err == nil) != want {
			t.Errorf("d%02d after the rollback: %v, want there: %v", i, err, want)
		}
	}
	if b, err := os.ReadFile(dir(n + 5)); err != nil || string(b) != "data\n" {
		t.Errorf("the file in the way: %q %v", b, err)
	}
}
