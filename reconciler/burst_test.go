package reconciler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/store"
	"github.com/driftless/driftless/sources"
)

// TestBurstOfMixedRequests: revisions, syncs, rollbacks, drift ticks and a
// retirement (and the revision that declares the environment again) sent
// to one environment at once from many goroutines leave it consistent: the
// last revision is applied on every host, the store names it, no journal
// is open and every run in history has ended. Run it under -race.
func TestBurstOfMixedRequests(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.DriftInterval = 20 * time.Millisecond })
	revs := runDaemon(t, f)
	hosts := []string{"h1", "h2"}
	mk := func(content string) sources.Revision {
		return f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", hosts, nil, etc+fileRes("/etc/app.conf", content), "")})
	}
	versions := []sources.Revision{mk("v1\n"), mk("v2\n"), mk("v3\n")}
	// The same source, with prod no longer declared: prod is retired.
	gone := f.revision(map[string]string{"environments/other.yaml": envYAML("other", []string{"o1"}, nil, etc+fileRes("/etc/other.conf", "x\n"), "")})
	revs <- versions[0]
	eventually(t, "the first revision applied", func() bool {
		st, _ := f.r.Environment("prod")
		return st.Applied == versions[0].Commit
	})

	ctx := context.Background()
	const workers, rounds = 6, 8
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				switch (g + i) % 5 {
				case 0:
					revs <- versions[(g+i)%len(versions)]
				case 1:
					_ = f.r.Sync(ctx, "prod")
				case 2:
					_ = f.r.Rollback(ctx, "prod", "")
				case 3:
					_, _ = f.r.Environment("prod")
					_, _ = f.r.History("prod", 5)
				case 4:
					if g == 0 && i == 4 {
						revs <- gone
						revs <- versions[i%len(versions)]
					}
				}
			}
		}()
	}
	wg.Wait()
	final := mk("final\n")
	revs <- final
	eventually(t, "the final revision applied", func() bool {
		st, _ := f.r.Environment("prod")
		return st.Applied == final.Commit && st.State == status.StateSynced
	})
	for _, h := range hosts {
		if got := f.hostFile(h, "/etc/app.conf"); got != "final\n" {
			t.Errorf("%s: app.conf = %q, want the final revision's", h, got)
		}
	}
	rec, ok, err := f.store.Env("prod")
	if err != nil || !ok || rec.Applied.Commit != final.Commit || rec.LastGood.Commit != final.Commit {
		t.Fatalf("store record: %+v ok=%v err=%v", rec, ok, err)
	}
	if j, _, err := f.store.OpenJournal("prod"); err != nil || j != nil {
		t.Fatalf("journal still open: %+v %v", j, err)
	}
	hist, err := f.store.History("prod", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range hist {
		if run.End.IsZero() || run.Result == "" {
			t.Errorf("run %d never ended: %+v", run.ID, run)
		}
	}
	t.Logf("%d runs recorded: %s", len(hist), summarize(hist))
}

// summarize counts runs by trigger and result.
func summarize(hist []store.Run) string {
	n := map[string]int{}
	for _, r := range hist {
		n[r.Trigger+"/"+r.Result]++
	}
	return fmt.Sprint(n)
}
