package reconciler

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// dirRevisions finds earlier checkouts in a folder of kept copies, as the
// Git source does by checking a commit out again.
type dirRevisions map[string]string

func (d dirRevisions) Checkout(_ context.Context, rev sources.Revision) (sources.Revision, error) {
	dir, ok := d[rev.Commit]
	if !ok {
		return sources.Revision{}, errors.New("commit not found")
	}
	rev.Dir = dir
	return rev, nil
}

func TestManualRollback(t *testing.T) {
	keep := dirRevisions{}
	f := newFixture(t, func(o *Options) { o.Revisions = keep })
	ctx := context.Background()
	mk := func(v string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", v), "")})
	}
	rev1, rev2 := mk("one"), mk("two")
	for _, rev := range []sources.Revision{rev1, rev2} {
		if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	// The checkout of rev1 is gone; only the lookup can bring it back.
	saved := rev1.Dir + ".kept"
	if err := os.Rename(rev1.Dir, saved); err != nil {
		t.Fatal(err)
	}
	errCases := []struct{ to, want string }{
		{"abc", "too short"},
		{strings.Repeat("f", 40), "no successful run"},
		{rev1.Commit[:12], "commit not found"},
	}
	for _, c := range errCases {
		if err := f.r.Rollback(ctx, "prod", c.to); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Rollback(%s) = %v, want %q", c.to, err, c.want)
		}
	}
	if err := f.r.Rollback(ctx, "nope", rev1.Commit); !errors.Is(err, status.ErrUnknownEnvironment) {
		t.Errorf("Rollback of an unknown environment = %v", err)
	}
	keep[rev1.Commit] = saved
	if err := f.r.Rollback(ctx, "prod", rev1.Commit[:12]); err != nil {
		t.Fatal(err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "one" {
		t.Fatalf("after rollback: %q", got)
	}
	st, _ := f.r.Environment("prod")
	if st.Applied != rev1.Commit {
		t.Fatalf("applied = %s", st.Applied)
	}
	hist, _ := f.r.History("prod", 1)
	if hist[0].Trigger != status.TriggerRollback || hist[0].Result != status.ResultSuccess || hist[0].Revision.Dir != saved {
		t.Fatalf("history = %+v", hist[0])
	}
	if n := testutil.ToFloat64(f.r.m.rollbacks.WithLabelValues("prod", "manual")); n != 1 {
		t.Errorf("rollbacks{manual} = %v", n)
	}
	// A sync keeps the rolled-back revision: it is the target until a newer commit.
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "one" {
		t.Fatalf("after sync: %q", got)
	}
	if err := f.r.Sync(ctx, "nope"); !errors.Is(err, status.ErrUnknownEnvironment) {
		t.Errorf("Sync of an unknown environment = %v", err)
	}
}

// blockingReporter holds every report until released or its context ends.
type blockingReporter struct {
	release     chan struct{}
	mu          sync.Mutex
	calls, done int
	deadlines   bool
}

func (b *blockingReporter) Report(ctx context.Context, _ status.Report) {
	_, has := ctx.Deadline()
	b.mu.Lock()
	b.calls++
	b.deadlines = has
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	b.mu.Lock()
	b.done++
	b.mu.Unlock()
}

func TestSlowReporterDoesNotBlockRollout(t *testing.T) {
	br := &blockingReporter{release: make(chan struct{})}
	f := newFixture(t, func(o *Options) { o.Reporters = append(o.Reporters, br) })
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "a"), "")})
	runs, err := f.r.ApplyRevision(context.Background(), rev)
	if err != nil || runs[0].Result != status.ResultSuccess {
		t.Fatalf("runs = %+v %v", runs, err)
	}
	br.mu.Lock()
	done := br.done
	br.mu.Unlock()
	if done != 0 {
		t.Fatalf("a held report finished before release: %d", done)
	}
	close(br.release)
	_ = f.r.Close()
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.calls != 2 || br.done != 2 || !br.deadlines {
		t.Fatalf("reporter calls %d, done %d, deadlines %v", br.calls, br.done, br.deadlines)
	}
}
