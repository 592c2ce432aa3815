package reconciler

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/config"
	"github.com/driftless/driftless/internal/kit"
	"github.com/driftless/driftless/reconciler/status"
)

func TestDriftModes(t *testing.T) {
	cases := []struct {
		envMode, resMode string
		wantMode         string
		corrected        bool
	}{
		{"", "", "enforce", true},
		{"enforce", "", "enforce", true},
		{"warn", "", "warn", false},
		{"enforce", "warn", "warn", false},
		{"warn", "enforce", "enforce", true},
		{"enforce", "ignore", "ignore", false},
	}
	for _, tc := range cases {
		t.Run(tc.envMode+"/"+tc.resMode, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			res := etc + fileRes("/etc/a.conf", "declared")
			if tc.resMode != "" {
				res += "      drift: " + tc.resMode + "\n"
			}
			extra := ""
			if tc.envMode != "" {
				extra = "drift: " + tc.envMode
			}
			rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, extra)})
			if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
				t.Fatal(err)
			}
			f.writeHostFile("h1", "/etc/a.conf", "changed behind its back")
			if err := f.r.Sync(ctx, "prod"); err != nil {
				t.Fatal(err)
			}
			got := f.hostFile("h1", "/etc/a.conf")
			if (got == "declared") != tc.corrected {
				t.Fatalf("after the drift pass: %q (corrected want %v)", got, tc.corrected)
			}
			gauge := testutil.ToFloat64(f.r.m.drift.WithLabelValues("prod", "h1", "file", tc.wantMode))
			st, _ := f.r.Environment("prod")
			switch tc.wantMode {
			case "enforce":
				if gauge != 0 || st.DriftResources != 0 || st.State != status.StateSynced {
					t.Errorf("enforce: gauge %v, status %+v", gauge, st)
				}
				hist, _ := f.r.History("prod", 1)
				if hist[0].Trigger != status.TriggerSync || hist[0].Result != status.ResultSuccess || hist[0].Changes != 1 {
					t.Errorf("correction run = %+v", hist[0])
				}
				_ = f.r.Close()
				if rep, ok := f.rep.find(status.StatusDrift); !ok || !strings.Contains(rep.Description, "1 resource(s) corrected: h1:file:/etc/a.conf") {
					t.Errorf("drift report = %+v %v", rep, ok)
				}
			case "warn":
				if gauge != 1 || st.DriftResources != 1 || st.State != status.StateDrifted {
					t.Errorf("warn: gauge %v, status %+v", gauge, st)
				}
				_ = f.r.Close()
				rep, ok := f.rep.find(status.StatusDrift)
				if !ok || !strings.Contains(rep.Description, "1 resource(s) drifted: h1:file:/etc/a.conf") {
					t.Errorf("drift report = %+v %v", rep, ok)
				}
				// Put right by hand: the drift is gone at the next pass.
				f.writeHostFile("h1", "/etc/a.conf", "declared")
				if err := f.r.Sync(ctx, "prod"); err != nil {
					t.Fatal(err)
				}
				st, _ = f.r.Environment("prod")
				if st.DriftResources != 0 || st.State != status.StateSynced || testutil.ToFloat64(f.r.m.driftOldest.WithLabelValues("prod")) != 0 {
					t.Errorf("after the fix: %+v", st)
				}
			case "ignore":
				if gauge != 1 || st.DriftResources != 0 {
					t.Errorf("ignore: gauge %v, status %+v", gauge, st)
				}
				if _, ok := f.rep.find(status.StatusDrift); ok {
					t.Error("ignored drift was reported")
				}
			}
		})
	}
}

func TestDriftModeResolution(t *testing.T) {
	env := &config.Environment{Drift: config.DriftWarn}
	if m := driftMode(env, config.Resource{}); m != config.DriftWarn {
		t.Errorf("inherit from env: %s", m)
	}
	if m := driftMode(env, config.Resource{Drift: config.DriftIgnore}); m != config.DriftIgnore {
		t.Errorf("resource override: %s", m)
	}
	if m := driftMode(&config.Environment{}, config.Resource{}); m != config.DriftEnforce {
		t.Errorf("default: %s", m)
	}
}

func TestPrune(t *testing.T) {
	for _, prune := range []bool{true, false} {
		t.Run("prune="+map[bool]string{true: "true", false: "false"}[prune], func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			extra := ""
			if prune {
				extra = "prune: true"
			}
			f.writeHostFile("h1", "/etc/b.conf", "there before driftless")
			rev1 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
				etc+fileRes("/etc/a.conf", "a")+fileRes("/etc/b.conf", "b")+fileRes("/etc/keep.conf", "k"), extra)})
			if _, err := f.r.ApplyRevision(ctx, rev1); err != nil {
				t.Fatal(err)
			}
			if got := f.hostFile("h1", "/etc/b.conf"); got != "b" {
				t.Fatalf("b.conf = %q", got)
			}
			rev2 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil,
				etc+fileRes("/etc/keep.conf", "k"), extra)})
			runs, err := f.r.ApplyRevision(ctx, rev2)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"/etc/a.conf": "a", "/etc/b.conf": "b", "/etc/keep.conf": "k"}
			wantResult, wantChanges := status.ResultNoop, 0
			if prune {
				// a did not exist before driftless: removed; b is put back as it was.
				want = map[string]string{"/etc/a.conf": "<absent>", "/etc/b.conf": "there before driftless", "/etc/keep.conf": "k"}
				wantResult, wantChanges = status.ResultSuccess, 2
			}
			if runs[0].Result != wantResult || runs[0].Changes != wantChanges {
				t.Errorf("run = %+v", runs[0])
			}
			for p, w := range want {
				if got := f.hostFile("h1", p); got != w {
					t.Errorf("%s = %q, want %q", p, got, w)
				}
			}
			if prune {
				// a was deleted, b restored: each counted as what it was.
				if d, rs := testutil.ToFloat64(f.r.m.changes.WithLabelValues("prod", "file", "delete")),
					testutil.ToFloat64(f.r.m.changes.WithLabelValues("prod", "file", "restore")); d != 1 || rs != 1 {
					t.Errorf("prune counted %v delete(s) and %v restore(s); want 1 and 1", d, rs)
				}
				if _, ok, _ := f.store.FirstManaged("prod", "h1", "file:/etc/b.conf"); ok {
					t.Error("first-managed record kept after prune")
				}
			}
		})
	}
}

func TestRequiresOrderAndNotify(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cmd := func(name, after string) string {
		s := "    - command: " + name + "\n      run: \"mkdir -p $DRIFTLESS_ROOT && echo " + name + " >> $DRIFTLESS_ROOT/order.log && touch $DRIFTLESS_ROOT/" + name + ".done\"\n" +
			"      creates: /" + name + ".done\n"
		if after != "" {
			s += "      requires: [\"command:" + after + "\"]\n"
		}
		return s
	}
	mk := func(a, b string) string {
		// Declared in the opposite order of what requires says.
		return cmd("third", "second") + cmd("second", "first") + cmd("first", "") + etc +
			fileRes("/etc/a.conf", a) + "      notify: [\"service:app\"]\n" +
			fileRes("/etc/b.conf", b) + "      notify: [\"service:app\"]\n" +
			"    - service: app\n      unit: \"[Service]\\n\"\n"
	}
	rev1 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, mk("a1", "b1"), "")})
	if _, err := f.r.ApplyRevision(ctx, rev1); err != nil {
		t.Fatal(err)
	}
	if got := f.hostFile("h1", "/order.log"); got != "first\nsecond\nthird\n" {
		t.Errorf("order.log = %q", got)
	}
	// The service is created after the two files that notify it: its
	// apply already runs with them, so no restart follows at once.
	if got := f.hostFile("h1", "/var/log/refresh.log"); got != "<absent>" {
		t.Errorf("refresh.log after rev1 = %q; the unit's first apply was followed by a restart", got)
	}
	rev2 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, mk("a1", "b2"), "")})
	if _, err := f.r.ApplyRevision(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	// A changed file notifies the unchanged service: it restarts once.
	if got := f.hostFile("h1", "/var/log/refresh.log"); got != "restart app\n" {
		t.Errorf("refresh.log after rev2 = %q", got)
	}
	// Nothing changed: nothing is refreshed.
	if _, err := f.r.ApplyRevision(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	if got := f.hostFile("h1", "/var/log/refresh.log"); got != "restart app\n" {
		t.Errorf("refresh.log after a no-op = %q", got)
	}
}

func TestApplyOrder(t *testing.T) {
	r := func(id string, req ...string) config.Resource {
		k, n, _ := strings.Cut(id, ":")
		return config.Resource{Kind: k, Name: n, Requires: req}
	}
	ids := func(rs []config.Resource) []string {
		var out []string
		for _, x := range rs {
			out = append(out, x.ID())
		}
		return out
	}
	cases := []struct {
		name    string
		in      []config.Resource
		want    []string
		wantErr string
	}{
		{"declared order kept", []config.Resource{r("file:/a"), r("file:/b"), r("file:/c")}, []string{"file:/a", "file:/b", "file:/c"}, ""},
		{"requires first", []config.Resource{r("file:/a", "directory:/d"), r("file:/b"), r("directory:/d")}, []string{"file:/b", "directory:/d", "file:/a"}, ""},
		{"chain", []config.Resource{r("x:3", "x:2"), r("x:2", "x:1"), r("x:1")}, []string{"x:1", "x:2", "x:3"}, ""},
		{"cycle", []config.Resource{r("x:1", "x:2"), r("x:2", "x:1"), r("x:3")}, nil, "cycle among x:1, x:2"},
		{"unknown", []config.Resource{r("x:1", "x:9")}, nil, "x:1 requires x:9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := applyOrder(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(ids(got), c.want) {
				t.Fatalf("order = %v, %v; want %v", ids(got), err, c.want)
			}
		})
	}
}

func TestDriftOldestSeconds(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := newFixture(t, func(o *Options) { o.Clock = kit.NowFunc(clock) })
	ctx := context.Background()
	res := etc + fileRes("/etc/a.conf", "a") + "      drift: warn\n" + fileRes("/etc/b.conf", "b") + "      drift: warn\n"
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, "")})
	if _, err := f.r.ApplyRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	oldest := func() float64 { return testutil.ToFloat64(f.r.m.driftOldest.WithLabelValues("prod")) }
	steps := []struct {
		name    string
		do      func()
		advance time.Duration
		want    float64
	}{
		{"a drifts", func() { f.writeHostFile("h1", "/etc/a.conf", "x") }, 0, 0},
		{"90 s later", func() {}, 90 * time.Second, 90},
		{"b drifts too: a is still the oldest", func() { f.writeHostFile("h1", "/etc/b.conf", "y") }, 30 * time.Second, 120},
		{"a is put right: b, seen 10 s ago, is the oldest", func() { f.writeHostFile("h1", "/etc/a.conf", "a") }, 10 * time.Second, 10},
		{"b is put right", func() { f.writeHostFile("h1", "/etc/b.conf", "b") }, 10 * time.Second, 0},
	}
	for _, s := range steps {
		s.do()
		advance(s.advance)
		if err := f.r.Sync(ctx, "prod"); err != nil {
			t.Fatal(err)
		}
		if got := oldest(); got != s.want {
			t.Fatalf("%s: drift_oldest_seconds = %v, want %v", s.name, got, s.want)
		}
	}
}
