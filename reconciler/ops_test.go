package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/config"
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
	if err := f.r.Rollback(ctx, "nope", rev1.Commit); !errors.Is(err, ErrUnknownEnvironment) {
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
	if hist[0].Trigger != TriggerRollback || hist[0].Result != ResultSuccess || hist[0].Revision.Dir != saved {
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
	if err := f.r.Sync(ctx, "nope"); !errors.Is(err, ErrUnknownEnvironment) {
		t.Errorf("Sync of an unknown environment = %v", err)
	}
}

func TestInterruptedRolloutRecovered(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := etc + fileRes("/etc/a.conf", "new")
	for _, h := range []string{"h1", "h2"} {
		f.writeHostFile(h, "/etc/a.conf", "old")
	}
	// The daemon is stopped while the first host is being verified.
	f.ver.gate = func(string, string) { cancel() }
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil, res,
		"verify:\n  - command: \"true\"\n")})
	runs, _ := f.r.ApplyRevision(ctx, rev)
	if len(runs) != 1 || runs[0].Result != ResultFailed || !strings.Contains(runs[0].Error, "interrupted") {
		t.Fatalf("runs = %+v", runs)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "new" {
		t.Fatalf("h1 before recovery = %q (the test needs a half-done rollout)", got)
	}
	if j, entries, _ := f.store.OpenJournal("prod"); j == nil || len(entries) != 1 || !entries[0].Applied {
		t.Fatalf("journal = %+v %+v", j, entries)
	}
	// A fresh reconciler on the same store, as after a restart.
	f.ver.gate = nil
	o := f.options()
	o.Registerer = nil
	r2, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		if got := f.hostFile(h, "/etc/a.conf"); got != "old" {
			t.Errorf("%s after recovery = %q", h, got)
		}
	}
	hist, _ := r2.History("prod", 1)
	if hist[0].Trigger != TriggerRecovery || hist[0].Result != ResultRolledBack || hist[0].Changes != 1 {
		t.Fatalf("history = %+v", hist[0])
	}
	if n := testutil.ToFloat64(r2.m.rollbacks.WithLabelValues("prod", "interrupted")); n != 1 {
		t.Errorf("rollbacks{interrupted} = %v", n)
	}
	st, _ := r2.Environment("prod")
	if st.State != StateRolledBack || len(st.Quarantined) != 0 {
		t.Errorf("status = %+v", st)
	}
}

func TestTempCleanupScript(t *testing.T) {
	got := tempCleanup("/sandbox/h1", []JournalEntry{
		{Resource: configResource("file", "/etc/it's.conf")},
		{Resource: configResource("file", "/etc/it's.conf")},
		{Resource: configResource("package", "nginx")},
	})
	want := `for f in '/sandbox/h1/etc/'/'.it'\''s.conf.driftless-'*; do if [ -f "$f" ]; then rm -f -- "$f"; fi; done` + "\n"
	if got != want {
		t.Fatalf("script =\n%s\nwant\n%s", got, want)
	}
}

func configResource(kind, name string) config.Resource {
	return config.Resource{Kind: kind, Name: name}
}

// blockingReporter holds every report until released or its context ends.
type blockingReporter struct {
	release     chan struct{}
	mu          sync.Mutex
	calls, done int
	deadlines   bool
}

func (b *blockingReporter) Report(ctx context.Context, _ Report) {
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
	if err != nil || runs[0].Result != ResultSuccess {
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

func TestRecoveryBlockedWhileHostUnreachable(t *testing.T) {
	f := newFixture(t)
	port := closedPort(t)
	far := config.Host{Name: "far", Address: "127.0.0.1", Port: atoi(t, port), Transport: "ssh"}
	if err := f.store.BeginJournal(Journal{Environment: "prod", Hosts: []config.Host{far}}); err != nil {
		t.Fatal(err)
	}
	res := config.Resource{Kind: "file", Name: "/etc/a.conf", Spec: &config.FileSpec{Content: "new"}}
	if _, err := f.store.RecordSnapshot("prod", JournalEntry{Host: "far", Resource: res}); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Recover(context.Background()); err == nil || !strings.Contains(err.Error(), "connect to far") {
		t.Fatalf("Recover = %v", err)
	}
	if st, _ := f.r.Environment("prod"); st.State != StateFailed || !strings.Contains(st.LastError, "recovery") {
		t.Fatalf("status = %+v", st)
	}
	// Nothing else happens to the environment until the recovery succeeds.
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "a"), "")})
	if _, err := f.r.ApplyRevision(context.Background(), rev); err == nil || !strings.Contains(err.Error(), "recover interrupted rollout") {
		t.Fatalf("apply while blocked = %v", err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "<absent>" {
		t.Fatalf("applied while an interrupted rollout was pending: %q", got)
	}
	if j, _, _ := f.store.OpenJournal("prod"); j == nil {
		t.Fatal("the journal of the unrecovered rollout was dropped")
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIncompleteRollbackFinishedByRecovery(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and chattr to make a folder immutable")
	}
	f := newFixture(t)
	ctx := context.Background()
	etcDir := filepath.Join(f.sandbox, "h1", "etc")
	chattr := func(flag string) error {
		out, err := exec.Command("chattr", flag, etcDir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("chattr %s: %v: %s", flag, err, out)
		}
		return nil
	}
	rev1 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "one"), "")})
	if _, err := f.r.ApplyRevision(ctx, rev1); err != nil {
		t.Fatal(err)
	}
	// While rev2 is verified, its folder becomes immutable: the check
	// fails and the restore of a.conf fails too.
	f.ver.gate = func(string, string) {
		if err := chattr("+i"); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { _ = chattr("-i") })
	rev2 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, etc+fileRes("/etc/a.conf", "two"),
		"verify:\n  - command: \"false\"\n")})
	runs, _ := f.r.ApplyRevision(ctx, rev2)
	if runs[0].Result != ResultRolledBack || !strings.Contains(runs[0].Error, "restore file:/etc/a.conf") {
		t.Skipf("the immutable folder did not make the restore fail here: %+v", runs[0])
	}
	if j, _, _ := f.store.OpenJournal("prod"); j == nil {
		t.Fatal("journal closed although the rollback is incomplete")
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "two" {
		t.Fatalf("a.conf = %q", got)
	}
	f.ver.gate = nil
	if err := chattr("-i"); err != nil {
		t.Fatal(err)
	}
	// The next run of the environment first finishes the rollback.
	if err := f.r.Sync(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "one" {
		t.Fatalf("a.conf after recovery = %q", got)
	}
	if j, _, _ := f.store.OpenJournal("prod"); j != nil {
		t.Fatal("journal still open")
	}
	hist, _ := f.r.History("prod", 0)
	var triggers []string
	for _, r := range hist {
		triggers = append(triggers, r.Trigger+"/"+r.Result)
	}
	if !strings.Contains(strings.Join(triggers, " "), "recovery/rolled_back") {
		t.Fatalf("history = %v", triggers)
	}
}
