package reconciler

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/sources"
)

// TestEnvironmentRemovedFromItsSource: a revision of the same source that
// no longer declares an environment retires it (no drift correction, no
// sync, its drift series gone, still removed after a restart); a revision
// of another source does not; declaring it again brings it back.
func TestEnvironmentRemovedFromItsSource(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.DriftInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	revs := make(chan sources.Revision)
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx, revs) }()
	stopped := false
	defer func() {
		if !stopped { // a failure before the restart
			cancel()
			<-done
		}
	}()

	app := envYAML("app", []string{"a1"}, nil, etc+fileRes("/etc/app.conf", "app"), "")
	db := envYAML("db", []string{"d1"}, nil, etc+fileRes("/etc/db.conf", "db"), "")
	both := f.revision(map[string]string{"environments/app.yaml": app, "environments/db.yaml": db})
	revs <- both
	eventually(t, "both applied", func() bool { return f.applied("app") == both.Commit && f.applied("db") == both.Commit })

	// Another source's revision declares only its own environment.
	other := f.revision(map[string]string{"environments/web.yaml": envYAML("web", []string{"w1"}, nil, etc+fileRes("/etc/web.conf", "web"), "")})
	other.Source = "other-repo"
	revs <- other
	eventually(t, "web applied", func() bool { return f.applied("web") == other.Commit })

	onlyApp := f.revision(map[string]string{"environments/app.yaml": app})
	revs <- onlyApp
	eventually(t, "db removed", func() bool {
		st, _ := f.r.Environment("db")
		info := testutil.ToFloat64(f.r.m.envInfo.WithLabelValues("db", kit.Short(both.Commit), status.StateRemoved))
		return st.State == status.StateRemoved && info == 1 // the record is visible a moment before the metric
	})
	for _, env := range []string{"app", "web"} {
		if st, _ := f.r.Environment(env); st.State == status.StateRemoved {
			t.Fatalf("%s removed by a revision that declares it or comes from another source", env)
		}
	}
	if err := f.r.Sync(ctx, "db"); !errors.Is(err, status.ErrRemovedEnvironment) {
		t.Fatalf("sync of a removed environment: %v", err)
	}
	// Its drift and host gauges are gone (no alert fires for it); its info
	// (status "removed", waited for above) and last-applied time stay.
	if got := seriesOf(t, f, "db"); !slices.Equal(got, []string{"driftless_environment_info", "driftless_last_applied_timestamp_seconds"}) {
		t.Fatalf("gauges of the removed environment: %v", got)
	}

	// Drift on the removed environment's host stays; the others' is corrected.
	f.writeHostFile("d1", "/etc/db.conf", "by hand")
	f.writeHostFile("a1", "/etc/app.conf", "by hand")
	eventually(t, "app's drift corrected", func() bool { return f.hostFile("a1", "/etc/app.conf") == "app" })
	noops := func() float64 {
		return testutil.ToFloat64(f.r.m.reconcileTotal.WithLabelValues("app", status.ResultNoop))
	}
	n := noops()
	eventually(t, "two more drift passes of app", func() bool { return noops() >= n+2 })
	if got := f.hostFile("d1", "/etc/db.conf"); got != "by hand" {
		t.Fatalf("the removed environment was still reconciled: %q", got)
	}

	// A restart keeps it removed.
	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := f.r.Close(); err != nil {
		t.Fatal(err)
	}
	f.reg = prometheus.NewRegistry()
	o := f.options()
	o.DriftInterval = 20 * time.Millisecond
	var err error
	if f.r, err = New(o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	revs2 := runDaemon(t, f)
	if st, _ := f.r.Environment("db"); st.State != status.StateRemoved {
		t.Fatalf("after a restart db is %s", st.State)
	}
	time.Sleep(100 * time.Millisecond) // several drift intervals
	if got := f.hostFile("d1", "/etc/db.conf"); got != "by hand" {
		t.Fatalf("the removed environment was reconciled after a restart: %q", got)
	}

	// Declared again: reconciled again.
	again := f.revision(map[string]string{"environments/app.yaml": app, "environments/db.yaml": db})
	revs2 <- again
	eventually(t, "db applied again", func() bool { return f.applied("db") == again.Commit })
	if st, _ := f.r.Environment("db"); st.State != status.StateSynced || f.hostFile("d1", "/etc/db.conf") != "db" {
		t.Fatalf("db declared again: %s, %q", st.State, f.hostFile("d1", "/etc/db.conf"))
	}
	if err := f.r.Sync(ctx, "db"); err != nil {
		t.Fatalf("sync after declaring it again: %v", err)
	}
}

// seriesOf lists the gauges that still have a series of env.
func seriesOf(t *testing.T, f *fixture, env string) []string {
	t.Helper()
	fams, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range fams {
		if mf.GetType() != dto.MetricType_GAUGE {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "environment" && l.GetValue() == env {
					out = append(out, mf.GetName())
				}
			}
		}
	}
	return slices.Compact(out)
}
