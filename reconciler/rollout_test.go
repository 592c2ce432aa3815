package reconciler

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftless/driftless/reconciler/status"
	"github.com/driftless/driftless/reconciler/verify"
	"github.com/driftless/driftless/targets"
)

func TestApplyThenNoop(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res := "    - directory: /etc/app\n      mode: \"0755\"\n" + fileRes("/etc/app/a.conf", "a=1\n") + fileRes("/etc/app/b.conf", "b=1\n")
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1", "h2"}, nil, res, "")})

	plans, err := f.r.PlanRevision(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 1 || len(plans[0].Hosts) != 2 || plans[0].Hosts[0].Err != "" {
		t.Fatalf("plan = %+v", plans)
	}
	for _, c := range plans[0].Hosts[1].Changes {
		if c.Action != targets.Create {
			t.Errorf("planned %s as %s, want create", c.ID, c.Action)
		}
	}
	if got := f.hostFile("h1", "/etc/app/a.conf"); got != "<absent>" {
		t.Fatalf("plan changed a host: %q", got)
	}

	runs, err := f.r.ApplyRevision(ctx, rev)
	if err != nil || len(runs) != 1 || runs[0].Result != status.ResultSuccess || runs[0].Changes != 6 {
		t.Fatalf("apply: %+v %v", runs, err)
	}
	for _, h := range []string{"h1", "h2"} {
		if got := f.hostFile(h, "/etc/app/a.conf"); got != "a=1\n" {
			t.Errorf("%s a.conf = %q", h, got)
		}
	}
	runs, err = f.r.ApplyRevision(ctx, rev)
	if err != nil || runs[0].Result != status.ResultNoop || runs[0].Changes != 0 {
		t.Fatalf("second apply: %+v %v", runs, err)
	}

	hist, err := f.r.History("prod", 10)
	if err != nil || len(hist) != 2 || hist[0].Result != status.ResultNoop || hist[1].Result != status.ResultSuccess {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	if hist[1].Revision.Commit != rev.Commit || hist[1].End.Before(hist[1].Start) {
		t.Fatalf("history entry = %+v", hist[1])
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"success", testutil.ToFloat64(f.r.m.reconcileTotal.WithLabelValues("prod", "success")), 1},
		{"noop", testutil.ToFloat64(f.r.m.reconcileTotal.WithLabelValues("prod", "noop")), 1},
		{"file creates", testutil.ToFloat64(f.r.m.changes.WithLabelValues("prod", "file", "create")), 4},
		{"directory creates", testutil.ToFloat64(f.r.m.changes.WithLabelValues("prod", "directory", "create")), 2},
		{"host up", testutil.ToFloat64(f.r.m.hostUp.WithLabelValues("prod", "h2")), 1},
		{"info", testutil.ToFloat64(f.r.m.envInfo.WithLabelValues("prod", rev.Short(), status.StateSynced)), 1},
		{"info series", float64(testutil.CollectAndCount(f.r.m.envInfo)), 1},
		{"duration samples", float64(testutil.CollectAndCount(f.r.m.duration)), 1},
	} {
		if c.got != c.want {
			t.Errorf("metric %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	st, ok := f.r.Environment("prod")
	if !ok || st.Applied != rev.Commit || st.LastGood != rev.Commit || st.State != status.StateSynced || len(st.Hosts) != 2 || !st.Hosts[0].Up {
		t.Fatalf("status = %+v", st)
	}
	if got := f.rep.statuses(); !reflect.DeepEqual(got, []string{"prod/pending", "prod/success"}) {
		// Reports are delivered asynchronously; Close waits for them.
		_ = f.r.Close()
		if got = f.rep.statuses(); len(got) != 2 || got[1] != "prod/success" && got[0] != "prod/success" {
			t.Errorf("reports = %v", got)
		}
	}
}

func TestBatchesAndMaxFailed(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4"}
	verify := "rollout: {canary: 1, batch: 2, max_failed: %d}\nverify:\n  - name: ok\n    command: \"test {{ .Vars.ok }} = yes\"\n"
	cases := []struct {
		name, bad, maxFailed string
		want                 string
		wantFiles            map[string]string
		// changes counts the hosts applied: those never reached keep
		// their file without being touched.
		changes    int
		quarantine bool
	}{
		// h3 fails in the second batch: h1, h2, h3 are restored, h4 never touched.
		{"second batch fails", "h3", "0", status.ResultRolledBack, map[string]string{"h1": "old", "h2": "old", "h3": "old", "h4": "old"}, 3, true},
		// One failure allowed: the rollout goes on to h4.
		{"failure allowed", "h3", "1", status.ResultSuccess, map[string]string{"h1": "new", "h2": "new", "h3": "new", "h4": "new"}, 4, false},
		// The canary fails: nothing else is touched.
		{"canary fails", "h1", "0", status.ResultRolledBack, map[string]string{"h1": "old", "h2": "old", "h3": "old", "h4": "old"}, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for _, h := range hosts {
				vars[h] = "ok: yes"
			}
			vars[tc.bad] = "ok: no"
			f := newFixture(t)
			ctx := context.Background()
			for _, h := range hosts {
				f.writeHostFile(h, "/etc/app.conf", "old")
			}
			extra := strings.Replace(verify, "%d", tc.maxFailed, 1)
			rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", hosts, vars, fileRes("/etc/app.conf", "new"), extra)})
			runs, _ := f.r.ApplyRevision(ctx, rev)
			if len(runs) != 1 || runs[0].Result != tc.want {
				t.Fatalf("runs = %+v", runs)
			}
			if !reflect.DeepEqual(runs[0].FailedHosts, []string{tc.bad}) || runs[0].Changes != tc.changes {
				t.Errorf("failed hosts = %v, changes %d (want %d)", runs[0].FailedHosts, runs[0].Changes, tc.changes)
			}
			for h, want := range tc.wantFiles {
				if got := f.hostFile(h, "/etc/app.conf"); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			st, _ := f.r.Environment("prod")
			if got := len(st.Quarantined) == 1 && st.Quarantined[0] == rev.Commit; got != tc.quarantine {
				t.Errorf("quarantined = %v", st.Quarantined)
			}
			rb := testutil.ToFloat64(f.r.m.rollbacks.WithLabelValues("prod", "verify"))
			if (rb == 1) != tc.quarantine {
				t.Errorf("rollbacks_total{verify} = %v", rb)
			}
			if fails := testutil.ToFloat64(f.r.m.verification.WithLabelValues("prod", "command/ok", "fail")); fails < 1 {
				t.Errorf("verification fail count = %v", fails)
			}
			if j, _, _ := f.store.OpenJournal("prod"); j != nil {
				t.Error("journal left open")
			}
		})
	}
}

func TestBatchesShape(t *testing.T) {
	mk := func(n int) []*hostRun {
		out := make([]*hostRun, n)
		for i := range out {
			out[i] = &hostRun{}
		}
		return out
	}
	sizes := func(bs [][]*hostRun) []int {
		var out []int
		for _, b := range bs {
			out = append(out, len(b))
		}
		return out
	}
	for _, c := range []struct {
		n, canary, batch int
		want             []int
	}{
		{5, 1, 2, []int{1, 2, 2}},
		{5, 0, 0, []int{1, 1, 1, 1, 1}},
		{3, 5, 2, []int{3}},
		{4, 0, 3, []int{3, 1}},
	} {
		if got := sizes(batches(mk(c.n), c.canary, c.batch)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("batches(%d, canary %d, batch %d) = %v, want %v", c.n, c.canary, c.batch, got, c.want)
		}
	}
}

func TestVerifyFailureRollsBackExactly(t *testing.T) {
	// The real checks of the verify package, through the adapter cmd uses.
	f := newFixture(t, func(o *Options) { o.Verifier = VerifyRunner(verify.New(verify.Options{})) })
	ctx := context.Background()
	good := etc + fileRes("/etc/a.conf", "a1\n") + fileRes("/etc/b.conf", "b1\n")
	check1 := "verify:\n  - name: a-is-1\n    command: \"grep -q a1 $DRIFTLESS_ROOT/etc/a.conf\"\n"
	rev1 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, good, check1)})
	if runs, err := f.r.ApplyRevision(ctx, rev1); err != nil || runs[0].Result != status.ResultSuccess {
		t.Fatalf("rev1: %+v %v", runs, err)
	}
	// rev2 changes a, creates c, and its check fails.
	bad := etc + fileRes("/etc/a.conf", "a2\n") + fileRes("/etc/b.conf", "b1\n") + fileRes("/etc/c.conf", "c2\n")
	check := "verify:\n  - name: c-is-good\n    command: \"grep -q good $DRIFTLESS_ROOT/etc/c.conf\"\n"
	rev2 := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, bad, check)})
	runs, err := f.r.ApplyRevision(ctx, rev2)
	if err == nil || runs[0].Result != status.ResultRolledBack {
		t.Fatalf("rev2: %+v %v", runs, err)
	}
	// After the rollback the host is verified with rev1's checks, and passes.
	if strings.Contains(runs[0].Error, "after rollback") {
		t.Errorf("verification after rollback failed: %s", runs[0].Error)
	}
	if n := testutil.ToFloat64(f.r.m.verification.WithLabelValues("prod", "a-is-1", "pass")); n != 2 {
		t.Errorf("a-is-1 passed %v times, want 2 (after rev1, after the rollback)", n)
	}
	for p, want := range map[string]string{"/etc/a.conf": "a1\n", "/etc/b.conf": "b1\n", "/etc/c.conf": "<absent>"} {
		if got := f.hostFile("h1", p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	st, _ := f.r.Environment("prod")
	if st.Applied != rev1.Commit || st.LastGood != rev1.Commit || st.State != status.StateRolledBack || len(st.Quarantined) != 1 {
		t.Fatalf("status after rollback = %+v", st)
	}
	_ = f.r.Close()
	if r, ok := f.rep.find(status.StatusRolledBack); !ok || r.Commit != rev2.Commit || !strings.Contains(r.Description, "c-is-good") {
		t.Errorf("rolled_back report = %+v %v", r, ok)
	}
}

func TestPanickingDriverFailsHostOnly(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Drivers["sysctl"] = &panicky{} })
	res := etc + fileRes("/etc/a.conf", "a\n") + "    - sysctl: net.ipv4.ip_forward\n      value: \"1\"\n"
	rev := f.revision(map[string]string{"environments/prod.yaml": envYAML("prod", []string{"h1"}, nil, res, "")})
	runs, err := f.r.ApplyRevision(context.Background(), rev)
	if err == nil || runs[0].Result != status.ResultRolledBack || !strings.Contains(runs[0].Error, "panicked") {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "<absent>" {
		t.Errorf("a.conf not rolled back: %q", got)
	}
	if rb := testutil.ToFloat64(f.r.m.rollbacks.WithLabelValues("prod", "apply")); rb != 1 {
		t.Errorf("rollbacks{apply} = %v", rb)
	}
}

func TestUnreachableHost(t *testing.T) {
	f := newFixture(t)
	// A port nobody listens on: bind one, close it.
	port := closedPort(t)
	env := "environment: prod\nhosts:\n  - name: far\n    address: 127.0.0.1\n    port: " + port +
		"\n    roles: [all]\n  - name: near\n    transport: local\n    roles: [all]\nroles:\n  all:\n" + fileRes("/etc/a.conf", "a\n")
	rev := f.revision(map[string]string{"environments/prod.yaml": env})
	runs, err := f.r.ApplyRevision(context.Background(), rev)
	if err == nil || runs[0].Result != status.ResultFailed || !reflect.DeepEqual(runs[0].FailedHosts, []string{"far"}) {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if got := f.hostFile("near", "/etc/a.conf"); got != "<absent>" {
		t.Errorf("near host changed although the rollout could not start: %q", got)
	}
	if up := testutil.ToFloat64(f.r.m.hostUp.WithLabelValues("prod", "far")); up != 0 {
		t.Errorf("host_up{far} = %v", up)
	}
	if up := testutil.ToFloat64(f.r.m.hostUp.WithLabelValues("prod", "near")); up != 1 {
		t.Errorf("host_up{near} = %v", up)
	}
}

func TestInvalidRevisionAppliesNothing(t *testing.T) {
	f := newFixture(t)
	good := envYAML("a", []string{"h1"}, nil, fileRes("/etc/a.conf", "a\n"), "")
	bad := "environment: b\nhosts:\n  - name: h2\n    transport: local\n    bogus_key: 1\n"
	rev := f.revision(map[string]string{"environments/a.yaml": good, "environments/b.yaml": bad})
	if _, err := f.r.ApplyRevision(context.Background(), rev); err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("apply of an invalid revision: %v", err)
	}
	if got := f.hostFile("h1", "/etc/a.conf"); got != "<absent>" {
		t.Errorf("valid environment of an invalid revision was applied: %q", got)
	}
	if v := testutil.ToFloat64(f.r.m.configOK); v != 0 {
		t.Errorf("config_last_reload_successful = %v", v)
	}
	if hist, _ := f.r.History("a", 0); len(hist) != 0 {
		t.Errorf("history = %+v", hist)
	}
}
