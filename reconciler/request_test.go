package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// TestRequestsWaitWithTheirContext: the environment's worker is its only
// owner, so a sync sent while a rollout runs waits in the worker's queue,
// and its caller waits with its own context. A caller that gives up gets
// its context's error at once (not when the rollout ends), and its request
// does nothing; a sync still waited for runs after the rollout, and both
// are recorded in history in that order.
func TestRequestsWaitWithTheirContext(t *testing.T) {
	f := newFixture(t)
	entered, release := holdFirstVerify(f, "prod")
	revs := runDaemon(t, f)
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
		etc+fileRes("/etc/app.conf", "v1"), "verify:\n  - command: \"true\"\n")})
	revs <- rev
	<-entered // the rollout is held in its verification

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	abandoned := make(chan error, 1)
	go func() { abandoned <- f.r.Sync(short, "prod") }()
	waited := make(chan error, 1)
	go func() { waited <- f.r.Sync(context.Background(), "prod") }()

	var gaveUp error
	select {
	case gaveUp = <-abandoned:
	case <-time.After(10 * time.Second):
	}
	close(release)
	if !errors.Is(gaveUp, context.DeadlineExceeded) {
		t.Fatalf("sync with a 200 ms context while a rollout is held: %v; want its deadline at once", gaveUp)
	}
	if err := <-waited; err != nil {
		t.Fatalf("sync after the rollout: %v", err)
	}
	hist, err := f.r.History("prod", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(hist) - 1; i >= 0; i-- {
		got = append(got, hist[i].Trigger+"/"+hist[i].Result)
	}
	want := []string{status.TriggerRevision + "/" + status.ResultSuccess, status.TriggerSync + "/" + status.ResultNoop}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("history (oldest first) = %v; want %v (the abandoned sync does nothing)", got, want)
	}
}

// TestWorkerStopsAndStartsAgain: stopping an environment's worker (as a
// cluster member does when it loses the environment) cancels its rollout
// and returns once the worker has written everything it will: the run is
// in history, the journal open for the recovery. The next request starts
// a new worker, whose pass first rolls the interrupted rollout back.
func TestWorkerStopsAndStartsAgain(t *testing.T) {
	f := newFixture(t)
	revs := runDaemon(t, f)
	mk := func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil,
			etc+fileRes("/etc/app.conf", content), "rollout: {batch: 1}\nverify:\n  - command: \"true\"\n")})
	}
	rev1, rev2 := mk("one"), mk("two")
	revs <- rev1
	eventually(t, "the first revision applied", func() bool { return f.applied("prod") == rev1.Commit })
	entered, release := holdFirstVerify(f, "prod")
	revs <- rev2
	<-entered // h1 is on rev2 and verifying; h2 still on rev1
	stopped := make(chan struct{})
	go func() { f.r.stopWorker("prod"); close(stopped) }()
	close(release)
	<-stopped
	hist, err := f.store.History("prod", 1)
	if err != nil || len(hist) != 1 || hist[0].Revision.Commit != rev2.Commit || !strings.Contains(hist[0].Error, "interrupted") {
		t.Fatalf("newest run once the worker stopped: %+v %v; want rev2's, interrupted", hist, err)
	}
	if j, _, err := f.store.OpenJournal("prod"); err != nil || j == nil {
		t.Fatalf("journal once the worker stopped: %+v %v; want it open", j, err)
	}
	if err := f.r.Sync(context.Background(), "prod"); err != nil {
		t.Fatalf("sync on a new worker: %v", err)
	}
	if j, _, err := f.store.OpenJournal("prod"); err != nil || j != nil {
		t.Fatalf("journal after the sync: %+v %v; want it closed", j, err)
	}
	if h1, h2 := f.hostFile("h1", "/etc/app.conf"), f.hostFile("h2", "/etc/app.conf"); h1 != h2 {
		t.Fatalf("hosts on different revisions: h1 %q, h2 %q", h1, h2)
	}
	hist, _ = f.store.History("prod", 0)
	t.Logf("history: %s", summarize(hist))
}
